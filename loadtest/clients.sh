#!/usr/bin/env bash
# What the number of clients costs: admin client creation, a page of the client list, and
# client_credentials issuance, measured with a few hundred clients and again after $CLIENTS more were
# created (public clients, so no secret hashing is measured). A server whose client writes or
# listing cost O(clients) shows it here.
#
#   loadtest/clients.sh [binary]        # default target/release/hydra; CLIENTS=100000
#
# Env: CLIENTS, DURATION (10s, issuance), CONNS (64), SERVER_CPUS (0), LOAD_CPUS (1), LABEL.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/hydra}
CLIENTS=${CLIENTS:-100000}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
SERVER_CPUS=${SERVER_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
PUB=${PUBLIC_PORT:-14444}
ADM=${ADMIN_PORT:-14445}
command -v oha >/dev/null || cargo install --locked oha
[ -x "$BIN" ] || cargo build --release --bin hydra
DATA=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
SERVER_ENV=(DSN="redb://$DATA/store" SECRETS_SYSTEM=loadtest-system-secret-0123456789
  SERVE_PUBLIC_HOST=127.0.0.1 SERVE_PUBLIC_PORT="$PUB" SERVE_ADMIN_HOST=127.0.0.1 SERVE_ADMIN_PORT="$ADM" LOG_LEVEL=info)
source loadtest/lib.sh
start_server
CLIENT=$(new_client --grant-type client_credentials --scope read --name loadtest)
ID=$(json_field "$CLIENT" client_id)
SECRET=$(json_field "$CLIENT" client_secret)
OHA=(taskset -c "$LOAD_CPUS" oha --no-tui --output-format json)

# Median milliseconds of 40 sequential admin calls: client creation, the first page of the list,
# and a page from the middle of the ids (page_token of the first page's next link).
measure() {
  taskset -c "$LOAD_CPUS" python3 - "$ADM" <<'PY'
import http.client, json, statistics, sys, time, urllib.parse
port = int(sys.argv[1])
c = http.client.HTTPConnection("127.0.0.1", port)
def call(method, path, body=None):
    t = time.perf_counter()
    c.request(method, path, body, {"Content-Type": "application/json"} if body else {})
    r = c.getresponse()
    data = r.read()
    return (time.perf_counter() - t) * 1000, r, data
create = [call("POST", "/admin/clients", json.dumps({"token_endpoint_auth_method": "none"}))[0] for _ in range(40)]
first = [call("GET", "/admin/clients?page_size=100")[0] for _ in range(40)]
_, r, _ = call("GET", "/admin/clients?page_size=100")
link = r.getheader("Link") or ""
nxt = [p.split(">")[0].lstrip("<") for p in link.split(",") if 'rel="next"' in p]
later = [call("GET", nxt[0])[0] for _ in range(40)] if nxt else [0.0]
print(f"{statistics.median(create):.3f} {statistics.median(first):.3f} {statistics.median(later):.3f}")
PY
}
issuance() {
  "${OHA[@]}" -z "$DURATION" -c "$CONNS" -m POST -a "$ID:$SECRET" -T application/x-www-form-urlencoded \
    -d 'grant_type=client_credentials&scope=read' "http://127.0.0.1:$PUB/oauth2/token" \
    | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["summary"]["requestsPerSec"]))'
}
# A few hundred clients first, so that every measured page is full in both rows.
SMALL=300
fill() {
  "${OHA[@]}" -n "$1" -c 16 -m POST -T application/json -d '{"token_endpoint_auth_method":"none"}' \
    "http://127.0.0.1:$ADM/admin/clients" >"$DATA/fill.json"
}
fill "$SMALL"
read -r C1 L1 M1 <<<"$(measure)"
I1=$(issuance)
echo "$SMALL clients: create ${C1} ms, first page ${L1} ms, later page ${M1} ms, issuance ${I1}/s"
T0=$(date +%s)
fill "$CLIENTS"
FILL=$(($(date +%s) - T0))
read -r C2 L2 M2 <<<"$(measure)"
I2=$(issuance)
echo "$CLIENTS more: create ${C2} ms, first page ${L2} ms, later page ${M2} ms, issuance ${I2}/s (fill took ${FILL}s)"
TABLE=$(python3 - "$CLIENTS" "$C1" "$L1" "$M1" "$I1" "$C2" "$L2" "$M2" "$I2" "$FILL" "$SMALL" <<'PY'
import sys
n, c1, l1, m1, i1, c2, l2, m2, i2, fill, small = sys.argv[1:]
f = float
few = int(small) + 41
many = few + int(n) + 40
print("| clients | create ms (median of 40) | list page 1 ms (100 clients) | list page 2 ms | issuance req/s |")
print("| ---: | ---: | ---: | ---: | ---: |")
print(f"| {few} | {c1} | {l1} | {m1} | {i1} |")
print(f"| {many} | {c2} | {l2} | {m2} | {i2} |")
print()
print(f"Ratios (many / few): create {f(c2) / f(c1):.2f}, first page {f(l2) / f(l1):.2f}, second page {f(m2) / f(m1):.2f}, issuance {f(i2) / f(i1):.2f}. Creating the {n} clients took {fill} s.")
PY
)
echo "$TABLE"
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
REV=$("$BIN" version 2>/dev/null | head -1 | awk '{print $2}')
OUT="loadtest/runs/$STAMP-$(git rev-parse --short HEAD)-clients${LABEL:+-$LABEL}.md"
{
  echo "# Client count: a few hundred against $CLIENTS more clients ($STAMP, binary \`$BIN\`${REV:+, $REV})"
  echo
  echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r)."
  echo "Server: \`taskset -c $SERVER_CPUS\`, one worker, durable commits, LOG_LEVEL=info. Load: \`taskset -c $LOAD_CPUS\`."
  echo
  echo "$TABLE"
  echo
  echo "Command: \`CLIENTS=$CLIENTS loadtest/clients.sh $BIN\`. Fill: \`oha -n $CLIENTS -c 16 -m POST -T application/json -d '{\"token_endpoint_auth_method\":\"none\"}' http://127.0.0.1:$ADM/admin/clients\`; issuance: \`oha -z $DURATION -c $CONNS -m POST -a <id>:<secret> ... /oauth2/token\`; create and list: 40 sequential calls each on one keep-alive connection, median."
} >"$OUT"
echo "wrote $OUT"
