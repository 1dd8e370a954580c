// The device authorization grant (RFC 8628), as Hydra serves it, one whole grant per iteration:
//   device:  POST /oauth2/device/auth (public client, client_id and scope) → device_code, user_code, …
//   browser: GET /oauth2/device/verify?user_code=… → 302 to urls.device.verification?device_challenge=…
//            (and the device CSRF cookie)
//   UI:      admin PUT …/requests/device/accept?device_challenge=… {"user_code"} → redirect_to
//            /oauth2/device/verify?device_verifier=…&client_id=…
//   browser: GET it → 302 to urls.login?login_challenge=…; then the login and consent legs, whose
//            redirect_to lead back to /oauth2/device/verify (login_verifier, consent_verifier);
//            the last 302 goes to urls.device.success
//   device:  POST /oauth2/token grant_type=urn:ietf:params:oauth:grant-type:device_code → 200 tokens
// The device polls once, after the browser part. PENDING_POLL=1 adds one poll before the browser
// part, which must answer 400 authorization_pending; the server answers slow_down to a poll
// sooner than `interval` seconds after the last one, so the final poll then waits out the rest of
// the interval (lower oauth2.device_authorization.token_polling_interval on the server for it).
// DEVICE_SUCCESS_URL, when given, must start the last Location.
//
//   k6 run -e PUBLIC_URL=http://127.0.0.1:4444 -e ADMIN_URL=http://127.0.0.1:4445 loadtest/k6/device-flow.js

import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import {
  PUBLIC_URL, ADMIN_URL, READ_REQUESTS, FORM_HEADERS, JSON_HEADERS, makeOptions, tagged, formEncode, jsonOf, queryParam,
  location, publicPath, publicUrlOf, browserGet, loginAndConsent, createClient, deleteClient,
} from './lib.js';

const SCOPE = __ENV.SCOPE || 'openid offline_access';
const GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:device_code';
const PENDING_POLL = __ENV.PENDING_POLL === '1';
const SUCCESS_URL = __ENV.DEVICE_SUCCESS_URL || '';
// The README states no throughput target for the device flow; DEVICE_RATE_MIN sets one.
const RATE_MIN = parseFloat(__ENV.DEVICE_RATE_MIN || '0');

const grants = new Counter('device_flows');
const grantOk = new Rate('device_flow_ok');
const grantTime = new Trend('device_flow_duration', true);

export const options = makeOptions('device_flow', Object.assign(
  { device_flow_ok: ['rate>=0.999'] },
  RATE_MIN > 0 ? { device_flows: [`rate>=${RATE_MIN}`] } : {},
));

export function setup() {
  const client = createClient({
    client_name: 'k6-loadtest-device',
    grant_types: [GRANT_TYPE, 'refresh_token'],
    scope: 'openid offline_access offline',
    token_endpoint_auth_method: 'none',
  });
  return { client };
}

function poll(clientId, deviceCode, params) {
  return http.post(`${PUBLIC_URL}/oauth2/token`,
    formEncode({ grant_type: GRANT_TYPE, device_code: deviceCode, client_id: clientId }), params);
}

function deviceGrant(client) {
  const op = 'device';
  const clientId = client.client_id;

  // The device asks for a grant.
  let res = http.post(`${PUBLIC_URL}/oauth2/device/auth`, formEncode({ client_id: clientId, scope: SCOPE }),
    tagged(op, 'POST /oauth2/device/auth', { headers: FORM_HEADERS }));
  const auth = jsonOf(res);
  if (!check(res, {
    'device auth: 200': (r) => r.status === 200,
    'device auth: device_code and user_code': () => !!auth && !!auth.device_code && !!auth.user_code,
    'device auth: verification URIs': () => !!auth && !!auth.verification_uri && !!auth.verification_uri_complete,
    'device auth: expires_in and interval': () => !!auth && auth.expires_in > 0 && auth.interval > 0,
  })) return false;

  let polledAt = 0;
  if (PENDING_POLL) {
    polledAt = Date.now();
    res = poll(clientId, auth.device_code,
      tagged(op, 'POST /oauth2/token (device_code, pending)', { headers: FORM_HEADERS, responseCallback: http.expectedStatuses(400) }));
    const pending = jsonOf(res);
    if (!check(res, {
      'device poll before: 400 authorization_pending': (r) => r.status === 400 && !!pending && pending.error === 'authorization_pending',
    })) return false;
  }

  // The user's browser enters the code.
  const jar = new http.CookieJar();
  res = browserGet(jar, `${PUBLIC_URL}/oauth2/device/verify?user_code=${encodeURIComponent(auth.user_code)}`,
    op, 'GET /oauth2/device/verify (user_code)');
  const challenge = queryParam(location(res), 'device_challenge');
  if (!check(res, { 'verify: 302 with device_challenge': (r) => r.status === 302 && !!challenge })) return false;

  // The verification UI accepts the code.
  res = http.put(`${ADMIN_URL}/admin/oauth2/auth/requests/device/accept?device_challenge=${encodeURIComponent(challenge)}`,
    JSON.stringify({ user_code: auth.user_code }),
    tagged(op, 'PUT /admin/oauth2/auth/requests/device/accept', { headers: JSON_HEADERS }));
  const accepted = jsonOf(res);
  const back = publicPath('/oauth2/device/verify');
  const next = accepted ? publicUrlOf(accepted.redirect_to, back) : null;
  if (!check(res, {
    'device accept: 200': (r) => r.status === 200,
    'device accept: redirect_to with device_verifier': () => !!next && !!queryParam(next, 'device_verifier'),
  })) return false;

  res = browserGet(jar, next, op, 'GET /oauth2/device/verify (device_verifier)');
  if (!check(res, {
    'device verifier: 302 to login': (r) => r.status === 302 && !!queryParam(location(r), 'login_challenge'),
  })) return false;

  res = loginAndConsent(jar, location(res), back, {
    op, scope: SCOPE, subject: `k6-device-user-${__VU}`, clientId, readRequests: READ_REQUESTS,
  });
  if (res === null) return false;
  const done = location(res);
  if (!check(done, {
    'device: success page': (l) => !!l && queryParam(l, 'error') === null && (!SUCCESS_URL || l.startsWith(SUCCESS_URL)),
  })) return false;

  // The device polls once and gets its tokens.
  if (polledAt > 0) {
    const wait = auth.interval * 1000 - (Date.now() - polledAt);
    if (wait > 0) sleep(wait / 1000);
  }
  res = poll(clientId, auth.device_code, tagged(op, 'POST /oauth2/token (device_code)', { headers: FORM_HEADERS }));
  const tokens = jsonOf(res);
  const scopes = SCOPE.split(' ');
  return check(res, {
    'device token: 200': (r) => r.status === 200,
    'device token: access token': () => !!tokens && typeof tokens.access_token === 'string' && tokens.access_token.length > 0,
    'device token: refresh token when offline': () =>
      !!tokens && (!(scopes.includes('offline_access') || scopes.includes('offline')) || !!tokens.refresh_token),
    'device token: ID token when openid': () => !!tokens && (!scopes.includes('openid') || !!tokens.id_token),
  });
}

export default function (data) {
  const started = Date.now();
  const ok = deviceGrant(data.client);
  grantOk.add(ok);
  if (ok) {
    grants.add(1);
    grantTime.add(Date.now() - started);
  }
}

export function teardown(data) {
  deleteClient(data.client);
}
