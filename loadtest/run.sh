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
#   logout      a remembered login (the flow above) and then an RP-initiated logout (logout request
#               with the ID token as hint → logout accept → verifier), $FLOW_CONNS at once
#   device      a device authorization (RFC 8628) both sides: device request → verification page →
#               user code accepted → login and consent → the device's token request (10 HTTP
#               requests, ID token RS256), $FLOW_CONNS at once
#   flow-es256  the flow again after an ES256 key was added to `hydra.openid.id-token` (the newest
#               key signs), so the ID token is ES256
#   issuance-jwt, introspect-jwt  issuance and introspection for a client with
#               `access_token_strategy: jwt` (RS256 keys of `hydra.jwt.access-token`, generated)
#   issuance-jwt-es256  issuance again after an ES256 key was added to `hydra.jwt.access-token`
# Prints one table and writes it, with the exact commands, under loadtest/runs/.
#
# Env: DURATION (15s), CONNS (64), SERVER_CPUS (0), LOAD_CPUS (1), POOL (2000 tokens),
#      LOG_LEVEL (info, the default configuration), ENGINE_WORKERS (default: CPUs in SERVER_CPUS), EXTRA_ENV (extra server env, e.g.
#      "ENGINE_PARTITIONS=8"), FLOW_CONNS (32), LABEL (added to the run file name), ROUNDS (1; with more, each
#      scenario runs that many times, interleaved, and the table shows the median round).
# PG=1: the server runs on PostgreSQL instead (a throwaway cluster from crate testpg on
#      PG_CPUS, default SERVER_CPUS: the database shares the server's cores, as on one machine;
#      synchronous_commit on, default fsync), and the table gains pgbench at the same concurrency
#      on LOAD_CPUS against a database of the same schema: (a) one INSERT of a token row per
#      transaction, (b) one primary-key SELECT per transaction; issuance and introspection are
#      also shown as ratios to those. A second node on the same database then takes half of an
#      issuance run (issuance-2nodes: two oha processes, CONNS/2 each, rates summed).
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
PG=${PG:-}
if [ -n "$PG" ]; then
  cargo build --release -p testpg --bin testpg-cluster
fi
FLOW_CONNS=${FLOW_CONNS:-32}
if ! command -v oha >/dev/null; then
  cargo install --locked oha
fi
BIN=target/release/hydra
DATA=$(mktemp -d)
trap 'kill $SERVER ${SERVER2:-} 2>/dev/null || true; wait $SERVER ${SERVER2:-} 2>/dev/null || true; exec 3>&- 2>/dev/null || true; rm -rf "$DATA"' EXIT

DSN="redb://$DATA"
if [ -n "$PG" ]; then
  PG_CPUS=${PG_CPUS:-$SERVER_CPUS}
  # The cluster lives until fd 3 closes (testpg-cluster), pinned to PG_CPUS.
  mkfifo "$DATA/pg.in"
  PG_CONF="shared_preload_libraries = 'pg_stat_statements'" taskset -c "$PG_CPUS" target/release/testpg-cluster <"$DATA/pg.in" >"$DATA/pg.cluster" &
  exec 3>"$DATA/pg.in"
  for _ in $(seq 150); do [ -s "$DATA/pg.cluster" ] && break; sleep 0.2; done
  read -r _ PGPORT _ PGBIN <"$DATA/pg.cluster"
  [ -n "${PGPORT:-}" ] || { echo "the PostgreSQL cluster did not start" >&2; exit 1; }
  PSQL=("$PGBIN/psql" -X -q -h 127.0.0.1 -p "$PGPORT" -U postgres)
  "${PSQL[@]}" -c "create database hydra" -c "create database bench" postgres
  DSN="postgres://postgres@127.0.0.1:$PGPORT/hydra?sslmode=disable"
  "target/release/hydra" migrate sql up --yes "$DSN" >/dev/null
  "${PSQL[@]}" -c "create extension pg_stat_statements" hydra
  "target/release/hydra" migrate sql up --yes "postgres://postgres@127.0.0.1:$PGPORT/bench?sslmode=disable" >/dev/null
fi

