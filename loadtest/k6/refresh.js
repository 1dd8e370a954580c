// Refresh-token rotation (loadtest/run.sh's `refresh` row, flowload --mode refresh): every VU
// holds one grant of its own, got through an authorization code flow in setup(), and rotates it
// in a loop, keeping the newest refresh token. Two VUs never share a chain: a refresh token used
// twice revokes its whole chain. Scope `offline_access` (no `openid`, so no ID token), as run.sh.
//
//   k6 run -e PUBLIC_URL=http://127.0.0.1:4444 -e ADMIN_URL=http://127.0.0.1:4445 loadtest/k6/refresh.js

import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import {
  PUBLIC_URL, VUS, P99_MS, READ_REQUESTS, makeOptions, ceilingShare, tagged, formEncode, tokenHeaders, jsonOf,
  createCodeClient, deleteClient, codeFlow,
} from './lib.js';

const SCOPE = __ENV.SCOPE || 'offline_access';

// Grants a VU had to start again after a failed rotation (each also fails a check).
const regrants = new Counter('refresh_regrants');

// Issue 10: p99 ≤ 5 ms at 64 connections; refresh ≥ 0.5 of the ceiling (with CEILING_RPS).
export const options = makeOptions('refresh', Object.assign(
  { 'http_req_duration{op:refresh}': [`p(99)<=${P99_MS}`] },
  ceilingShare('refresh', 0.5),
));

function grant(client, n) {
  const tokens = codeFlow(new http.CookieJar(), client, {
    op: 'grant', scope: SCOPE, subject: `k6-refresh-${n}`, readRequests: READ_REQUESTS,
  });
  return tokens && tokens.refresh_token ? tokens.refresh_token : null;
}

export function setup() {
  const client = createCodeClient();
  const grants = [];
  for (let i = 1; i <= VUS; i++) {
    const rt = grant(client, i);
    if (!rt) throw new Error(`setup: the authorization code flow for VU ${i} gave no refresh token`);
    grants.push(rt);
  }
  return { client, headers: tokenHeaders(client), grants };
}

let current = null; // this VU's newest refresh token
let seeded = false; // whether this VU took its grant from setup() (each is used by one VU, once)

export default function (data) {
  if (current === null) {
    if (!seeded && __VU >= 1 && __VU <= data.grants.length) {
      current = data.grants[__VU - 1];
    } else {
      regrants.add(1);
      current = grant(data.client, __VU);
      if (current === null) return;
    }
    seeded = true;
  }
  const res = http.post(`${PUBLIC_URL}/oauth2/token`, formEncode({ grant_type: 'refresh_token', refresh_token: current }),
    tagged('refresh', 'POST /oauth2/token (refresh_token)', { headers: data.headers }));
  const body = jsonOf(res);
  const ok = check(res, {
    'refresh: 200': (r) => r.status === 200,
    'refresh: access token': () => !!body && typeof body.access_token === 'string' && body.access_token.length > 0,
    'refresh: rotated refresh token': () => !!body && typeof body.refresh_token === 'string' && body.refresh_token !== current,
  });
  current = ok ? body.refresh_token : null;
}

export function teardown(data) {
  deleteClient(data.client);
}
