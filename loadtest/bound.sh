#!/usr/bin/env bash
# What bounds a ratio to the ceiling: runs the ceiling (GET /health/alive) and issuance
# (client_credentials) with oha and with wrk, and refresh rotation with bench's flowload (a
# blocking thread per connection, as loadtest/run.sh runs it) and with wrk (one event-driven
# thread spending a queue of refresh tokens, loadtest/refresh.lua), server on SERVER_CPUS and the
# load generator on LOAD_CPUS as loadtest/run.sh pins them, and shows for each run where both
# cores went:
#   - the load generator's own CPU per request (user + system, from its rusage), and how idle
#     its core was: a load core near 0 % idle means the generator, not the server, set the rate;
#   - the server process's CPU per request, and its core split into user, system, softirq
#     (loopback TCP is processed there), iowait (idle while the disk has a write outstanding)
#     and idle, from /proc/stat.
# A generator that needs more CPU per issuance request than per ceiling request caps the ratio
# below 1 even for a server that did no work at all: at most (its µs per ceiling request) /
# (its µs per issuance request) when the ceiling run saturates its core.
#
#   loadtest/bound.sh                  # this tree's release build
#   BIN=<binary> loadtest/bound.sh
#
# Env: DURATION (8s), CONNS (64), ROUNDS (2, interleaved), SERVER_CPUS (0), LOAD_CPUS (1), LABEL.
# wrk runs a thread per load core with a Lua script for the POST (one thread for refresh: its
# token queue is per thread); oha and flowload as run.sh runs them.
# Writes the table and the exact commands under loadtest/runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-8s}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-2}
SERVER_CPUS=${SERVER_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
PUB=${PUBLIC_PORT:-14484}
ADM=${ADMIN_PORT:-14485}
die() { echo "bound.sh: $*" >&2; exit 1; }
source loadtest/lib.sh
select_bin
command -v oha >/dev/null || cargo install --locked oha
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
command -v wrk >/dev/null || die "wrk is not installed"
[ -x /usr/bin/time ] || apt-get install -y time >/dev/null
LOAD_THREADS=$(taskset -c "$LOAD_CPUS" nproc)
DATA=$(mktemp -d)
SERVER=
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
SERVER_ENV=(DSN="redb://$DATA/store" SECRETS_SYSTEM=loadtest-system-secret-0123456789
  SERVE_PUBLIC_HOST=127.0.0.1 SERVE_PUBLIC_PORT="$PUB" SERVE_ADMIN_HOST=127.0.0.1 SERVE_ADMIN_PORT="$ADM"
  LOG_LEVEL=${LOG_LEVEL:-info})
start_server
curl -sf "http://127.0.0.1:$PUB/health/ready" >/dev/null || die "the server did not start (see $DATA/server.log)"
CLIENT=$(new_client --grant-type client_credentials --scope read --name bound)
ID=$(json_field "$CLIENT" client_id)
SECRET=$(json_field "$CLIENT" client_secret)
BODY='grant_type=client_credentials&scope=read'
# wrk's Lua: the POST, and a summary line the parser below reads (requests, errors, duration µs).
cat >"$DATA/report.lua" <<'LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %d %d %d\n", summary.requests,
    e.status + e.connect + e.read + e.write + e.timeout, summary.duration))
