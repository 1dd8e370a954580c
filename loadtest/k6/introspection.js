// Introspection: POST /admin/oauth2/introspect (RFC 7662; Hydra's admin endpoint takes no caller
// authentication) of client_credentials tokens minted in setup(), loadtest/run.sh's `introspect`
// row (a pool of POOL tokens, default 2000, taken in turn).
//
//   k6 run -e PUBLIC_URL=http://127.0.0.1:4444 -e ADMIN_URL=http://127.0.0.1:4445 loadtest/k6/introspection.js

import http from 'k6/http';
import { check } from 'k6';
import {
  PUBLIC_URL, ADMIN_URL, VUS, P99_MS, FORM_HEADERS, makeOptions, ceilingShare, tagged, formEncode, tokenHeaders, jsonOf,
  createClient, deleteClient,
} from './lib.js';

// Issue 10: p99 ≤ 5 ms at 64 connections; introspection ≥ 0.95 of the ceiling (with CEILING_RPS).
export const options = makeOptions('introspection', Object.assign(
  { 'http_req_duration{op:introspect}': [`p(99)<=${P99_MS}`] },
  ceilingShare('introspect', 0.95),
));

const POOL = Math.max(1, parseInt(__ENV.POOL || '2000', 10) || 2000);

export function setup() {
  const client = createClient({
    client_name: 'k6-loadtest-introspection',
    grant_types: ['client_credentials'],
    scope: 'read',
    token_endpoint_auth_method: 'client_secret_basic',
  });
  const params = tagged('setup', 'POST /oauth2/token (client_credentials)', { headers: tokenHeaders(client) });
  const body = formEncode({ grant_type: 'client_credentials', scope: 'read' });
  const tokens = [];
  while (tokens.length < POOL) {
    const n = Math.min(100, POOL - tokens.length);
    const batch = [];
    for (let i = 0; i < n; i++) batch.push(['POST', `${PUBLIC_URL}/oauth2/token`, body, params]);
    for (const res of http.batch(batch)) {
      if (res.status !== 200) throw new Error(`minting the pool: POST /oauth2/token answered ${res.status}: ${res.body}`);
      tokens.push(res.json().access_token);
    }
  }
  // Form bodies made once, as oha's -Z pool file in run.sh.
  return { client, bodies: tokens.map((t) => formEncode({ token: t })) };
}

let turn = 0;

export default function (data) {
  // VU v takes tokens v-1, v-1+VUS, …: the VUs spread over the whole pool.
  const body = data.bodies[((__VU - 1) + turn * VUS) % data.bodies.length];
  turn++;
  const res = http.post(`${ADMIN_URL}/admin/oauth2/introspect`, body,
    tagged('introspect', 'POST /admin/oauth2/introspect', { headers: FORM_HEADERS }));
  const json = jsonOf(res);
  check(res, {
    'introspect: 200': (r) => r.status === 200,
    'introspect: active': () => !!json && json.active === true,
    'introspect: client': () => !!json && json.client_id === data.client.client_id,
  });
}

export function teardown(data) {
  deleteClient(data.client);
}
