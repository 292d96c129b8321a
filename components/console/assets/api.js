// The console's only way to the server: its public HTTP API on the same origin, with the user's
// bearer token, or, signed in with the identity provider, with the session cookie the server set
// (the browser holds no token then; every call carries the anti-CSRF header the server requires
// of state-changing calls on a cookie). Errors become ApiError carrying the server's code and
// message as they are.

const SECRETS = '/v2/admin/dockerRegistrySecrets';
const QUOTA = '/v2/admin/resourceQuota/dockerRegistrySecrets';

export class ApiError extends Error {
  constructor(status, code, message, requestId, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
    this.details = details;
  }
}

/** Stands for "the session cookie" where a token is expected. */
export const SESSION = Symbol('session cookie');
const CSRF_HEADER = 'X-Regsecrets-CSRF';

async function call(token, method, path, { body, headers = {}, contentType, retried = false } = {}) {
  const bySession = token === SESSION;
  const credential = bySession ? { [CSRF_HEADER]: '1' } : { Authorization: `Bearer ${token}` };
  const init = {
    method,
    headers: { Accept: 'application/json', ...credential, ...headers },
    cache: 'no-store',
    credentials: bySession ? 'same-origin' : 'omit',
    referrerPolicy: 'no-referrer',
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = contentType ?? 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'NetworkError', 'The server could not be reached. Check your connection and try again.');
  }
  if (bySession && response.status === 401 && !retried) {
    // The session's access token may have just expired: the server refreshes it, then once more.
    const info = await sessionInfo();
    if (info?.session) return call(token, method, path, { body, headers, contentType, retried: true });
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    const error = json && typeof json.error === 'object' ? json.error : {};
    throw new ApiError(
      response.status,
      error.code ?? `Http${response.status}`,
      error.message ?? `The server answered ${response.status} ${response.statusText}.`,
      error.requestId ?? response.headers.get('x-request-id'),
      typeof error.details === 'object' && error.details !== null ? error.details : {},
    );
  }
  return { json, etag: response.headers.get('ETag') };
}

const item = (name) => `${SECRETS}/${encodeURIComponent(name)}`;

export function listSecrets(token, { top, skip, search }) {
  const query = new URLSearchParams({ $top: String(top), $skip: String(skip), $count: 'true' });
  if (search) query.set('$search', search);
  return call(token, 'GET', `${SECRETS}?${query}`).then(({ json }) => json);
}

export function getSecret(token, name) {
  return call(token, 'GET', item(name));
}

// `verify`: the server checks the credentials with their registries first and stores nothing if
// one refuses them (422 CredentialsRejected, per-registry results in `details.registries`).
const verifyQuery = (verify) => (verify ? '?verify=true' : '');

export function createSecret(token, body, { verify = false } = {}) {
  return call(token, 'POST', `${SECRETS}${verifyQuery(verify)}`, { body });
}

export function patchSecret(token, name, etag, body, { verify = false } = {}) {
  return call(token, 'PATCH', `${item(name)}${verifyQuery(verify)}`, {
    body,
    contentType: 'application/merge-patch+json',
    headers: { 'If-Match': etag },
  });
}

export function verifySecret(token, name) {
  return call(token, 'POST', `${item(name)}/verification`).then(({ json }) => json);
}

export function deleteSecret(token, name, etag) {
  return call(token, 'DELETE', item(name), { headers: { 'If-Match': etag } });
}

const WORKLOAD = '/v2/admin/workloadIdentity';

export function getWorkloadIdentity(token) {
  return call(token, 'GET', WORKLOAD).then(({ json }) => json);
}

export function putWorkloadIdentity(token, trust) {
  return call(token, 'PUT', WORKLOAD, { body: trust }).then(({ json }) => json);
}

export function quota(token) {
  return call(token, 'GET', QUOTA).then(({ json }) => json);
}

/**
 * What the server says about sign-in: `{ signIn: { oidc, paste }, session: null | { tenant,
 * subject, scopes, expiresAt, endsAt } }`; it refreshes the session's tokens when they are about to
 * expire. `null` when it cannot be asked (a server without sign-in: pasting only).
 */
export async function sessionInfo() {
  try {
    const response = await fetch('/auth/session', {
      headers: { Accept: 'application/json' },
      cache: 'no-store',
      credentials: 'same-origin',
      referrerPolicy: 'no-referrer',
    });
    if (!response.ok) return null;
    const json = await response.json();
    return json && typeof json === 'object' && json.signIn ? json : null;
  } catch {
    return null;
  }
}

/** Ends the session on the server; answers where to go next (the provider's sign-out, or `/`). */
export async function endSession() {
  try {
    const response = await fetch('/auth/logout', {
      method: 'POST',
      headers: { Accept: 'application/json', [CSRF_HEADER]: '1' },
      cache: 'no-store',
      credentials: 'same-origin',
      referrerPolicy: 'no-referrer',
    });
    const json = response.ok ? await response.json() : null;
    return typeof json?.location === 'string' ? json.location : '/';
  } catch {
    return '/';
  }
}
