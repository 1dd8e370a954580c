// Issuance: client_credentials grants with client_secret_basic (loadtest/run.sh's `issuance`
// row: POST /oauth2/token, grant_type=client_credentials&scope=read). Each request is a new
// access token written durably before the 200.
//
//   k6 run -e PUBLIC_URL=http://127.0.0.1:4444 -e ADMIN_URL=http://127.0.0.1:4445 loadtest/k6/issuance.js

import http from 'k6/http';
import { check } from 'k6';
import {
  PUBLIC_URL, P99_MS, makeOptions, ceilingShare, tagged, formEncode, tokenHeaders, jsonOf, createClient, deleteClient,
} from './lib.js';

// Issue 10: p99 ≤ 5 ms at 64 connections; issuance ≥ 0.75 of the ceiling (with CEILING_RPS).
export const options = makeOptions('issuance', Object.assign(
  { 'http_req_duration{op:issue}': [`p(99)<=${P99_MS}`] },
  ceilingShare('issue', 0.75),
));

const BODY = formEncode({ grant_type: 'client_credentials', scope: 'read' });

export function setup() {
  const client = createClient({
    client_name: 'k6-loadtest-issuance',
    grant_types: ['client_credentials'],
    scope: 'read',
    token_endpoint_auth_method: 'client_secret_basic',
  });
  return { client, headers: tokenHeaders(client) };
}

export default function (data) {
  const res = http.post(`${PUBLIC_URL}/oauth2/token`, BODY,
    tagged('issue', 'POST /oauth2/token (client_credentials)', { headers: data.headers }));
  const body = jsonOf(res);
  check(res, {
    'issue: 200': (r) => r.status === 200,
    'issue: access token': () => !!body && typeof body.access_token === 'string' && body.access_token.length > 0,
    'issue: bearer': () => !!body && String(body.token_type).toLowerCase() === 'bearer',
    'issue: scope read': () => !!body && body.scope === 'read',
  });
}

export function teardown(data) {
  deleteClient(data.client);
}
