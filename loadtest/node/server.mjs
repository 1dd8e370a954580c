// node-oidc-provider 9 as the comparison server of loadtest/vs-node.sh: one client_credentials
// client (client_secret_basic, scope `read`), opaque access tokens, introspection on, tokens kept
// in memory. Routes as ours: POST /oauth2/token and POST /oauth2/introspect (client
// authentication required, as oidc-provider always does for introspection).
//
// The client secret is checked as our server checks it: the client record holds only a PBKDF2
// hash of the secret in Hydra's format (PBKDF2-HMAC-SHA256, 25,000 iterations, 16-byte salt,
// 32-byte key); the first request that verifies against it caches an HMAC-SHA256 (random key per
// process) of the client id and the presented secret, and later requests compute that HMAC and
// compare it with the cached digest in constant time. Steady-state cost per authenticated
// request: one HMAC-SHA256 and one constant-time compare, as ours.
//
// Env: NODE_PORT (port on 127.0.0.1), CLIENT_ID, CLIENT_SECRET (removed from the environment once
// hashed), TOKEN_TTL (seconds, 3600: ours' default access-token lifespan).
import { createHmac, pbkdf2, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import { promisify } from 'node:util';

import Provider from 'oidc-provider';

const port = Number(process.env.NODE_PORT || 14646);
const clientId = process.env.CLIENT_ID;
const presetSecret = process.env.CLIENT_SECRET;
delete process.env.CLIENT_SECRET;
if (!clientId || !presetSecret) {
  console.error('CLIENT_ID and CLIENT_SECRET must be set');
  process.exit(2);
}
const ttl = Number(process.env.TOKEN_TTL || 3600);

// ---- The secret: a PBKDF2 hash at rest, an HMAC digest cache in front of it -------------------

const ITERATIONS = 25_000;
const KEY_LEN = 32;
const b64 = (buf) => buf.toString('base64').replace(/=+$/, '');

function hashSecret(secret) {
  const salt = randomBytes(16);
  const key = pbkdf2Sync(secret, salt, ITERATIONS, KEY_LEN, 'sha256');
  return `$pbkdf2-sha256$i=${ITERATIONS},l=${KEY_LEN}$${b64(salt)}$${b64(key)}`;
}

const pbkdf2Async = promisify(pbkdf2);
async function verifySecret(encoded, secret) {
  const m = /^\$pbkdf2-sha256\$i=(\d+),l=(\d+)\$([^$]+)\$([^$]+)$/.exec(encoded);
  if (!m) return false;
  const expected = Buffer.from(m[4], 'base64');
  // Off the event loop (libuv's thread pool), as ours runs PBKDF2 on its helper pool.
  const key = await pbkdf2Async(secret, Buffer.from(m[3], 'base64'), Number(m[1]), Number(m[2]), 'sha256');
  return key.length === expected.length && timingSafeEqual(key, expected);
}

const cacheKey = randomBytes(32);
const digests = new Map(); // client id -> HMAC-SHA256 digest of the last secret that verified

// The cached digest binds the client id (length-prefixed, as ours).
function cacheDigest(id, secret) {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(id)));
  return createHmac('sha256', cacheKey).update(len).update(id).update(secret).digest();
}

// ---- Tokens in memory --------------------------------------------------------------------------
// oidc-provider's bundled development adapter is an LRU of 1,000 entries shared by every model, so
// a pool of 2,000 tokens (or one issuance run) would evict most tokens and introspection would
// answer `active: false` without finding them. This one keeps every entry until it expires.

const store = new Map(); // `${model}:${id}` -> { payload, exp (ms or Infinity) }
setInterval(() => {
  const now = Date.now();
  for (const [key, entry] of store) if (entry.exp <= now) store.delete(key);
}, 60_000).unref();

class MapAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    store.set(this.key(id), { payload, exp: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
  }

  async find(id) {
    const entry = store.get(this.key(id));
    if (!entry) return undefined;
    if (entry.exp <= Date.now()) {
      store.delete(this.key(id));
      return undefined;
    }
    return entry.payload;
  }

  async findByUid() {
    return undefined;
  }

  async findByUserCode() {
    return undefined;
  }

  async consume(id) {
    const entry = store.get(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId() {}
}

// ---- The provider ------------------------------------------------------------------------------

const provider = new Provider(`http://127.0.0.1:${port}`, {
  adapter: MapAdapter,
  clients: [
    {
      client_id: clientId,
      // Only the hash is stored; compareClientSecret below verifies against it.
      client_secret: hashSecret(presetSecret),
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'read',
    },
  ],
  scopes: ['read'],
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    devInteractions: { enabled: false },
    // No resource indicators: a client_credentials token without a resource server is opaque.
    resourceIndicators: { enabled: false },
  },
  ttl: { ClientCredentials: ttl },
  routes: { token: '/oauth2/token', introspection: '/oauth2/introspect' },
});

provider.Client.prototype.compareClientSecret = async function compareClientSecret(actual) {
  if (typeof actual !== 'string') return false;
  const digest = cacheDigest(this.clientId, actual);
  const cached = digests.get(this.clientId);
  if (cached && timingSafeEqual(cached, digest)) return true;
  if (!(await verifySecret(this.clientSecret, actual))) return false;
  digests.set(this.clientId, digest);
  return true;
};

const server = createServer(provider.callback());
// oha keeps its connections open for the whole run; no idle cut-off in between.
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on 127.0.0.1:${port}`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
