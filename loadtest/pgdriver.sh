#!/usr/bin/env bash
# Issue 11's driver question, measured: what one monoio thread gets from PostgreSQL through
# tokio-postgres (no tokio runtime; monoio's poll-io streams; statements pipelined on each
# connection) against pgbench at the same concurrency, on one throwaway cluster (crate testpg).
#   loadtest/pgdriver.sh
# Env: SECONDS_EACH (10), CONNS (4) x INFLIGHT (16) statements in flight, BATCH (64 rows),
#      PG_CPUS (0: the cluster), LOAD_CPUS (1: the tool and pgbench), LABEL, CLIENT_INDEX (set: the
#      table also gets an index on its client id column, which every scenario then pays).
# Scenarios: insert1 (one INSERT of a token-shaped row per transaction), batch (one
# INSERT ... SELECT FROM unnest of BATCH rows per transaction), select (one primary-key SELECT
# over 100,000 rows); pgbench runs insert1 and select as custom scripts with CONNS x INFLIGHT
# clients on one thread. Writes the table and the exact commands under loadtest/runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
S=${SECONDS_EACH:-10}
CONNS=${CONNS:-4}
INFLIGHT=${INFLIGHT:-16}
BATCH=${BATCH:-64}
PG_CPUS=${PG_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
CLIENTS=$((CONNS * INFLIGHT))
(cd bench/pgdriver && cargo build --release)
cargo build --release -p testpg --bin testpg-cluster
TOOL=bench/pgdriver/target/release/pgdriver
WORK=$(mktemp -d)
trap 'exec 3>&- 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
# The cluster, pinned to PG_CPUS (its server processes inherit the affinity), kept until fd 3 closes.
mkfifo "$WORK/in"
taskset -c "$PG_CPUS" target/release/testpg-cluster <"$WORK/in" >"$WORK/cluster" &
exec 3>"$WORK/in"
for _ in $(seq 100); do [ -s "$WORK/cluster" ] && break; sleep 0.2; done
read -r _ PORT _ PGBIN <"$WORK/cluster"
[ -n "${PORT:-}" ] || { echo "the cluster did not start" >&2; exit 1; }
PGB=(taskset -c "$LOAD_CPUS" "$PGBIN/pgbench" -n -h 127.0.0.1 -p "$PORT" -U postgres -M prepared -c "$CLIENTS" -j 1 -T "$S" postgres)
PSQL=("$PGBIN/psql" -X -q -h 127.0.0.1 -p "$PORT" -U postgres postgres)
# Each load run in a subshell whose `times` gives the client's CPU (user + system of its children).
cpu() { tail -n1 "$1" | awk '{gsub(/s/, ""); split($1, u, "m"); split($2, s, "m"); print u[1] * 60 + u[2] + s[1] * 60 + s[2]}'; }
ours() {
  (taskset -c "$LOAD_CPUS" "$TOOL" --url "127.0.0.1:$PORT" --seconds "$S" --conns "$CONNS" --inflight "$INFLIGHT" \
    --batch "$BATCH" --mode "$1" ${CLIENT_INDEX:+--client-index} >"$WORK/$1.json"; times >"$WORK/$1.times")
}
pgb() { ("${PGB[@]}" -f "$WORK/$1.sql" >"$WORK/pgb-$1.txt" 2>&1; times >"$WORK/pgb-$1.times"); }
tps() { awk '/^tps = / {print $3}' "$1"; }
lat() { awk '/^latency average = / {print $4}' "$1"; }

ours insert1
ours batch
"${PSQL[@]}" -c "truncate tokens"
cat >"$WORK/insert1.sql" <<'SQL'
\set k random(1, 9000000000000000000)
insert into tokens (seq, client_id, sig, rec) values (:k, 'client-' || (:k::bigint % 100), decode(repeat('07', 32), 'hex'), convert_to(repeat('r', 200), 'UTF8'));
SQL
pgb insert1
ours select
cat >"$WORK/select.sql" <<'SQL'
\set k random(1, 100000)
select rec from tokens where seq = :k;
SQL
pgb select

TABLE=$(python3 - "$WORK" "$S" "$(tps "$WORK/pgb-insert1.txt")" "$(lat "$WORK/pgb-insert1.txt")" "$(cpu "$WORK/pgb-insert1.times")" \
  "$(tps "$WORK/pgb-select.txt")" "$(lat "$WORK/pgb-select.txt")" "$(cpu "$WORK/pgb-select.times")" \
  "$(cpu "$WORK/insert1.times")" "$(cpu "$WORK/batch.times")" "$(cpu "$WORK/select.times")" <<'PY'
import json, sys
w, secs = sys.argv[1], float(sys.argv[2])
pi, pil, pic, ps, psl, psc = float(sys.argv[3]), sys.argv[4], float(sys.argv[5]), float(sys.argv[6]), sys.argv[7], float(sys.argv[8])
cpu = dict(zip(["insert1", "batch", "select"], map(float, sys.argv[9:12])))
r = {m: json.load(open(f"{w}/{m}.json")) for m in ["insert1", "batch", "select"]}
print("| scenario | client | statements/s | rows/s | p50 ms | p99 ms | errors | client CPU µs per statement |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for m in ["insert1", "batch", "select"]:
    j = r[m]
    per = cpu[m] * 1e6 / max(j["statements"], 1)
    print(f"| {m} | tokio-postgres on monoio, 1 thread | {j['statements_per_sec']:.0f} | {j['rows_per_sec']:.0f} | {j['p50_ms']:.2f} | {j['p99_ms']:.2f} | {j['errors']} | {per:.1f} |")
print(f"| insert1 | pgbench, 1 thread | {pi:.0f} | {pi:.0f} | (average {pil}) | — | — | {pic * 1e6 / max(pi * secs, 1):.1f} |")
print(f"| select | pgbench, 1 thread | {ps:.0f} | {ps:.0f} | (average {psl}) | — | — | {psc * 1e6 / max(ps * secs, 1):.1f} |")
print()
print(f"Batched rows against one row per transaction: {r['batch']['rows_per_sec'] / pi:.1f}x pgbench's insert1; "
      f"selects: {r['select']['statements_per_sec'] / ps:.2f}x pgbench.")
bad = {m: r[m]["first_error"] for m in r if r[m]["errors"]}
if bad:
    sys.exit(f"statements failed: {bad}")
PY
)
echo "$TABLE"
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
OUT="loadtest/runs/$STAMP-$(git rev-parse --short HEAD)-pgdriver${LABEL:+-$LABEL}.md"
{
  echo "# PostgreSQL driver measurement $STAMP"
  echo
  echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r); $("$PGBIN/postgres" --version)."
  echo "Table: token-shaped rows (bigint key, client id of 100 distinct values, 32-byte signature, 200-byte record)${CLIENT_INDEX:+, with an index on the client id}."
  echo "Cluster: a throwaway one (crate testpg: initdb, synchronous_commit on, fsync on, shared_buffers 128MB), \`taskset -c $PG_CPUS\`."
  echo "Load: \`taskset -c $LOAD_CPUS\` (client CPU: user + system of the load process over its run, including its start-up and, for ours, connecting and the select preload); ours: $CONNS connections x $INFLIGHT statements in flight, prepared statements, ${S}s per scenario;"
  echo "pgbench: $CLIENTS clients (one connection each), one thread, \`-M prepared\`, ${S}s."
  echo
  echo "$TABLE"
  echo
  echo "Commands:"
  echo
  for m in insert1 batch select; do echo "- \`taskset -c $LOAD_CPUS $TOOL --url 127.0.0.1:<port> --seconds $S --conns $CONNS --inflight $INFLIGHT --batch $BATCH --mode $m${CLIENT_INDEX:+ --client-index}\`"; done
  echo "- \`${PGB[*]} -f insert1.sql\` with:"; echo; sed 's/^/    /' "$WORK/insert1.sql"; echo
  echo "- \`${PGB[*]} -f select.sql\` with:"; echo; sed 's/^/    /' "$WORK/select.sql"
} >"$OUT"
echo "wrote $OUT"