SERVER_ENV=(DSN="$DSN" SECRETS_SYSTEM=loadtest-system-secret-0123456789
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
DEV=$(new_client --grant-type urn:ietf:params:oauth:grant-type:device_code,refresh_token --scope openid,offline_access \
  --name loadtest-device)
DEV_ID=$(json_field "$DEV" client_id)
DEV_SECRET=$(json_field "$DEV" client_secret)
DEVLOAD=(taskset -c "$LOAD_CPUS" target/release/flowload --public "http://127.0.0.1:$PUB" --admin "http://127.0.0.1:$ADM"
  --client "$DEV_ID" --secret "$DEV_SECRET" --duration "${DURATION%s}" --mode device --conns "$FLOW_CONNS")
CLIENT=$(new_client --grant-type client_credentials --scope read --name loadtest)
ID=$(json_field "$CLIENT" client_id)
SECRET=$(json_field "$CLIENT" client_secret)

# A pool of valid tokens for introspection, one form body per line.
token_pool "$ID" "$SECRET" "$POOL" "$DATA/pool.txt"
JCLIENT=$(new_client --grant-type client_credentials --scope read --name loadtest-jwt --access-token-strategy jwt)
JID=$(json_field "$JCLIENT" client_id)
JSECRET=$(json_field "$JCLIENT" client_secret)
token_pool "$JID" "$JSECRET" "$POOL" "$DATA/pool-jwt.txt"

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
CMDS[logout]="taskset -c $LOAD_CPUS target/release/flowload --public http://127.0.0.1:$PUB --admin http://127.0.0.1:$ADM --client $RP_ID --secret <secret> --duration ${DURATION%s} --mode logout --conns $FLOW_CONNS"
CMDS[issuance-jwt]="${OHA[*]} -m POST -a $JID:<secret> -T application/x-www-form-urlencoded -d grant_type=client_credentials&scope=read http://127.0.0.1:$PUB/oauth2/token (client with access_token_strategy jwt)"
CMDS[introspect-jwt]="${OHA[*]} -m POST -T application/x-www-form-urlencoded -Z <pool of $POOL RS256 JWT access tokens> http://127.0.0.1:$ADM/admin/oauth2/introspect"
CMDS[issuance-jwt-es256]="$BIN create jwk hydra.jwt.access-token --alg ES256 -e http://127.0.0.1:$ADM, then ${CMDS[issuance-jwt]}"
CMDS[device]="taskset -c $LOAD_CPUS target/release/flowload --public http://127.0.0.1:$PUB --admin http://127.0.0.1:$ADM --client $DEV_ID --secret <secret> --duration ${DURATION%s} --mode device --conns $FLOW_CONNS (a client with grant types device_code and refresh_token)"
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
  "${FLOWLOAD[@]}" --mode logout --conns "$FLOW_CONNS" >"$DATA/logout.$r.json"
  sleep 1
  "${DEVLOAD[@]}" >"$DATA/device.$r.json"
  sleep 1
done
if [ -n "$PG" ]; then
  # pgbench at the same concurrency against the same schema, the cluster on PG_CPUS, pgbench
  # on LOAD_CPUS (where oha runs), after the server's scenarios so they do not compete.
  PGB=(taskset -c "$LOAD_CPUS" "$PGBIN/pgbench" -n -h 127.0.0.1 -p "$PGPORT" -U postgres -M prepared -c "$CONNS" -j 1 -T "${DURATION%s}" bench)
  cat >"$DATA/insert1.sql" <<'SQL'
\set k random(1, 9000000000000000000)
INSERT INTO hydra_rs_token (part, seq, kind, signature, family, client_id, subject, scope, audience, issued_at, expires_at, ext, epoch) VALUES (0, :k, 0, decode(repeat('07', 32), 'hex'), :k, 'loadtest-client'::bytea, 'loadtest-client'::bytea, 'read'::bytea, '[]', 1700000000, 1700003600, '', 0);
SQL
  cat >"$DATA/select.sql" <<'SQL'
\set k random(1, 100000)
SELECT kind, signature, family, client_id, subject, scope, audience, issued_at, expires_at, ext FROM hydra_rs_token WHERE part = 1 AND seq = :k;
SQL
  "${PSQL[@]}" -c "insert into hydra_rs_token select 1, g, 0, sha256(g::text::bytea), g, 'loadtest-client'::bytea, 'loadtest-client'::bytea, 'read'::bytea, '[]', 1700000000, 1700003600, '', 0 from generate_series(1, 100000) g" bench
  "${PSQL[@]}" -c "vacuum analyze hydra_rs_token" bench
  for r in $(seq "$ROUNDS"); do
    "${PGB[@]}" -f "$DATA/insert1.sql" >"$DATA/pgb-insert1.$r.txt" 2>&1
    sleep 1
    "${PGB[@]}" -f "$DATA/select.sql" >"$DATA/pgb-select.$r.txt" 2>&1
    sleep 1
  done
  # A second node on the same database; issuance split over both.
  SERVER_ENV2=("${SERVER_ENV[@]}" SERVE_PUBLIC_PORT=$((PUB + 10)) SERVE_ADMIN_PORT=$((ADM + 10)))
  env "${SERVER_ENV2[@]}" taskset -c "$SERVER_CPUS" "$BIN" serve all >"$DATA/server2.log" 2>&1 &
  SERVER2=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$((PUB + 10))/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
  HALF=(taskset -c "$LOAD_CPUS" oha --no-tui --output-format json -z "$DURATION" -c $((CONNS / 2)) -m POST -a "$ID:$SECRET"
    -T application/x-www-form-urlencoded -d 'grant_type=client_credentials&scope=read')
  for r in $(seq "$ROUNDS"); do
    "${HALF[@]}" "http://127.0.0.1:$PUB/oauth2/token" >"$DATA/two-a.$r.json" &
    HALF_A=$!
    "${HALF[@]}" "http://127.0.0.1:$((PUB + 10))/oauth2/token" >"$DATA/two-b.$r.json"
    wait "$HALF_A"
    sleep 1
  done
  CMDS[pgbench-insert1]="${PGB[*]} -f insert1.sql (one INSERT of a token row: part, seq, kind, signature, family, client_id, subject, scope, audience, issued_at, expires_at, ext, epoch)"
  CMDS[pgbench-select]="${PGB[*]} -f select.sql (SELECT the record columns WHERE part = 1 AND seq = random(1, 100000), 100,000 rows preloaded)"
  CMDS[issuance-2nodes]="two servers on the database, then ${HALF[*]} against each at once"
fi

# JWT access tokens: RS256 (the generated key), then ES256 once such a key is the newest.
JWT_ISSUE=(-m POST -a "$JID:$JSECRET" -T application/x-www-form-urlencoded -d 'grant_type=client_credentials&scope=read'
  "http://127.0.0.1:$PUB/oauth2/token")
for r in $(seq "$ROUNDS"); do
  "${OHA[@]}" "${JWT_ISSUE[@]}" >"$DATA/issuance-jwt.$r.json"
  sleep 1
  "${OHA[@]}" -m POST -T application/x-www-form-urlencoded -Z "$DATA/pool-jwt.txt" \
    "http://127.0.0.1:$ADM/admin/oauth2/introspect" >"$DATA/introspect-jwt.$r.json"
  sleep 1
done
"$BIN" create jwk hydra.jwt.access-token --alg ES256 -e "http://127.0.0.1:$ADM" --quiet >/dev/null
for r in $(seq "$ROUNDS"); do
  "${OHA[@]}" "${JWT_ISSUE[@]}" >"$DATA/issuance-jwt-es256.$r.json"
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
for name in ["ceiling", "issuance", "introspect", "issuance-jwt", "introspect-jwt", "issuance-jwt-es256"]:
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
for name in ["flow", "refresh", "logout", "device", "flow-es256"]:
    j = flow_median(name)
    rows.append((name, j["per_sec"], j["p50_ms"], j["p99_ms"], j["errors"], 0, j["completed"], round_ratio(name)))
import os, re
pg = os.path.exists(f"{d}/pgb-insert1.1.txt")
pg_notes = []
if pg:
    def pgb(name, r):
        t = open(f"{d}/pgb-{name}.{r}.txt").read()
        tps = float(re.search(r"^tps = ([0-9.]+)", t, re.M).group(1))
        lat = float(re.search(r"^latency average = ([0-9.]+) ms", t, re.M).group(1))
        failed = int(m.group(1)) if (m := re.search(r"^number of failed transactions: (\d+)", t, re.M)) else 0
        return tps, lat, failed
    def two(r):
        a, b = (json.load(open(f"{d}/two-{x}.{r}.json")) for x in "ab")
        rps = a["summary"]["requestsPerSec"] + b["summary"]["requestsPerSec"]
        bad = 0
        for j in (a, b):
            bad += sum(v for k, v in j.get("statusCodeDistribution", {}).items() if not k.startswith("2"))
            bad += sum(v for k, v in j.get("errorDistribution", {}).items() if "deadline" not in k)
        p99 = max(j.get("latencyPercentiles", {}).get("p99", 0) for j in (a, b)) * 1000
        ok = sum(v for j in (a, b) for k, v in j.get("statusCodeDistribution", {}).items() if k.startswith("2"))
        return rps, p99, bad, ok
    med = lambda xs: sorted(xs)[len(xs) // 2]
    for name in ["insert1", "select"]:
        runs = sorted((pgb(name, r) for r in range(1, rounds + 1)), key=lambda x: x[0])
        tps, lat, failed = runs[len(runs) // 2]
        ratio = med([pgb(name, r)[0] / rate("ceiling", r) for r in range(1, rounds + 1)])
        rows.append((f"pgbench ({'a' if name == 'insert1' else 'b'}) {name}", tps, lat, float("nan"), failed, 0, 0, ratio))
    runs = sorted((two(r) for r in range(1, rounds + 1)), key=lambda x: x[0])
    rps, p99, bad, ok = runs[len(runs) // 2]
    rows.append(("issuance-2nodes", rps, float("nan"), p99, bad, 0, ok, med([two(r)[0] / rate("ceiling", r) for r in range(1, rounds + 1)])))
    a = med([rate("issuance", r) / pgb("insert1", r)[0] for r in range(1, rounds + 1)])
    b = med([rate("introspect", r) / pgb("select", r)[0] for r in range(1, rounds + 1)])
    pg_notes.append(f"Issuance / pgbench (a): {a:.2f} (target 2). Introspection / pgbench (b): {b:.2f} (target 1). Medians of per-round ratios; pgbench rows show average latency as p50 (pgbench reports no p99).")
print("| scenario | req/s (flow: flows/s) | p50 ms | p99 ms | errors | cut at end | 2xx (flow, refresh: completed) | ratio to ceiling (median of rounds) |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    print(f"| {r[0]} | {r[1]:.0f} | {r[2]:.2f} | {r[3]:.2f} | {r[4]} | {r[5]} | {r[6]} | {r[7]:.2f} |")
for n in pg_notes:
    print("\n" + n)
if rounds > 1:
    print("\nEvery round (req/s, ratio to that round's ceiling):\n")
    for r in range(1, rounds + 1):
        rps = {n: json.load(open(f"{d}/{n}.{r}.json"))["summary"]["requestsPerSec"] for n in ["ceiling", "issuance", "introspect"]}
        rps.update({n: json.load(open(f"{d}/{n}.{r}.json"))["per_sec"] for n in ["flow", "refresh", "logout", "device", "flow-es256"]})
        print(f"- round {r}: ceiling {rps['ceiling']:.0f}, issuance {rps['issuance']:.0f} ({rps['issuance'] / rps['ceiling']:.2f}), "
              f"introspect {rps['introspect']:.0f} ({rps['introspect'] / rps['ceiling']:.2f}), "
              f"flow {rps['flow']:.0f}/s, refresh {rps['refresh']:.0f} ({rps['refresh'] / rps['ceiling']:.2f}), login+logout {rps['logout']:.0f}/s, device {rps['device']:.0f}/s, "
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
  for k in ceiling issuance introspect issuance-jwt introspect-jwt issuance-jwt-es256 flow refresh logout device flow-es256; do echo "- $k: \`${CMDS[$k]}\`"; done
  if [ -n "$PG" ]; then
    for k in pgbench-insert1 pgbench-select issuance-2nodes; do echo "- $k: \`${CMDS[$k]}\`"; done
    echo
    echo "PostgreSQL: $("$PGBIN/postgres" --version), the cluster on CPUs $PG_CPUS, synchronous_commit on, default fsync. Statements of the server by total time (pg_stat_statements over the whole run):"
    echo
    echo '```'
    "${PSQL[@]}" -c "select calls, round(total_exec_time::numeric, 0) as total_ms, round(mean_exec_time::numeric, 3) as mean_ms, rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) as query from pg_stat_statements where dbid = (select oid from pg_database where datname = 'hydra') order by total_exec_time desc limit 8" hydra 2>&1 || true
    echo '```'
  fi
} >"$OUT"
echo "wrote $OUT"
