// A real OpenID provider for the e2e tests: panva's oidc-provider (OpenID Certified), on loopback,
// with one client (client_credentials for API calls; the authorization code flow with PKCE and
// refresh tokens for the console's sign-in; JWT access tokens for the resource `urn:regsecrets`)
// and one test user, `alice`, who signs in on a one-field login page (/interaction/<uid>; consent
// is implied: the grant is made for the client on sign-in, as for a first-party console). The test
// drives it over stdin, one command a line, each answered with one JSON line:
//
//   publish   a new signing key is appended to the key set: published, not yet signing
//   promote   the newest key moves to the front: it signs from now on (the others still verify)
//   retire    every key but the signing one is removed from the set
//   stats     how often the discovery document and the key set were fetched (and when, ms), and
//             the grant types the token endpoint served
//   console <base>   registers <base>/auth/callback as the client's redirect URI and <base>/ as
//             its post-logout redirect URI (the app's port is known only once it runs)
//
// Rotation follows oidc-provider's own recommendation for its `jwks` option: publish at the end,
// reload, move to the front, reload. A reload is a new Provider behind the same listening socket.
// The first line on stdout is {"issuer": "http://127.0.0.1:<port>"}.
import { createPrivateKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';

import Provider, { errors } from 'oidc-provider';

// stdout is the command channel: oidc-provider's notices (console.info/warn) go to stderr.
for (const level of ['log', 'info', 'warn']) console[level] = (...args) => process.stderr.write(`${args.join(' ')}\n`);

const RESOURCE = 'urn:regsecrets';
const AUDIENCE = process.env.OIDC_AUDIENCE || 'regsecrets';
const TENANT = process.env.OIDC_TENANT || 'oidc-e2e';
const CLIENT_ID = 'regsecrets-e2e';
const CLIENT_SECRET = 'e2e-client-secret';

// The key is encoded inside the key generation and parsed again, never exported from the KeyObject
// the generation made: Node 20 can deadlock when a garbage collection during that export destroys
// the finished generation job, which locks the same key's mutex (seen here: the provider hung before
// printing its first line, and with it the test reading that line).
function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { ...createPrivateKey(privateKey).export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' };
}

let keys = [signingKey()];
const counts = { discovery: 0, jwks: 0, jwksAt: [], grants: [] };
let consoleBase = 'http://127.0.0.1:9';
const SCOPES = 'regsecrets.admin regsecrets.viewer regsecrets.puller';

function configuration() {
  return {
    jwks: { keys },
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        grant_types: ['client_credentials', 'authorization_code', 'refresh_token'],
        redirect_uris: [`${consoleBase}/auth/callback`],
        post_logout_redirect_uris: [`${consoleBase}/`],
        response_types: ['code'],
      },
    ],
    // A first-party console: signing in grants the client what it asks for, without a consent page.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      if (!ctx.oidc.session.accountId) return undefined;
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope('openid offline_access');
      grant.addResourceScope(RESOURCE, SCOPES);
      await grant.save();
      return grant;
    },
    // Refresh tokens for the console without `prompt=consent` (which offline_access would need).
    async issueRefreshToken(ctx, client) {
      return client.grantTypeAllowed('refresh_token');
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    // The test user (for sign-in flows).
    async findAccount(ctx, id) {
      if (id !== 'alice') return undefined;
      return { accountId: id, async claims() { return { sub: id, tenant: TENANT, name: 'Alice Tester' }; } };
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => RESOURCE,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, resource) => {
          if (resource !== RESOURCE) throw new errors.InvalidTarget();
          return {
            scope: SCOPES,
            audience: AUDIENCE,
            // OIDC_ACCESS_TTL: shorter access tokens, for tests of the console's refresh.
            accessTokenTTL: Number(process.env.OIDC_ACCESS_TTL || 3600),
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    ttl: {
      ClientCredentials: 3600,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
      RefreshToken: 24 * 3600,
    },
    async extraTokenClaims() {
      return { tenant: TENANT };
    },
  };
}

const server = createServer();
const issuer = await new Promise((resolve) => {
  server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${server.address().port}`));
});

let provider;
function reload() {
  provider = new Provider(issuer, configuration());
  provider.on('server_error', (ctx, error) => process.stderr.write(`server_error: ${error.stack}\n`));
  provider.on('grant.success', (ctx) => counts.grants.push(ctx.oidc.params.grant_type));
}
reload();

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(res, uid, error = '') {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Test provider sign-in</title></head>
<body><h1>Sign in to the test provider</h1>${error ? `<p role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}">
<label>User <input name="login" autocomplete="username" data-testid="idp-login"></label>
<button type="submit" data-testid="idp-submit">Sign in</button></form></body></html>`);
}

// The login page: the user names themselves (`alice`); no password, it is a test provider.
async function interaction(req, res, uid) {
  try {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) throw new Error('interaction mismatch');
    if (req.method === 'GET') return loginPage(res, uid);
    const body = await new Promise((resolve) => {
      let text = '';
      req.on('data', (chunk) => { text += chunk; });
      req.on('end', () => resolve(new URLSearchParams(text)));
    });
    const login = body.get('login');
    if (login !== 'alice') return loginPage(res, uid, 'No such user.');
    await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
  } catch (error) {
    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end(`interaction failed: ${error.message}`);
  }
}

server.on('request', (req, res) => {
  const path = (req.url || '/').split('?')[0];
  const interactionPath = path.match(/^\/interaction\/([A-Za-z0-9_-]+)$/);
  if (interactionPath) {
    interaction(req, res, interactionPath[1]);
    return;
  }
  if (path === '/.well-known/openid-configuration') counts.discovery += 1;
  if (path === '/jwks') {
    counts.jwks += 1;
    counts.jwksAt.push(Date.now());
  }
  provider.callback()(req, res);
});

function publicKey(jwk) {
  return jwk.kid;
}

const commands = {
  publish() {
    keys = [...keys, signingKey()];
    reload();
    return { kids: keys.map(publicKey) };
  },
  promote() {
    const newest = keys[keys.length - 1];
    keys = [newest, ...keys.slice(0, -1)];
    reload();
    return { signing: newest.kid, kids: keys.map(publicKey) };
  },
  retire() {
    keys = [keys[0]];
    reload();
    return { kids: keys.map(publicKey) };
  },
  stats() {
    return counts;
  },
  console(base) {
    consoleBase = base;
    reload();
    return { redirect_uri: `${base}/auth/callback` };
  },
};

process.stdout.write(`${JSON.stringify({ issuer, client_id: CLIENT_ID, client_secret: CLIENT_SECRET, signing: keys[0].kid })}\n`);
createInterface({ input: process.stdin }).on('line', (line) => {
  const [name, ...args] = line.trim().split(/\s+/);
  const command = commands[name];
  const answer = command ? command(...args) : { error: `unknown command ${line}` };
  process.stdout.write(`${JSON.stringify(answer)}\n`);
});
process.stdin.on('end', () => process.exit(0));
