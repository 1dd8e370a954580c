#!/usr/bin/env bash
# What a token hook costs: the same scenarios against the server without a hook, then with
# `oauth2.token_hook` pointing at a local receiver (bench's `hookd`: 200 with one access-token
# claim, kept-alive connections), on a fresh data directory each:
#   ceiling     GET /health/alive
#   issuance    POST /oauth2/token, client_credentials (the hook is called once per token)
#   flow        the browser flow with its code exchange (the hook is called at the exchange)
# Prints one table (each scenario's rate without and with the hook, and their ratio) and writes
# it, with the exact commands, under loadtest/runs/.
#
# Env: DURATION (15s), CONNS (64), FLOW_CONNS (32), SERVER_CPUS (0), LOAD_CPUS (1; oha, flowload
#      and hookd share them, as a hook service on another machine would not), LOG_LEVEL (info).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15s}
CONNS=${CONNS:-64}
FLOW_CONNS=${FLOW_CONNS:-32}
SERVER_CPUS=${SERVER_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
PUB=${PUBLIC_PORT:-14444}
ADM=${ADMIN_PORT:-14445}

cargo build --release --bin hydra
cargo build --release -p hydra-bench --bin flowload --bin hookd
command -v oha >/dev/null || cargo install --locked oha
BIN=target/release/hydra
DATA=$(mktemp -d)
trap 'kill ${SERVER:-} ${HOOKD:-} 2>/dev/null || true; wait ${SERVER:-} ${HOOKD:-} 2>/dev/null || true; rm -rf "$DATA"' EXIT
source loadtest/lib.sh

taskset -c "$LOAD_CPUS" target/release/hookd --port 0 >"$DATA/hookd.out" &
HOOKD=$!
for _ in $(seq 50); do [ -s "$DATA/hookd.out" ] && break; sleep 0.1; done
HOOK_ADDR=$(awk '{print $3}' "$DATA/hookd.out")
HOOK_URL="http://$HOOK_ADDR/token-hook"

OHA=(taskset -c "$LOAD_CPUS" oha --no-tui --output-format json -z "$DURATION" -c "$CONNS")
run_scenarios() { # label
  local label=$1
  RP=$(new_client --grant-type authorization_code,refresh_token --response-type code --scope openid,offline_access \
    --redirect-uri https://rp.example/cb --name loadtest-rp)
  CLIENT=$(new_client --grant-type client_credentials --scope read --name loadtest)
  local id secret rp_id rp_secret
  id=$(json_field "$CLIENT" client_id)
  secret=$(json_field "$CLIENT" client_secret)
  rp_id=$(json_field "$RP" client_id)
  rp_secret=$(json_field "$RP" client_secret)
  "${OHA[@]}" "http://127.0.0.1:$PUB/health/alive" >"$DATA/ceiling-$label.json"
  sleep 1
  "${OHA[@]}" -m POST -a "$id:$secret" -T application/x-www-form-urlencoded -d 'grant_type=client_credentials&scope=read' \
    "http://127.0.0.1:$PUB/oauth2/token" >"$DATA/issuance-$label.json"
  check_run "$DATA/issuance-$label.json" "issuance ($label)" "$DATA/server.log"
  sleep 1
  taskset -c "$LOAD_CPUS" target/release/flowload --public "http://127.0.0.1:$PUB" --admin "http://127.0.0.1:$ADM" \
    --client "$rp_id" --secret "$rp_secret" --duration "${DURATION%s}" --mode flow --conns "$FLOW_CONNS" >"$DATA/flow-$label.json"
  # A token of each kind carries the hook's claim (or not).
  local at
  at=$(curl -sf -u "$id:$secret" -d 'grant_type=client_credentials&scope=read' "http://127.0.0.1:$PUB/oauth2/token" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -sf -d "token=$at" "http://127.0.0.1:$ADM/admin/oauth2/introspect" >"$DATA/ext-$label.json"
}

BASE_ENV=(SECRETS_SYSTEM=loadtest-system-secret-0123456789 SERVE_PUBLIC_HOST=127.0.0.1 SERVE_PUBLIC_PORT="$PUB"
  SERVE_ADMIN_HOST=127.0.0.1 SERVE_ADMIN_PORT="$ADM" LOG_LEVEL=${LOG_LEVEL:-info})
mkdir -p "$DATA/a" "$DATA/b"
SERVER_ENV=(DSN="redb://$DATA/a" "${BASE_ENV[@]}")
start_server
run_scenarios without
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
SERVER_ENV=(DSN="redb://$DATA/b" "${BASE_ENV[@]}" OAUTH2_TOKEN_HOOK="$HOOK_URL"
  CLIENTS_HTTP_PRIVATE_IP_EXCEPTION_URLS="$HOOK_URL")
start_server
run_scenarios with

STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
OUT="loadtest/runs/$STAMP-$COMMIT-hooks.md"
TABLE=$(python3 - "$DATA" <<'PY'
import json, sys
d = sys.argv[1]
def rate(name, label):
    j = json.load(open(f"{d}/{name}-{label}.json"))
    return j["per_sec"] if "per_sec" in j else j["summary"]["requestsPerSec"]
def p99(name, label):
    j = json.load(open(f"{d}/{name}-{label}.json"))
    return j["p99_ms"] if "p99_ms" in j else j.get("latencyPercentiles", {}).get("p99", 0) * 1000
print("| scenario | without hook (req/s; flow: flows/s) | p99 ms | with hook | p99 ms | with / without | with hook / its ceiling |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for n in ["ceiling", "issuance", "flow"]:
    a, b = rate(n, "without"), rate(n, "with")
    print(f"| {n} | {a:.0f} | {p99(n, 'without'):.2f} | {b:.0f} | {p99(n, 'with'):.2f} | {b / a:.2f} | {b / rate('ceiling', 'with'):.2f} |")
for label in ["without", "with"]:
    ext = json.load(open(f"{d}/ext-{label}.json")).get("ext")
    print(f"\nAn access token issued {label} the hook: ext = {json.dumps(ext)}")
PY
)
echo "$TABLE"
{
  echo "# Token hook cost $STAMP ($COMMIT)"
  echo
  echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r)."
  echo "Server: \`taskset -c $SERVER_CPUS\`, a fresh data directory per half, durable commits, log level ${LOG_LEVEL:-info}."
  echo "Hook: bench's \`hookd\` on 127.0.0.1, \`taskset -c $LOAD_CPUS\` (shared with the load generators), answering 200 with one access-token claim; the server listed its URL in \`clients.http.private_ip_exception_urls\`."
  echo "Load: oha $(oha --version | awk '{print $2}'), \`taskset -c $LOAD_CPUS\`, $CONNS connections ($FLOW_CONNS flows), $DURATION per scenario."
  echo
  echo "$TABLE"
  echo
  echo "Commands (each against the server without, then with, \`OAUTH2_TOKEN_HOOK=$HOOK_URL\`):"
  echo
  echo "- ceiling: \`${OHA[*]} http://127.0.0.1:$PUB/health/alive\`"
  echo "- issuance: \`${OHA[*]} -m POST -a <id>:<secret> -T application/x-www-form-urlencoded -d grant_type=client_credentials&scope=read http://127.0.0.1:$PUB/oauth2/token\`"
  echo "- flow: \`taskset -c $LOAD_CPUS target/release/flowload --public http://127.0.0.1:$PUB --admin http://127.0.0.1:$ADM --client <rp> --secret <secret> --duration ${DURATION%s} --mode flow --conns $FLOW_CONNS\`"
  echo "- hook receiver: \`taskset -c $LOAD_CPUS target/release/hookd --port 0\`"
} >"$OUT"
echo "wrote $OUT"
