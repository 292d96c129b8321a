// The bearer token lives in this tab's sessionStorage only, under one key, so that signing out
// (or closing the tab) forgets it. Its claims are decoded for display and to choose which controls
// to offer; the server checks the signature and decides every request.

const KEY = 'regsecrets.token';

export const SCOPES = Object.freeze({
  viewer: 'regsecrets.viewer',
  admin: 'regsecrets.admin',
  operator: 'regsecrets.operator',
  puller: 'regsecrets.puller',
});

export function storedToken() {
  return sessionStorage.getItem(KEY);
}

export function remember(token) {
  sessionStorage.setItem(KEY, token);
}

export function forget() {
  sessionStorage.removeItem(KEY);
}

function base64UrlDecode(part) {
  const base64 = part.replace(/-/g, '+').replace(/_/g, '/');
  const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
}

/** Returns the token's claims, or throws an Error whose message says what is wrong with it. */
export function claimsOf(token) {
  const parts = token.split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p)) || !parts[1]) {
    throw new Error('This is not a JSON Web Token: expected three base64url parts separated by dots.');
  }
  let claims;
  try {
    claims = JSON.parse(base64UrlDecode(parts[1]));
  } catch {
    throw new Error('The token\u2019s payload is not readable JSON.');
  }
  if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) {
    throw new Error('The token\u2019s payload is not a JSON object.');
  }
  return claims;
}

/** What the console needs from a token: who, what it may do, until when. */
export function describe(claims) {
  const raw = claims.scope ?? claims.scp ?? [];
  const scopes = (Array.isArray(raw) ? raw : String(raw).split(' ')).filter(Boolean).map(String);
  const has = (s) => scopes.includes(s);
  const expiresAt = typeof claims.exp === 'number' ? new Date(claims.exp * 1000) : null;
  return {
    tenant: typeof claims.tenant === 'string' ? claims.tenant : null,
    subject: typeof claims.sub === 'string' ? claims.sub : null,
    scopes,
    expiresAt,
    canRead: has(SCOPES.viewer) || has(SCOPES.admin) || has(SCOPES.operator),
    canWrite: has(SCOPES.admin) || has(SCOPES.operator),
    canPull: has(SCOPES.puller),
    role: has(SCOPES.operator) ? 'Operator' : has(SCOPES.admin) ? 'Admin'
      : has(SCOPES.viewer) ? 'Viewer' : has(SCOPES.puller) ? 'Puller' : 'No console scope',
  };
}

export function isExpired(identity, now = Date.now()) {
  return identity.expiresAt !== null && identity.expiresAt.getTime() <= now;
}
