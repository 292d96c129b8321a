// A real OpenID provider for the e2e tests: panva's oidc-provider (OpenID Certified), on loopback,
// with one client (client_credentials, JWT access tokens for the resource `urn:regsecrets`) and one
// test user. The test drives it over stdin, one command a line, each answered with one JSON line:
//
//   publish   a new signing key is appended to the key set: published, not yet signing
//   promote   the newest key moves to the front: it signs from now on (the others still verify)
//   retire    every key but the signing one is removed from the set
//   stats     how often the discovery document and the key set were fetched (and when, ms)
//
// Rotation follows oidc-provider's own recommendation for its `jwks` option: publish at the end,
// reload, move to the front, reload. A reload is a new Provider behind the same listening socket.
// The first line on stdout is {"issuer": "http://127.0.0.1:<port>"}.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';

import Provider, { errors } from 'oidc-provider';

const RESOURCE = 'urn:regsecrets';
const AUDIENCE = process.env.OIDC_AUDIENCE || 'regsecrets';
const TENANT = process.env.OIDC_TENANT || 'oidc-e2e';
const CLIENT_ID = 'regsecrets-e2e';
const CLIENT_SECRET = 'e2e-client-secret';

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' };
}

let keys = [signingKey()];
const counts = { discovery: 0, jwks: 0, jwksAt: [] };

function configuration() {
  return {
    jwks: { keys },
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
      },
    ],
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
        getResourceServerInfo: async (ctx, resource) => {
          if (resource !== RESOURCE) throw new errors.InvalidTarget();
          return {
            scope: 'regsecrets.admin regsecrets.viewer regsecrets.puller',
            audience: AUDIENCE,
            accessTokenTTL: 3600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    ttl: { ClientCredentials: 3600 },
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
}
reload();

server.on('request', (req, res) => {
  const path = (req.url || '/').split('?')[0];
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
};

process.stdout.write(`${JSON.stringify({ issuer, client_id: CLIENT_ID, client_secret: CLIENT_SECRET, signing: keys[0].kid })}\n`);
createInterface({ input: process.stdin }).on('line', (line) => {
  const command = commands[line.trim()];
  const answer = command ? command() : { error: `unknown command ${line}` };
  process.stdout.write(`${JSON.stringify(answer)}\n`);
});
process.stdin.on('end', () => process.exit(0));
