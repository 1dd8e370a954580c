// Shared helpers of the k6 scripts in this directory: base URLs, options and thresholds, clients
// made through the admin API, form encoding, Basic auth, PKCE, and the browser's side of the
// login and consent legs (no redirect is followed automatically: every step reads `Location`).
//
// Paths are written as `${PUBLIC_URL}/…` or `${ADMIN_URL}/…` template literals, or passed
// through publicPath('/…'), so that check.mjs can find each one and compare it with the routes
// of src/server/router.rs.

import http from 'k6/http';
import { check } from 'k6';
import { b64encode } from 'k6/encoding';
import { sha256, randomBytes } from 'k6/crypto';

function trimSlash(u) {
  return u.replace(/\/+$/, '');
}

function envInt(name, fallback) {
  const v = parseInt(__ENV[name] || '', 10);
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

function envFloat(name) {
  const v = parseFloat(__ENV[name] || '');
  return Number.isFinite(v) && v > 0 ? v : 0;
}

export const PUBLIC_URL = trimSlash(__ENV.PUBLIC_URL || 'http://127.0.0.1:4444');
export const ADMIN_URL = trimSlash(__ENV.ADMIN_URL || 'http://127.0.0.1:4445');
export const VUS = envInt('VUS', 64);
export const DURATION = __ENV.DURATION || '30s';
// The redirect URI of the code-flow clients; never requested (the script reads the code from
// the Location header), so it need not exist. https, as outside --dev http is refused.
export const REDIRECT_URI = __ENV.REDIRECT_URI || 'https://rp.example/cb';
// p99 target of issue 10 (README, "Load test and benchmarks"): 5 ms.
export const P99_MS = envFloat('P99_MS') || 5;
// req/s that ceiling.js measured on the same setup; when given, the ratio targets of issue 10
// become thresholds (issuance ≥ 0.75, introspection ≥ 0.95, refresh ≥ 0.5 of the ceiling).
export const CEILING_RPS = envFloat('CEILING_RPS');
// 1 (default): read the login and consent requests (admin GET) before accepting them, as a
// login app does; 0: accept directly, as bench's flowload does.
export const READ_REQUESTS = (__ENV.READ_REQUESTS || '1') !== '0';

export const JSON_HEADERS = { 'Content-Type': 'application/json' };
export const FORM_HEADERS = { 'Content-Type': 'application/x-www-form-urlencoded' };

// Options of a script: one constant-vus scenario, the shared thresholds (under 0.1 % failed
// requests and failed checks) and the script's own.
export function makeOptions(scenario, thresholds) {
  return {
    scenarios: {
      [scenario]: { executor: 'constant-vus', vus: VUS, duration: DURATION, gracefulStop: '10s' },
    },
    thresholds: Object.assign({ http_req_failed: ['rate<0.001'], checks: ['rate>=0.999'] }, thresholds || {}),
    setupTimeout: __ENV.SETUP_TIMEOUT || '120s',
    summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(99)'],
  };
}

// A rate threshold on the requests tagged `op`, as a share of CEILING_RPS (none without it).
export function ceilingShare(op, share) {
  if (!CEILING_RPS) return {};
  return { [`http_reqs{op:${op}}`]: [`rate>=${(share * CEILING_RPS).toFixed(0)}`] };
}

// Request parameters: tags `op` (for thresholds) and `name` (one time series per endpoint,
// not one per challenge-bearing URL).
export function tagged(op, name, params) {
  return Object.assign({}, params || {}, { tags: { op, name } });
}

// application/x-www-form-urlencoded, as Hydra decodes it (space as '+').
export function formEscape(s) {
  return encodeURIComponent(String(s)).replace(/%20/g, '+');
}

export function formUnescape(s) {
  return decodeURIComponent(String(s).replace(/\+/g, ' '));
}

export function formEncode(fields) {
  return Object.keys(fields)
    .filter((k) => fields[k] !== undefined && fields[k] !== null)
    .map((k) => `${formEscape(k)}=${formEscape(fields[k])}`)
    .join('&');
}

// `Basic base64(form-escaped id ":" form-escaped secret)` (RFC 6749 §2.3.1, as Hydra reads it).
export function basicAuth(id, secret) {
  return `Basic ${b64encode(`${formEscape(id)}:${formEscape(secret)}`, 'std')}`;
}

// Headers of a token request authenticated with client_secret_basic.
export function tokenHeaders(client) {
  return Object.assign({ Authorization: basicAuth(client.client_id, client.client_secret) }, FORM_HEADERS);
}

// The parsed JSON body, or null.
export function jsonOf(res) {
  try {
    return res.json();
  } catch (e) {
    return null;
  }
}

// The decoded value of query parameter `name` in `url`, or null.
export function queryParam(url, name) {
  if (!url) return null;
  const q = url.indexOf('?');
  if (q < 0) return null;
  let query = url.slice(q + 1);
  const hash = query.indexOf('#');
  if (hash >= 0) query = query.slice(0, hash);
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    const k = eq < 0 ? pair : pair.slice(0, eq);
    if (formUnescape(k) === name) return formUnescape(eq < 0 ? '' : pair.slice(eq + 1));
  }
  return null;
}

