#!/usr/bin/env bash
# Instructions per request, counted by callgrind (repeatable where wall time on a shared machine
# is not): the server runs under valgrind with one worker, every thread counted (worker,
# committers, log writer, helper pool: on one core they all cost the request), counters zeroed
# after a warm-up, then N requests per scenario, then the totals are read from the dump.
#
#   loadtest/callgrind.sh                       # this tree's release build, LEVELS="info warn", N=2000
#
# Env: BIN (a release binary), LEVELS (log levels to compare), N (requests per scenario), CONNS (8),
#      SCENARIOS ("issuance introspect"; "ceiling" adds GET /health/alive), KEEP (a directory to
#      copy each scenario's dump to, for `callgrind_annotate --inclusive=yes`).
# Writes the table and the exact commands under loadtest/runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
LEVELS=${LEVELS:-info warn}
N=${N:-2000}
CONNS=${CONNS:-8}
SCENARIOS=${SCENARIOS:-issuance introspect}
PUB=${PUBLIC_PORT:-14544}
ADM=${ADMIN_PORT:-14545}
command -v valgrind >/dev/null || apt-get install -y valgrind
command -v oha >/dev/null || cargo install --locked oha
if [ -z "${BIN:-}" ]; then
  cargo build --release --bin hydra
  BIN=target/release/hydra
fi
REV=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src storage protocol Cargo.toml || echo "+dirty")
DATA=$(mktemp -d)
SERVER=
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
source loadtest/lib.sh
SERVER_CPUS=${SERVER_CPUS:-0}
BASE_ENV=(DSN="redb://$DATA/store" SECRETS_SYSTEM=loadtest-system-secret-0123456789 ENGINE_WORKERS=1
  ENGINE_DRIVER=legacy SERVE_PUBLIC_HOST=127.0.0.1 SERVE_PUBLIC_PORT="$PUB" SERVE_ADMIN_HOST=127.0.0.1
  SERVE_ADMIN_PORT="$ADM" ENGINE_JANITOR_INTERVAL=0s)

# Keys and a client are made once, natively (RSA generation under valgrind takes minutes).
SERVER_ENV=("${BASE_ENV[@]}" LOG_LEVEL=warn)
start_server
CLIENT=$(new_client --grant-type client_credentials --scope read --name callgrind)
ID=$(json_field "$CLIENT" client_id)
SECRET=$(json_field "$CLIENT" client_secret)
token_pool "$ID" "$SECRET" 500 "$DATA/pool.txt"
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=

# Ir (instructions executed) summed over every thread's dump.
total_ir() { cat "$DATA"/cg.out* | awk '/^(summary|totals):/ { s += $2 } END { print s }'; }

ROWS=()
for level in $LEVELS; do
  for scenario in $SCENARIOS; do
    rm -f "$DATA"/cg.out*
    env "${BASE_ENV[@]}" LOG_LEVEL="$level" taskset -c "$SERVER_CPUS" valgrind --tool=callgrind \
      --callgrind-out-file="$DATA/cg.out" --separate-threads=no "$BIN" serve all >"$DATA/server.log" 2>&1 &
    SERVER=$!
    for _ in $(seq 600); do
      curl -sf "http://127.0.0.1:$PUB/health/ready" >/dev/null 2>&1 && break
      sleep 0.2
    done
    case "$scenario" in
      issuance) REQ=(-m POST -a "$ID:$SECRET" -T application/x-www-form-urlencoded -d 'grant_type=client_credentials&scope=read'
        "http://127.0.0.1:$PUB/oauth2/token") ;;
      introspect) REQ=(-m POST -T application/x-www-form-urlencoded -Z "$DATA/pool.txt" "http://127.0.0.1:$ADM/admin/oauth2/introspect") ;;
      ceiling) REQ=("http://127.0.0.1:$PUB/health/alive") ;;
      *) echo "unknown scenario $scenario" >&2; exit 2 ;;
    esac
    oha --no-tui -n 200 -c "$CONNS" "${REQ[@]}" >/dev/null
    callgrind_control -z "$SERVER" >/dev/null
    oha --no-tui --output-format json -n "$N" -c "$CONNS" "${REQ[@]}" >"$DATA/oha.json"
    callgrind_control -d "$SERVER" >/dev/null
    sleep 1
    ok=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["statusCodeDistribution"].get("200", 0))' "$DATA/oha.json")
    kill -INT "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=
    # The dump taken after the N requests is the highest-numbered one.
    dump=$(ls -1 "$DATA"/cg.out.* | sort -V | tail -1)
    ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")
    per=$((ir / N))
    if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$dump" "$KEEP/$level-$scenario.callgrind"; fi
    echo "$level $scenario: $ok/$N answered 200, $ir instructions, $per per request"
    ROWS+=("$level|$scenario|$ok|$ir|$per")
  done
done

TABLE=$(python3 - "${ROWS[@]}" <<'PY'
import sys
rows = [r.split("|") for r in sys.argv[1:]]
print("| log level | scenario | 200s | instructions | per request |")
print("| --- | --- | ---: | ---: | ---: |")
for level, sc, ok, ir, per in rows:
    print(f"| {level} | {sc} | {ok} | {int(ir):,} | {int(per):,} |")
per = {(r[0], r[1]): int(r[4]) for r in rows}
levels = list(dict.fromkeys(r[0] for r in rows))
if len(levels) == 2:
    a, b = levels
    print()
    for sc in dict.fromkeys(r[1] for r in rows):
        print(f"- {sc}: instructions per request at {b} / at {a} = {per[(b, sc)] / per[(a, sc)]:.3f} "
              f"(the throughput ratio {a}/{b} one core would show if instructions were all that counted)")
PY
)
echo "$TABLE"
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
OUT="loadtest/runs/$STAMP-$REV-callgrind.md"
{
  echo "# Instructions per request (callgrind) $STAMP: $REV"
  echo
  echo "Server: \`$BIN\` under \`valgrind --tool=callgrind\`, one worker, epoll driver, durable commits, every thread counted;"
  echo "counters zeroed after 200 warm-up requests, then $N requests with $CONNS connections (oha)."
  echo
  echo "$TABLE"
  echo
  echo "Command: \`LEVELS='$LEVELS' SCENARIOS='$SCENARIOS' N=$N CONNS=$CONNS loadtest/callgrind.sh\`"
} >"$OUT"
echo "wrote $OUT"
