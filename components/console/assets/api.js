// The console's only way to the server: its public HTTP API on the same origin, with the user's
// bearer token. Errors become ApiError carrying the server's code and message as they are.

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

async function call(token, method, path, { body, headers = {}, contentType } = {}) {
  const init = {
    method,
    headers: { Accept: 'application/json', Authorization: `Bearer ${token}`, ...headers },
    cache: 'no-store',
    credentials: 'omit',
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

export function quota(token) {
  return call(token, 'GET', QUOTA).then(({ json }) => json);
}