export function location(res) {
  return res.headers['Location'] || res.headers['location'] || '';
}

// A path on the public listener, named so that check.mjs can find it: publicPath('/oauth2/auth').
export function publicPath(path) {
  return path;
}

// `redirect_to` (an absolute URL on the server's own public URL) moved onto PUBLIC_URL, as
// bench's flowload does, so the cookies stay on one origin; null unless its path is `path`.
export function publicUrlOf(absolute, path) {
  if (!absolute) return null;
  const origin = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*/.exec(absolute);
  const rest = origin ? absolute.slice(origin[0].length) : absolute;
  const end = rest.search(/[?#]/);
  if ((end < 0 ? rest : rest.slice(0, end)) !== path) return null;
  return PUBLIC_URL + rest;
}

// Outside --dev every cookie of the server is `Secure`, and k6's jar (Go's net/http/cookiejar)
// sends Secure cookies over https only. Against a plain-http PUBLIC_URL (a benchmark without
// TLS), the cookies a response set are stored again without the flag, so the next leg carries
// them as a browser would over https. No-op for https and for --dev's cookies.
export function keepCookies(jar, res) {
  if (!PUBLIC_URL.startsWith('http://')) return;
  const cookies = res.cookies || {};
  for (const name in cookies) {
    const list = cookies[name];
    for (let i = 0; i < list.length; i++) {
      const c = list[i];
      if (!c.secure) continue;
      const opts = { path: c.path || '/' };
      if (c.max_age) opts.max_age = c.max_age; // -1: Max-Age=0, the cookie is deleted
      jar.set(PUBLIC_URL, c.name, c.value, opts);
    }
  }
}

// A browser GET on the public listener: the VU's jar, no redirect followed.
export function browserGet(jar, url, op, name) {
  const res = http.get(url, tagged(op, name, { jar, redirects: 0 }));
  keepCookies(jar, res);
  return res;
}

export function randomToken(bytes) {
  return b64encode(randomBytes(bytes), 'rawurl');
}

// PKCE S256 (RFC 7636): a 43-character verifier and its challenge.
export function pkcePair() {
  const verifier = randomToken(32);
  return { verifier, challenge: sha256(verifier, 'base64rawurl') };
}

// POST /admin/clients with `fields`; returns the created client (with its secret). Throws, which
// aborts the test from setup(), unless the server answered 201.
export function createClient(fields) {
  const body = JSON.stringify(Object.assign({ client_name: 'k6-loadtest' }, fields));
  const res = http.post(`${ADMIN_URL}/admin/clients`, body, tagged('setup', 'POST /admin/clients', { headers: JSON_HEADERS }));
  if (res.status !== 201) throw new Error(`POST /admin/clients answered ${res.status}: ${res.body}`);
  return res.json();
}

export function deleteClient(client) {
  const res = http.del(
    `${ADMIN_URL}/admin/clients/${encodeURIComponent(client.client_id)}`,
    null,
    tagged('teardown', 'DELETE /admin/clients/{id}'),
  );
  check(res, { 'teardown: client deleted (204)': (r) => r.status === 204 });
}

// A client of the authorization code flow with refresh tokens (client_secret_basic).
export function createCodeClient() {
  return createClient({
    client_name: 'k6-loadtest-rp',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    scope: 'openid offline_access offline',
    redirect_uris: [REDIRECT_URI],
    token_endpoint_auth_method: 'client_secret_basic',
  });
}

function admin(method, url, body, op, name) {
  return http.request(method, url, body === null ? null : JSON.stringify(body), tagged(op, name, { headers: JSON_HEADERS }));
}

// The login and consent legs, as a login & consent app and a browser run them: `loginLocation`
// is the Location that sent the browser to the login app (`?login_challenge=`); `back` the path
// the accepts send the browser back to (/oauth2/auth, or /oauth2/device/verify). Returns the
// response to the consent verifier (a 302 to the client or the device success page), or null
// after a failed check.
export function loginAndConsent(jar, loginLocation, back, o) {
  const op = o.op;
  const loginChallenge = queryParam(loginLocation, 'login_challenge');
  if (!check(loginChallenge, { 'login: challenge in Location': (c) => !!c })) return null;
  const lc = encodeURIComponent(loginChallenge);
  if (o.readRequests) {
    const res = http.get(`${ADMIN_URL}/admin/oauth2/auth/requests/login?login_challenge=${lc}`,
      tagged(op, 'GET /admin/oauth2/auth/requests/login'));
    const body = jsonOf(res);
    const ok = check(res, {
      'login: request read (200)': (r) => r.status === 200,
      'login: request names the client': () => !!body && !!body.client && body.client.client_id === o.clientId,
    });
    if (!ok) return null;
  }
  let res = admin('PUT', `${ADMIN_URL}/admin/oauth2/auth/requests/login/accept?login_challenge=${lc}`,
    { subject: o.subject, remember: false }, op, 'PUT /admin/oauth2/auth/requests/login/accept');
  let body = jsonOf(res);
  if (!check(res, {
    'login: accepted (200)': (r) => r.status === 200,
    'login: redirect_to back to the server': () => !!body && publicUrlOf(body.redirect_to, back) !== null,
  })) return null;

  res = browserGet(jar, publicUrlOf(body.redirect_to, back), op, `GET ${back} (login_verifier)`);
  const consentChallenge = queryParam(location(res), 'consent_challenge');
  if (!check(res, {
    'login verifier: 302 to consent': (r) => r.status === 302 && !!consentChallenge,
  })) return null;
  const cc = encodeURIComponent(consentChallenge);
  if (o.readRequests) {
    res = http.get(`${ADMIN_URL}/admin/oauth2/auth/requests/consent?consent_challenge=${cc}`,
      tagged(op, 'GET /admin/oauth2/auth/requests/consent'));
    body = jsonOf(res);
    if (!check(res, {
      'consent: request read (200)': (r) => r.status === 200,
      'consent: request names the subject': () => !!body && body.subject === o.subject,
    })) return null;
  }
  res = admin('PUT', `${ADMIN_URL}/admin/oauth2/auth/requests/consent/accept?consent_challenge=${cc}`,
    { grant_scope: o.scope.split(' ').filter((s) => s), grant_access_token_audience: [], remember: false },
    op, 'PUT /admin/oauth2/auth/requests/consent/accept');
  body = jsonOf(res);
  if (!check(res, {
    'consent: accepted (200)': (r) => r.status === 200,
    'consent: redirect_to back to the server': () => !!body && publicUrlOf(body.redirect_to, back) !== null,
  })) return null;

  res = browserGet(jar, publicUrlOf(body.redirect_to, back), op, `GET ${back} (consent_verifier)`);
  if (!check(res, { 'consent verifier: 302': (r) => r.status === 302 })) return null;
  return res;
}

// One authorization code flow with PKCE S256 in `jar` (a fresh browser): authorize, login,
// consent, code exchange. Returns the token response's JSON, or null after a failed check.
// o: { op, scope, subject, readRequests }.
export function codeFlow(jar, client, o) {
  const op = o.op;
  const pkce = pkcePair();
  const state = randomToken(12);
  const query = formEncode({
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: REDIRECT_URI,
    scope: o.scope,
    state,
    nonce: randomToken(12),
    code_challenge: pkce.challenge,
    code_challenge_method: 'S256',
  });
  let res = browserGet(jar, `${PUBLIC_URL}/oauth2/auth?${query}`, op, 'GET /oauth2/auth');
  if (!check(res, { 'authorize: 302 to login': (r) => r.status === 302 && !!queryParam(location(r), 'login_challenge') })) {
    return null;
  }
  res = loginAndConsent(jar, location(res), publicPath('/oauth2/auth'), {
    op, scope: o.scope, subject: o.subject, clientId: client.client_id, readRequests: o.readRequests,
  });
  if (res === null) return null;
  const callback = location(res);
  const code = queryParam(callback, 'code');
  if (!check(callback, {
    'callback: redirect_uri with code': (l) => l.startsWith(REDIRECT_URI) && !!code,
    'callback: state echoed': (l) => queryParam(l, 'state') === state,
  })) return null;

  res = http.post(`${PUBLIC_URL}/oauth2/token`,
    formEncode({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: pkce.verifier }),
    tagged(op, 'POST /oauth2/token (authorization_code)', { headers: tokenHeaders(client) }));
  const tokens = jsonOf(res);
  const scopes = o.scope.split(' ');
  const ok = check(res, {
    'code exchange: 200': (r) => r.status === 200,
    'code exchange: access token': () => !!tokens && typeof tokens.access_token === 'string' && tokens.access_token.length > 0,
    'code exchange: refresh token when offline': () =>
      !!tokens && (!(scopes.includes('offline_access') || scopes.includes('offline')) || !!tokens.refresh_token),
    'code exchange: ID token when openid': () => !!tokens && (!scopes.includes('openid') || !!tokens.id_token),
  });
  return ok ? tokens : null;
}