end
LUA
{
  echo 'wrk.method = "POST"'
  echo "wrk.body = \"$BODY\""
  echo 'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"'
  echo "wrk.headers[\"Authorization\"] = \"Basic $(printf '%s:%s' "$ID" "$SECRET" | base64 -w0)\""
  cat "$DATA/report.lua"
} >"$DATA/post.lua"
# Warms the secret cache.
token_pool "$ID" "$SECRET" 1 /dev/null
# Refresh rotation: a client with refresh tokens; wrk's queue is seeded with more tokens than it
# has connections (it asks for one request more than it has connections before any answer).
cargo build --release -p hydra-bench --bin flowload
RP=$(new_client --grant-type authorization_code,refresh_token --response-type code --scope openid,offline_access \
  --redirect-uri https://rp.example/cb --name bound-rp)
RP_ID=$(json_field "$RP" client_id)
RP_SECRET=$(json_field "$RP" client_secret)
RP_BASIC="Basic $(printf '%s:%s' "$RP_ID" "$RP_SECRET" | base64 -w0)"
FLOWLOAD=(target/release/flowload --public "http://127.0.0.1:$PUB" --admin "http://127.0.0.1:$ADM" --client "$RP_ID"
  --secret "$RP_SECRET" --scope offline_access)

# One core of each side is read: the first of SERVER_CPUS and of LOAD_CPUS.
cpu_line() { grep "^cpu$1 " /proc/stat; }
server_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
FIRST_LOAD_CPU=${LOAD_CPUS%%[,-]*}

ROWS=()
for r in $(seq "$ROUNDS"); do
  for run in oha:ceiling oha:issuance wrk:ceiling wrk:issuance flowload:refresh wrk:refresh; do
    gen=${run%%:*}
    scen=${run#*:}
    if [ "$scen" = ceiling ]; then URL="http://127.0.0.1:$PUB/health/alive"; else URL="http://127.0.0.1:$PUB/oauth2/token"; fi
    case $run in
      oha:*)
        CMD=(oha --no-tui -z "$DURATION" -c "$CONNS" --output-format json)
        [ "$scen" = ceiling ] || CMD+=(-m POST -T application/x-www-form-urlencoded -a "$ID:$SECRET" -d "$BODY")
        CMD+=("$URL") ;;
      wrk:ceiling | wrk:issuance)
        CMD=(wrk -t"$LOAD_THREADS" -c"$CONNS" -d"$DURATION" -s "$DATA/$([ "$scen" = ceiling ] && echo report || echo post).lua" "$URL") ;;
      flowload:refresh)
        CMD=("${FLOWLOAD[@]}" --mode refresh --conns "$CONNS" --duration "${DURATION%s}") ;;
      wrk:refresh)
        "${FLOWLOAD[@]}" --mode seed --conns "$((CONNS + 16))" >"$DATA/seed"
        CMD=(wrk -t1 -c"$CONNS" -d"$DURATION" -s loadtest/refresh.lua "http://127.0.0.1:$PUB" -- "$DATA/seed" "$RP_BASIC") ;;
    esac
    s0=$(cpu_line "${SERVER_CPUS%%[,-]*}"); l0=$(cpu_line "$FIRST_LOAD_CPU"); t0=$(server_ticks)
    /usr/bin/time -f '%U %S' -o "$DATA/time" taskset -c "$LOAD_CPUS" "${CMD[@]}" >"$DATA/out" 2>/dev/null
    s1=$(cpu_line "${SERVER_CPUS%%[,-]*}"); l1=$(cpu_line "$FIRST_LOAD_CPU"); t1=$(server_ticks)
    ROWS+=("$(python3 - "$gen" "$scen" "$r" "$DATA/out" "$(cat "$DATA/time")" "$t0" "$t1" "$s0" "$s1" "$l0" "$l1" \
      "$(getconf CLK_TCK)" <<'PY'
import json, sys
gen, scen, rnd, out, rus, t0, t1, s0, s1, l0, l1, tick = sys.argv[1:]
text = open(out).read()
if gen == "flowload":
    j = json.loads(text.splitlines()[-1])
    n, bad, rate = j["completed"], j["errors"], j["per_sec"]
elif gen == "oha":
    j = json.loads(text)
    codes = j.get("statusCodeDistribution", {})
    n = sum(v for k, v in codes.items() if k.startswith("2"))
    bad = sum(v for k, v in codes.items() if not k.startswith("2"))
    rate = j["summary"]["requestsPerSec"]
else:
    line = next(l for l in text.splitlines() if l.startswith("WRK "))
    n, bad, dur_us = map(int, line.split()[1:])
    rate = n / (dur_us / 1e6)
if n == 0 or bad:
    sys.exit(f"{gen} {scen}: {n} answers, {bad} errors or non-2xx")
user, system = map(float, rus.split())
def split(a, b):
    d = [int(y) - int(x) for x, y in zip(a.split()[1:9], b.split()[1:9])]
    total = sum(d) or 1
    return {k: 100 * d[i] / total for k, i in
          (("user", 0), ("system", 2), ("idle", 3), ("iowait", 4), ("softirq", 6), ("steal", 7))}
s, l = split(s0, s1), split(l0, l1)
server_us = (float(t1) - float(t0)) / float(tick) / n * 1e6
gen_us = (user + system) / n * 1e6
print(f"{gen}|{scen}|{rnd}|{rate:.0f}|{gen_us:.2f}|{l['idle']:.1f}|{server_us:.2f}|"
    f"{s['user']:.0f}|{s['system']:.0f}|{s['softirq']:.0f}|{s['iowait']:.1f}|{s['idle']:.1f}")
PY
)")
    echo "${ROWS[-1]}" >&2
  done
