// Mirrors of the server's input rules, so the user learns about a mistake while typing. The
// server checks again and its message is what counts when it refuses.

const ALNUM = /^[a-z0-9]$/;

/** The name rules (a Kubernetes DNS-1123 subdomain), each with whether `name` meets it. */
export function nameRules(name) {
  return [
    { id: 'length', text: 'Between 1 and 253 characters', ok: name.length >= 1 && name.length <= 253 },
    { id: 'charset', text: 'Only lower-case letters, digits, \u2018-\u2019 and \u2018.\u2019', ok: name.length > 0 && /^[a-z0-9.-]+$/.test(name) },
    { id: 'start', text: 'Starts with a letter or digit', ok: ALNUM.test(name.slice(0, 1)) },
    { id: 'end', text: 'Ends with a letter or digit', ok: ALNUM.test(name.slice(-1)) },
    { id: 'dots', text: 'A letter or digit on each side of every \u2018.\u2019', ok: name.length > 0 && name.split('.').every((l) => ALNUM.test(l.slice(0, 1)) && ALNUM.test(l.slice(-1))) },
  ];
}

export const nameIsValid = (name) => nameRules(name).every((rule) => rule.ok);

/** A registry as `kubectl --docker-server` takes it: a host[:port][/path], with or without scheme. */
export function registryProblem(value) {
  const v = value.trim();
  if (!v) return 'Enter the registry\u2019s address, for example registry.example.com.';
  if (/\s/.test(v)) return 'A registry address contains no spaces.';
  let url;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(v) ? v : `https://${v}`);
  } catch {
    return 'This is not a registry address: use host[:port], optionally with https://.';
  }
  if (!['http:', 'https:'].includes(url.protocol)) return 'Use an https:// (or http://) address.';
  if (url.username || url.password) return 'Put credentials in the username and password fields, not in the address.';
  if (!url.hostname) return 'The address has no host name.';
  return null;
}

export function emailProblem(value) {
  const v = value.trim();
  if (!v) return null;
  return /^[^\s@]+@[^\s@]+$/.test(v) ? null : 'This is not an email address (or leave it empty).';
}

function decodeConfig(text) {
  const t = text.trim();
  if (t.startsWith('{')) return JSON.parse(t);
  const bytes = Uint8Array.from(atob(t.replace(/\s+/g, '')), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
}

/** Checks the shape of a pasted Docker config; never echoes any of its content. */
export function dockerConfigProblem(text) {
  if (!text.trim()) return 'Paste the .dockerconfigjson (its JSON, or that JSON base64-encoded).';
  let config;
  try {
    config = decodeConfig(text);
  } catch {
    return 'This is neither JSON nor base64-encoded JSON.';
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    return 'A Docker config is a JSON object with an \u201cauths\u201d object.';
  }
  const auths = config.auths;
  const entries = auths && typeof auths === 'object' && !Array.isArray(auths) ? Object.keys(auths) : [];
  if (entries.length === 0) {
    if (config.credsStore || config.credHelpers) {
      return 'This config only names a credential helper and holds no credentials. Create the secret from username and password instead, or export them into "auths" first.';
    }
    return 'The config needs an \u201cauths\u201d object with at least one registry.';
  }
  for (const registry of entries) {
    const entry = auths[registry];
    const hasAuth = entry && typeof entry.auth === 'string' && entry.auth !== '';
    const hasPair = entry && typeof entry.username === 'string' && typeof entry.password === 'string';
    if (!hasAuth && !hasPair) {
      return `The entry for ${JSON.stringify(registry)} needs "auth" or "username" and "password".`;
    }
  }
  return null;
}
