// The whole browser flow (loadtest/run.sh's `flow` row, flowload --mode flow): authorization
// code with PKCE S256, each iteration a new browser (its own cookie jar, no redirect followed):
//   GET /oauth2/auth → 302 to urls.login?login_challenge=…
//   admin GET and PUT …/requests/login[/accept] → redirect_to /oauth2/auth?…&login_verifier=…
//   GET it → 302 to urls.consent?consent_challenge=…
//   admin GET and PUT …/requests/consent[/accept] → redirect_to /oauth2/auth?…&consent_verifier=…
//   GET it → 302 to the redirect URI with code and state
//   POST /oauth2/token (authorization_code, code_verifier) → access, refresh and ID tokens.
// READ_REQUESTS=0 skips the two admin GETs (flowload does not read the requests).
// Scope `openid offline_access` (an ID token, signed with the newest key of
// hydra.openid.id-token: RS256 unless an ES256 key was added, as run.sh's flow-es256 row does).
//
//   k6 run -e PUBLIC_URL=http://127.0.0.1:4444 -e ADMIN_URL=http://127.0.0.1:4445 loadtest/k6/browser-flow.js

import http from 'k6/http';
import { Counter, Rate, Trend } from 'k6/metrics';
import { READ_REQUESTS, makeOptions, createCodeClient, deleteClient, codeFlow } from './lib.js';

const SCOPE = __ENV.SCOPE || 'openid offline_access';
// Issue 10: RS256 flows ≥ 1,000/s (ES256 flows ≥ 2,500/s: FLOW_RATE_MIN=2500 with an ES256 key).
const FLOW_RATE_MIN = parseFloat(__ENV.FLOW_RATE_MIN || '1000');

const flows = new Counter('flows');
const flowOk = new Rate('flow_ok');
const flowTime = new Trend('flow_duration', true);

export const options = makeOptions('browser_flow', {
  flows: [`rate>=${FLOW_RATE_MIN}`],
  flow_ok: ['rate>=0.999'],
});

export function setup() {
  return { client: createCodeClient() };
}

export default function (data) {
  const started = Date.now();
  const tokens = codeFlow(new http.CookieJar(), data.client, {
    op: 'flow', scope: SCOPE, subject: `k6-user-${__VU}`, readRequests: READ_REQUESTS,
  });
  flowOk.add(tokens !== null);
  if (tokens !== null) {
    flows.add(1);
    flowTime.add(Date.now() - started);
  }
}

export function teardown(data) {
  deleteClient(data.client);
}