done

STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
REV=$(git rev-parse --short HEAD)
OUT="loadtest/runs/$STAMP-$REV-bound${LABEL:+-$LABEL}.md"
python3 - "$ROUNDS" "${ROWS[@]}" >"$OUT" <<'PY'
import statistics, sys
rounds = int(sys.argv[1])
rows = [r.split("|") for r in sys.argv[2:]]
def med(gen, scen, i):
    return statistics.median(float(r[i]) for r in rows if r[0] == gen and r[1] == scen)
print("| generator | scenario | req/s | generator CPU µs/req | load core idle % | server CPU µs/req | server core user / system / softirq % | server core iowait % | server core idle % |")
print("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
for gen, scen in (("oha", "ceiling"), ("oha", "issuance"), ("wrk", "ceiling"), ("wrk", "issuance"),
                  ("flowload", "refresh"), ("wrk", "refresh")):
        print(f"| {gen} | {scen} | {med(gen, scen, 3):.0f} | {med(gen, scen, 4):.2f} | {med(gen, scen, 5):.1f} | "
              f"{med(gen, scen, 6):.2f} | {med(gen, scen, 7):.0f} / {med(gen, scen, 8):.0f} / {med(gen, scen, 9):.0f} | "
              f"{med(gen, scen, 10):.1f} | {med(gen, scen, 11):.1f} |")
print()
def rate(gen, scen, r):
    return next(float(x[3]) for x in rows if x[0] == gen and x[1] == scen and x[2] == str(r))
for gen in ("oha", "wrk"):
    ratios = [rate(gen, "issuance", r) / rate(gen, "ceiling", r) for r in range(1, rounds + 1)]
    cap = med(gen, "ceiling", 4) / med(gen, "issuance", 4)
    print(f"- {gen}: issuance / ceiling by round {', '.join(f'{x:.2f}' for x in ratios)}; the generator's own CPU "
          f"per ceiling request / per issuance request: {cap:.2f} (the ratio it could show for a server that did no work, "
          f"when the ceiling run saturates the load core)")
for gen, ceiling in (("flowload", "oha"), ("wrk", "wrk")):
    ratios = [rate(gen, "refresh", r) / rate(ceiling, "ceiling", r) for r in range(1, rounds + 1)]
    print(f"- refresh with {gen} / {ceiling}'s ceiling by round {', '.join(f'{x:.2f}' for x in ratios)}")
print()
print("Every round's rows (generator|scenario|round|req/s|gen µs|load idle %|server µs|user|system|softirq|iowait|idle):")
print()
for r in sys.argv[2:]:
    print(f"    {r}")
PY
{
  echo
  echo "Machine: $(nproc) CPUs, kernel $(uname -r). Server: \`taskset -c $SERVER_CPUS\`, $BIN_NOTE, durable commits,"
  echo "log level ${LOG_LEVEL:-info}; load: \`taskset -c $LOAD_CPUS\`, $CONNS connections, $DURATION per run, rounds interleaved,"
  echo "one server for every run. Medians of $ROUNDS round(s)."
  echo
  echo "Command: \`${BIN_GIVEN}DURATION=$DURATION CONNS=$CONNS ROUNDS=$ROUNDS SERVER_CPUS=$SERVER_CPUS LOAD_CPUS=$LOAD_CPUS loadtest/bound.sh\`"
} >>"$OUT"
sed -i "1i # What bounds the ratio to the ceiling, $STAMP\n" "$OUT"
cat "$OUT"
