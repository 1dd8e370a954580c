#!/usr/bin/env bash
# Soak test: a fixed request rate for $MINUTES minutes with the background janitor running.
# Two oha processes at fixed rates with latency correction (`-q`, `--latency-correction`, so a
# stall shows up in the percentiles instead of slowing the load down):
#   issuance    POST /oauth2/token at $ISSUE_RATE/s, tokens living $TTL (so they expire during
#               the run and the janitor deletes them)
#   introspect  POST /admin/oauth2/introspect at $INTROSPECT_RATE/s over a pool of long-lived tokens
# Both run in one-minute segments; after each minute the script records p50/p99 and errors of
# both, the server's resident memory, the data directory's size and the janitor's counters.
#
# Env: MINUTES (30), ISSUE_RATE (4000), INTROSPECT_RATE (4000), TTL (2m), JANITOR (1m),
#      CONNS (32), SERVER_CPUS (0), LOAD_CPUS (1), POOL (2000).
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-30}
ISSUE_RATE=${ISSUE_RATE:-4000}
INTROSPECT_RATE=${INTROSPECT_RATE:-4000}
TTL=${TTL:-2m}
JANITOR=${JANITOR:-1m}
CONNS=${CONNS:-32}
POOL=${POOL:-2000}
SERVER_CPUS=${SERVER_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
PUB=${PUBLIC_PORT:-14464}
ADM=${ADMIN_PORT:-14465}

cargo build --release --bin hydra
command -v oha >/dev/null || cargo install --locked oha
BIN=target/release/hydra
DATA=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
SERVER_ENV=(DSN="redb://$DATA/store" SECRETS_SYSTEM=loadtest-system-secret-0123456789
  SERVE_PUBLIC_HOST=127.0.0.1 SERVE_PUBLIC_PORT="$PUB" SERVE_ADMIN_HOST=127.0.0.1 SERVE_ADMIN_PORT="$ADM"
  LOG_LEVEL=${LOG_LEVEL:-info} TTL_ACCESS_TOKEN="$TTL" ENGINE_JANITOR_INTERVAL="$JANITOR")
source loadtest/lib.sh
start_server
C=$(new_client --grant-type client_credentials --scope read --name soak)
ID=$(json_field "$C" client_id)
SECRET=$(json_field "$C" client_secret)
P=$(new_client --grant-type client_credentials --scope read --name soak-pool)
PID_=$(json_field "$P" client_id)
PSECRET=$(json_field "$P" client_secret)
curl -sf -X PUT "http://127.0.0.1:$ADM/admin/clients/$PID_/lifespans" -H 'Content-Type: application/json' \
  -d '{"client_credentials_grant_access_token_lifespan":"24h"}' >/dev/null
token_pool "$PID_" "$PSECRET" "$POOL" "$DATA/pool.txt"

OHA=(taskset -c "$LOAD_CPUS" oha --no-tui --output-format json -z 60s -c "$CONNS" --latency-correction)
ISSUE_CMD=("${OHA[@]}" -q "$ISSUE_RATE" -m POST -a "$ID:$SECRET" -T application/x-www-form-urlencoded
  -d 'grant_type=client_credentials&scope=read' "http://127.0.0.1:$PUB/oauth2/token")
INTRO_CMD=("${OHA[@]}" -q "$INTROSPECT_RATE" -m POST -T application/x-www-form-urlencoded -Z "$DATA/pool.txt"
  "http://127.0.0.1:$ADM/admin/oauth2/introspect")
metric() { curl -sf "http://127.0.0.1:$ADM/admin/metrics/prometheus" | awk -v m="$1" 'index($0, m) == 1 {s += $NF} END {print s + 0}'; }
: >"$DATA/minutes.tsv"
for m in $(seq "$MINUTES"); do
  "${ISSUE_CMD[@]}" >"$DATA/issue.$m.json" &
  A=$!
  "${INTRO_CMD[@]}" >"$DATA/intro.$m.json" &
  B=$!
  wait $A $B
  RSS=$(awk '/VmRSS/ {print int($2/1024)}' "/proc/$SERVER/status")
  BYTES=$(du -sb "$DATA/store" | cut -f1)
  printf '%s\t%s\t%s\t%s\t%s\n' "$m" "$RSS" "$BYTES" "$(metric 'hydra_janitor_deleted_total{kind="tokens"}')" \
    "$(metric hydra_janitor_passes_total)" >>"$DATA/minutes.tsv"
done

STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
OUT="loadtest/runs/$STAMP-$COMMIT-soak.md"
TABLE=$(python3 - "$DATA" "$MINUTES" <<'PY'
import json, sys
d, minutes = sys.argv[1], int(sys.argv[2])
rows = [l.split("\t") for l in open(f"{d}/minutes.tsv").read().split("\n") if l]
def stats(name, m):
    j = json.load(open(f"{d}/{name}.{m}.json"))
    codes = j.get("statusCodeDistribution", {})
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    bad = sum(v for k, v in codes.items() if not k.startswith("2"))
    errs = bad + sum(v for k, v in j.get("errorDistribution", {}).items() if "deadline" not in k)
    lat = j.get("latencyPercentiles", {})
    return ok, errs, lat.get("p50", 0) * 1000, lat.get("p99", 0) * 1000
print("| minute | issued | issuance p50 / p99 ms | introspected | introspection p50 / p99 ms | errors | RSS MiB | data dir MiB | janitor: tokens deleted (passes) |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
tot_err = 0
p99s = {"issue": [], "intro": []}
for m, rss, size, deleted, passes in rows:
    i = stats("issue", m)
    n = stats("intro", m)
    tot_err += i[1] + n[1]
    p99s["issue"].append(i[3]); p99s["intro"].append(n[3])
    print(f"| {m} | {i[0]} | {i[2]:.2f} / {i[3]:.2f} | {n[0]} | {n[2]:.2f} / {n[3]:.2f} | {i[1] + n[1]} | {rss} | {int(size) / 2**20:.0f} | {deleted} ({passes}) |")
print()
print(f"Errors over the run: {tot_err}.")
for k, name in [("issue", "issuance"), ("intro", "introspection")]:
    xs = sorted(p99s[k])
    print(f"{name} p99 per minute: median {xs[len(xs)//2]:.2f} ms, max {xs[-1]:.2f} ms, min {xs[0]:.2f} ms.")
PY
)
{
  echo "# Soak test $STAMP ($COMMIT)"
  echo
  echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r)."
  echo "Server: \`taskset -c $SERVER_CPUS\`, env: \`$(printf '%s ' "${SERVER_ENV[@]}" | sed "s|$DATA|<fresh dir>|; s|SECRETS_SYSTEM=[^ ]*|SECRETS_SYSTEM=<secret>|")\`"
  echo "Load: oha $(oha --version | awk '{print $2}'), \`taskset -c $LOAD_CPUS\`, two processes in one-minute segments for $MINUTES minutes:"
  echo
  echo "- \`$(printf '%s ' "${ISSUE_CMD[@]}" | sed "s|$ID:$SECRET|<id>:<secret>|")\`"
  echo "- \`$(printf '%s ' "${INTRO_CMD[@]}" | sed "s|$DATA/pool.txt|<pool of $POOL long-lived tokens>|")\`"
  echo
  echo "Command: \`MINUTES=$MINUTES ISSUE_RATE=$ISSUE_RATE INTROSPECT_RATE=$INTROSPECT_RATE TTL=$TTL JANITOR=$JANITOR loadtest/soak.sh\`"
  echo
  echo "$TABLE"
} >"$OUT"
cat "$OUT"
echo "wrote $OUT"
