#!/usr/bin/env bash
# Scale test: issuance and introspection on an empty store, then again after filling the store
# with $TOKENS live tokens through the token endpoint; records the server's resident memory along
# the way and the data directory's size per million tokens.
#
# The introspection pool on the full store is spread over the whole fill (after every tenth of
# it, $POOL/10 tokens are issued and kept), so lookups hit old and new parts of the B-tree alike.
# Each phase measures the ceiling (GET /health/alive) too, and the table compares each rate
# to its own phase's ceiling, so the machine's drift between phases cancels out.
# The background janitor is off (nothing expires during the run; the soak test covers it).
#
# Env: TOKENS (10000000), DURATION (15s), CONNS (64), ROUNDS (2), POOL (2000), SERVER_CPUS (0),
#      LOAD_CPUS (1), EXTRA_ENV (extra server env), CACHE_MB (engine.cache_size_mb, 32).
set -euo pipefail
cd "$(dirname "$0")/.."
TOKENS=${TOKENS:-10000000}
DURATION=${DURATION:-15s}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-2}
POOL=${POOL:-2000}
SERVER_CPUS=${SERVER_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
CACHE_MB=${CACHE_MB:-32}
PUB=${PUBLIC_PORT:-14454}
ADM=${ADMIN_PORT:-14455}

cargo build --release --bin hydra
command -v oha >/dev/null || cargo install --locked oha
BIN=target/release/hydra
DATA=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
SERVER_ENV=(DSN="redb://$DATA/store" SECRETS_SYSTEM=loadtest-system-secret-0123456789
  SERVE_PUBLIC_HOST=127.0.0.1 SERVE_PUBLIC_PORT="$PUB" SERVE_ADMIN_HOST=127.0.0.1 SERVE_ADMIN_PORT="$ADM"
  LOG_LEVEL=${LOG_LEVEL:-info} TTL_ACCESS_TOKEN=4h ENGINE_JANITOR_INTERVAL=0s ENGINE_CACHE_SIZE_MB="$CACHE_MB" ${EXTRA_ENV:-})
source loadtest/lib.sh
start_server
rss() { awk '/VmRSS/ {print int($2/1024)}' "/proc/$SERVER/status"; }
RSS_LOG=()
note_rss() { RSS_LOG+=("$1: $(rss) MiB"); }
note_rss "started"

CLIENT=$(new_client --grant-type client_credentials --scope read --name scale)
ID=$(json_field "$CLIENT" client_id)
SECRET=$(json_field "$CLIENT" client_secret)
OHA=(taskset -c "$LOAD_CPUS" oha --no-tui --output-format json -z "$DURATION" -c "$CONNS")
measure() { # measure PHASE POOLFILE
  for r in $(seq "$ROUNDS"); do
    "${OHA[@]}" "http://127.0.0.1:$PUB/health/alive" >"$DATA/$1.ceiling.$r.json"
    sleep 1
    "${OHA[@]}" -m POST -a "$ID:$SECRET" -T application/x-www-form-urlencoded \
      -d 'grant_type=client_credentials&scope=read' "http://127.0.0.1:$PUB/oauth2/token" >"$DATA/$1.issuance.$r.json"
    sleep 1
    "${OHA[@]}" -m POST -T application/x-www-form-urlencoded -Z "$2" \
      "http://127.0.0.1:$ADM/admin/oauth2/introspect" >"$DATA/$1.introspect.$r.json"
    sleep 1
  done
}

token_pool "$ID" "$SECRET" "$POOL" "$DATA/pool-empty.txt"
measure empty "$DATA/pool-empty.txt"
note_rss "after the empty-store measurement"

# Fill: ten chunks through the token endpoint, a slice of the full-store pool after each.
T0=$(date +%s)
CHUNK=$((TOKENS / 10))
for i in $(seq 10); do
  taskset -c "$LOAD_CPUS" oha --no-tui --output-format json -n "$CHUNK" -c "$CONNS" -m POST -a "$ID:$SECRET" \
    -T application/x-www-form-urlencoded -d 'grant_type=client_credentials&scope=read' \
    "http://127.0.0.1:$PUB/oauth2/token" >"$DATA/fill.$i.json"
  token_pool "$ID" "$SECRET" $((POOL / 10)) "$DATA/pool-full.txt"
  note_rss "after $((i * CHUNK)) tokens"
done
FILL_SECS=$(( $(date +%s) - T0 ))
# 2xx answers of an oha run: ok2xx FILE...
ok2xx() {
  python3 -c 'import json, sys; print(sum(sum(v for k, v in json.load(open(f)).get("statusCodeDistribution", {}).items() if k.startswith("2")) for f in sys.argv[1:]))' "$@"
}
FILLED=$(ok2xx "$DATA"/fill.*.json)
# Tokens in the store: the fill, the empty phase's issuance runs and the pools.
STORED=$(( $(ok2xx "$DATA"/fill.*.json "$DATA"/empty.issuance.*.json) + POOL * 2 ))
DIR_BYTES=$(du -sb "$DATA/store" | cut -f1)
REDB_BYTES=$(find "$DATA/store" -name '*.redb' -printf '%s\n' | awk '{s+=$1} END {printf "%.0f\n", s}')
measure full "$DATA/pool-full.txt"
note_rss "after the full-store measurement"

STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
OUT="loadtest/runs/$STAMP-$COMMIT-scale.md"
TABLE=$(python3 - "$DATA" "$ROUNDS" <<'PY'
import json, sys
d, rounds = sys.argv[1], int(sys.argv[2])
def rps(phase, name, r):
    return json.load(open(f"{d}/{phase}.{name}.{r}.json"))["summary"]["requestsPerSec"]
def p99(phase, name, r):
    return json.load(open(f"{d}/{phase}.{name}.{r}.json")).get("latencyPercentiles", {}).get("p99", 0) * 1000
def errors(phase, name, r):
    j = json.load(open(f"{d}/{phase}.{name}.{r}.json"))
    bad = sum(v for k, v in j.get("statusCodeDistribution", {}).items() if not k.startswith("2"))
    return bad + sum(v for k, v in j.get("errorDistribution", {}).items() if "deadline" not in k)
def med(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]
print("| scenario | empty req/s | full req/s | empty / ceiling | full / ceiling | full vs empty (raw) | full vs empty (ceiling-normalised) | p99 ms empty → full | errors |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for name in ["issuance", "introspect"]:
    e = med([rps("empty", name, r) for r in range(1, rounds + 1)])
    f = med([rps("full", name, r) for r in range(1, rounds + 1)])
    en = med([rps("empty", name, r) / rps("empty", "ceiling", r) for r in range(1, rounds + 1)])
    fn = med([rps("full", name, r) / rps("full", "ceiling", r) for r in range(1, rounds + 1)])
    pe = med([p99("empty", name, r) for r in range(1, rounds + 1)])
    pf = med([p99("full", name, r) for r in range(1, rounds + 1)])
    errs = sum(errors(p, name, r) for p in ["empty", "full"] for r in range(1, rounds + 1))
    print(f"| {name} | {e:.0f} | {f:.0f} | {en:.2f} | {fn:.2f} | {f / e:.2f} | {fn / en:.2f} | {pe:.2f} → {pf:.2f} | {errs} |")
print()
for p in ["empty", "full"]:
    print(f"- {p}: " + "; ".join(
        f"round {r}: ceiling {rps(p, 'ceiling', r):.0f}, issuance {rps(p, 'issuance', r):.0f}, introspect {rps(p, 'introspect', r):.0f}"
        for r in range(1, rounds + 1)))
PY
)
{
  echo "# Scale test $STAMP ($COMMIT)"
  echo
  echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r)."
  echo "Server: \`taskset -c $SERVER_CPUS\`, env: \`$(printf '%s ' "${SERVER_ENV[@]}" | sed "s|$DATA|<fresh dir>|; s|SECRETS_SYSTEM=[^ ]*|SECRETS_SYSTEM=<secret>|")\`"
  echo "Load: oha $(oha --version | awk '{print $2}'), \`taskset -c $LOAD_CPUS\`, $CONNS connections, $DURATION per scenario, $ROUNDS round(s) per phase (medians shown)."
  echo "Command: \`TOKENS=$TOKENS ROUNDS=$ROUNDS loadtest/scale.sh\`"
  echo
  echo "Fill: $FILLED tokens stored (2xx) through \`POST /oauth2/token\` in $FILL_SECS s; with the empty phase's issuance runs and the pools, $STORED live tokens in the store for the full-store phase."
  echo
  echo "$TABLE"
  echo
  echo "Data directory after the fill: $DIR_BYTES bytes in all, $REDB_BYTES in the .redb files:"
  echo "$(python3 -c "import sys; t=int(sys.argv[1]); r=int(sys.argv[2]); n=int(sys.argv[3]); print(f'{r / n * 1e6 / 2**20:.0f} MiB of database per million tokens ({t / 2**20:.0f} MiB in all with the preallocated write-ahead logs).')" "$DIR_BYTES" "$REDB_BYTES" "$STORED")"
  echo
  echo "Resident memory of the server (VmRSS):"
  echo
  for l in "${RSS_LOG[@]}"; do echo "- $l"; done
} >"$OUT"
cat "$OUT"
echo "wrote $OUT"
