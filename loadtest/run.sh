#!/usr/bin/env bash
# Load test: builds in release, starts the server on a fresh data directory (durable commits),
# creates a client, and drives three scenarios with oha for $DURATION each at $CONNS connections:
#   ceiling     GET /health/alive            (our own HTTP stack, no work)
#   issuance    POST /oauth2/token           (client_credentials, client_secret_basic)
#   introspect  POST /admin/oauth2/introspect (a pool of valid tokens, one per body line)
# and two browser-flow scenarios with bench's `flowload` (oha cannot chain requests):
#   flow        authorize → login accept → consent accept → code exchange with an RS256 ID token,
#               $FLOW_CONNS concurrent flows (8 HTTP requests each)
#   refresh     refresh-token rotation (scope offline_access, so no ID token), $CONNS connections
#   flow-es256  the flow again after an ES256 key was added to `hydra.openid.id-token` (the newest
#               key signs), so the ID token is ES256
# Prints one table and writes it, with the exact commands, under loadtest/runs/.
#
# Env: DURATION (15s), CONNS (64), SERVER_CPUS (0), LOAD_CPUS (1), POOL (2000 tokens),
#      LOG_LEVEL (info, the default configuration), ENGINE_WORKERS (default: CPUs in SERVER_CPUS), EXTRA_ENV (extra server env, e.g.
#      "ENGINE_PARTITIONS=8"), FLOW_CONNS (32), LABEL (added to the run file name), ROUNDS (1; with more, each
#      scenario runs that many times, interleaved, and the table shows the median round).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15s}
CONNS=${CONNS:-64}
SERVER_CPUS=${SERVER_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
POOL=${POOL:-2000}
ROUNDS=${ROUNDS:-1}
PUB=${PUBLIC_PORT:-14444}
ADM=${ADMIN_PORT:-14445}

cargo build --release --bin hydra
cargo build --release -p hydra-bench --bin flowload
FLOW_CONNS=${FLOW_CONNS:-32}
if ! command -v oha >/dev/null; then
  cargo install --locked oha
fi
BIN=target/release/hydra
DATA=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT

SERVER_ENV=(DSN="redb://$DATA" SECRETS_SYSTEM=loadtest-system-secret-0123456789
  SERVE_PUBLIC_HOST=127.0.0.1 SERVE_PUBLIC_PORT="$PUB" SERVE_ADMIN_HOST=127.0.0.1 SERVE_ADMIN_PORT="$ADM"
  LOG_LEVEL=${LOG_LEVEL:-info} ${ENGINE_WORKERS:+ENGINE_WORKERS=$ENGINE_WORKERS} ${EXTRA_ENV:-})
source loadtest/lib.sh
start_server

RP=$(new_client --grant-type authorization_code,refresh_token --response-type code --scope openid,offline_access \
  --redirect-uri https://rp.example/cb --name loadtest-rp)
RP_ID=$(json_field "$RP" client_id)
RP_SECRET=$(json_field "$RP" client_secret)
FLOWLOAD=(taskset -c "$LOAD_CPUS" target/release/flowload --public "http://127.0.0.1:$PUB" --admin "http://127.0.0.1:$ADM"
  --client "$RP_ID" --secret "$RP_SECRET" --duration "${DURATION%s}")
CLIENT=$(new_client --grant-type client_credentials --scope read --name loadtest)
ID=$(json_field "$CLIENT" client_id)
SECRET=$(json_field "$CLIENT" client_secret)

# A pool of valid tokens for introspection, one form body per line.
token_pool "$ID" "$SECRET" "$POOL" "$DATA/pool.txt"

STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
OUT="loadtest/runs/$STAMP-$COMMIT${LABEL:+-$LABEL}.md"
OHA=(taskset -c "$LOAD_CPUS" oha --no-tui --output-format json -z "$DURATION" -c "$CONNS")
declare -A CMDS
CMDS[ceiling]="${OHA[*]} http://127.0.0.1:$PUB/health/alive"
CMDS[issuance]="${OHA[*]} -m POST -a $ID:<secret> -T application/x-www-form-urlencoded -d grant_type=client_credentials&scope=read http://127.0.0.1:$PUB/oauth2/token"
CMDS[introspect]="${OHA[*]} -m POST -T application/x-www-form-urlencoded -Z <pool of $POOL token bodies> http://127.0.0.1:$ADM/admin/oauth2/introspect"
CMDS[flow]="taskset -c $LOAD_CPUS target/release/flowload --public http://127.0.0.1:$PUB --admin http://127.0.0.1:$ADM --client $RP_ID --secret <secret> --duration ${DURATION%s} --mode flow --conns $FLOW_CONNS"
CMDS[flow-es256]="$BIN create jwk hydra.openid.id-token --alg ES256 -e http://127.0.0.1:$ADM, then ${CMDS[flow]}"
CMDS[refresh]="taskset -c $LOAD_CPUS target/release/flowload --public http://127.0.0.1:$PUB --admin http://127.0.0.1:$ADM --client $RP_ID --secret <secret> --duration ${DURATION%s} --mode refresh --scope offline_access --conns $CONNS"

# ROUNDS > 1 repeats the scenarios in turn; the table shows each scenario's median round,
# which damps the noise of a shared machine.
for r in $(seq "$ROUNDS"); do
  "${OHA[@]}" "http://127.0.0.1:$PUB/health/alive" >"$DATA/ceiling.$r.json"
  sleep 1
  "${OHA[@]}" -m POST -a "$ID:$SECRET" -T application/x-www-form-urlencoded \
    -d 'grant_type=client_credentials&scope=read' "http://127.0.0.1:$PUB/oauth2/token" >"$DATA/issuance.$r.json"
  sleep 1
  "${OHA[@]}" -m POST -T application/x-www-form-urlencoded -Z "$DATA/pool.txt" \
    "http://127.0.0.1:$ADM/admin/oauth2/introspect" >"$DATA/introspect.$r.json"
  sleep 1
done
# The browser-flow scenarios after every round of the others, so that the rows above measure the
# same store as runs made before these scenarios existed (a flow run adds codes, consents and
# refresh chains to the partition the issuance scenario writes to).
for r in $(seq "$ROUNDS"); do
  "${FLOWLOAD[@]}" --mode flow --conns "$FLOW_CONNS" >"$DATA/flow.$r.json"
  sleep 1
  "${FLOWLOAD[@]}" --mode refresh --scope offline_access --conns "$CONNS" >"$DATA/refresh.$r.json"
  sleep 1
done
# An ES256 key, newest in the ID-token set, signs from now on.
"$BIN" create jwk hydra.openid.id-token --alg ES256 -e "http://127.0.0.1:$ADM" --quiet >/dev/null
for r in $(seq "$ROUNDS"); do
  "${FLOWLOAD[@]}" --mode flow --conns "$FLOW_CONNS" >"$DATA/flow-es256.$r.json"
  sleep 1
done

TABLE=$(python3 - "$DATA" "$ROUNDS" <<'PY'
import json, sys
d, rounds = sys.argv[1], int(sys.argv[2])
rows = []
def median_round(name):
    runs = [json.load(open(f"{d}/{name}.{r}.json")) for r in range(1, rounds + 1)]
    runs.sort(key=lambda j: j["summary"]["requestsPerSec"])
    return runs[len(runs) // 2]
def rate(name, r):
    j = json.load(open(f"{d}/{name}.{r}.json"))
    return j["per_sec"] if "per_sec" in j else j["summary"]["requestsPerSec"]
def round_ratio(name):
    # Each round's rate over that same round's ceiling, median over the rounds: the machine's
    # speed drifts between rounds, so only ratios taken close together compare.
    ratios = sorted(rate(name, r) / rate("ceiling", r) for r in range(1, rounds + 1))
    return ratios[len(ratios) // 2]
for name in ["ceiling", "issuance", "introspect"]:
    j = median_round(name)
    s = j["summary"]
    rps = s["requestsPerSec"]
    lat = j.get("latencyPercentiles", {})
    codes = j.get("statusCodeDistribution", {})
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    bad = sum(v for k, v in codes.items() if not k.startswith("2"))
    dist = j.get("errorDistribution", {})
    # oha cancels the requests still in flight when the duration ends; those are the load
    # generator's own cut-off, not server errors, and are reported in their own column.
    cut = sum(v for k, v in dist.items() if "deadline" in k)
    errors = bad + sum(v for k, v in dist.items() if "deadline" not in k)
    rows.append((name, rps, lat.get("p50", 0) * 1000, lat.get("p99", 0) * 1000, errors, cut, ok, round_ratio(name)))
# flowload's own output: completed operations (flows or refreshes) per second.
def flow_median(name):
    runs = [json.load(open(f"{d}/{name}.{r}.json")) for r in range(1, rounds + 1)]
    runs.sort(key=lambda j: j["per_sec"])
    return runs[len(runs) // 2]
for name in ["flow", "refresh", "flow-es256"]:
    j = flow_median(name)
    rows.append((name, j["per_sec"], j["p50_ms"], j["p99_ms"], j["errors"], 0, j["completed"], round_ratio(name)))
print("| scenario | req/s (flow: flows/s) | p50 ms | p99 ms | errors | cut at end | 2xx (flow, refresh: completed) | ratio to ceiling (median of rounds) |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    print(f"| {r[0]} | {r[1]:.0f} | {r[2]:.2f} | {r[3]:.2f} | {r[4]} | {r[5]} | {r[6]} | {r[7]:.2f} |")
if rounds > 1:
    print("\nEvery round (req/s, ratio to that round's ceiling):\n")
    for r in range(1, rounds + 1):
        rps = {n: json.load(open(f"{d}/{n}.{r}.json"))["summary"]["requestsPerSec"] for n in ["ceiling", "issuance", "introspect"]}
        rps.update({n: json.load(open(f"{d}/{n}.{r}.json"))["per_sec"] for n in ["flow", "refresh", "flow-es256"]})
        print(f"- round {r}: ceiling {rps['ceiling']:.0f}, issuance {rps['issuance']:.0f} ({rps['issuance'] / rps['ceiling']:.2f}), "
              f"introspect {rps['introspect']:.0f} ({rps['introspect'] / rps['ceiling']:.2f}), "
              f"flow {rps['flow']:.0f}/s, refresh {rps['refresh']:.0f} ({rps['refresh'] / rps['ceiling']:.2f}), "
              f"flow with ES256 {rps['flow-es256']:.0f}/s")
for name in ["ceiling", "issuance", "introspect"]:
    dist = median_round(name).get("errorDistribution", {})
    for k, v in dist.items():
        print(f"\n{name}: {v} x {k}")
PY
)
echo "$TABLE"

{
  echo "# Load test $STAMP ($COMMIT)"
  echo
  echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r)."
  echo "Server: \`taskset -c $SERVER_CPUS\`, env: \`$(printf '%s ' "${SERVER_ENV[@]}" | sed "s|$DATA|<fresh dir>|; s|SECRETS_SYSTEM=[^ ]*|SECRETS_SYSTEM=<secret>|")\`"
  echo "Driver: $(grep -m1 -o 'driver=[^ ]*' "$DATA/server.log" || echo 'see log (LOG_LEVEL=warn hides it)')."
  echo "Load: oha $(oha --version | awk '{print $2}'), \`taskset -c $LOAD_CPUS\`, $CONNS connections, $DURATION per scenario, $ROUNDS round(s) (median shown), durable commits (a write-ahead log record written with O_DSYNC before every 2xx)."
  echo
  echo "$TABLE"
  echo
  echo "Commands:"
  echo
  for k in ceiling issuance introspect flow refresh flow-es256; do echo "- $k: \`${CMDS[$k]}\`"; done
} >"$OUT"
echo "wrote $OUT"
