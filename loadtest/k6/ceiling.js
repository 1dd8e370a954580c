// Ceiling: GET /health/alive on the public listener, the server's HTTP stack with no work behind
// it (loadtest/run.sh's `ceiling` row). Its req/s is the denominator of the ratio targets: pass it
// to the other scripts as CEILING_RPS.
//
//   k6 run -e PUBLIC_URL=http://127.0.0.1:4444 loadtest/k6/ceiling.js

import http from 'k6/http';
import { check } from 'k6';
import { PUBLIC_URL, makeOptions, tagged, jsonOf } from './lib.js';

// The README states no latency target for the ceiling: only the shared thresholds apply.
export const options = makeOptions('ceiling', {});

export default function () {
  const res = http.get(`${PUBLIC_URL}/health/alive`, tagged('alive', 'GET /health/alive'));
  const body = jsonOf(res);
  check(res, {
    'alive: 200': (r) => r.status === 200,
    'alive: status ok': () => !!body && body.status === 'ok',
  });
}
