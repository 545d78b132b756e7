// A real OpenID provider for mcpgate's tests: panva's oidc-provider (an
// OpenID Certified implementation, from the npm registry, installed by
// scripts/oidc.sh) with static confidential clients that use the
// client_credentials grant and RFC 8707 resource indicators, so that an
// access token is a JWT whose aud is the resource the client asked for.
//
// Environment:
//   OIDC_PROVIDER_DIR  the installed oidc-provider package folder
//   OIDC_PORT          the loopback port to listen on
//   OIDC_CLIENTS       JSON: [{"client_id", "client_secret", "scope"}]
//   OIDC_TOKEN_TTL     access-token lifetime in seconds (default 300)
//
// It prints "ready ISSUER" on stdout once it accepts requests. POST
// /_test/rotate (served beside the provider, on loopback only) makes a new
// RS256 signing key: the provider signs with it from then on and keeps the
// previous keys in its JWKS, as a provider rotating its keys does; it
// answers with the new key's kid.
import http from 'node:http';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = process.env.OIDC_PROVIDER_DIR;
const port = Number(process.env.OIDC_PORT);
const clients = JSON.parse(process.env.OIDC_CLIENTS || '[]');
const ttl = Number(process.env.OIDC_TOKEN_TTL || 300);
if (!dir || !port) {
  console.error('provider.mjs: set OIDC_PROVIDER_DIR and OIDC_PORT');
  process.exit(2);
}
const { default: Provider } = await import(pathToFileURL(join(dir, 'lib', 'index.js')).href);
const issuer = `http://127.0.0.1:${port}`;

function newKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

const allScopes = [...new Set(clients.flatMap((c) => (c.scope || '').split(' ').filter(Boolean)))];

function build(keys) {
  const p = new Provider(issuer, {
    clients: clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      scope: c.scope,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    jwks: { keys },
    scopes: ['openid', ...allScopes],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // RFC 8707: a token is for the resource the client names, a JWT
      // whose aud is that resource.
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => ({
          scope: allScopes.join(' '),
          audience: resource,
          accessTokenTTL: ttl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
  });
  p.on('server_error', (_ctx, err) => console.error('provider server_error:', err));
  return p;
}

let keys = [newKey()];
let provider = build(keys);

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/_test/rotate') {
    const key = newKey();
    keys = [key, ...keys]; // the first key signs; the others stay published
    provider = build(keys);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kid: key.kid }));
    return;
  }
  provider.callback()(req, res);
});
server.listen(port, '127.0.0.1', () => console.log(`ready ${issuer}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
