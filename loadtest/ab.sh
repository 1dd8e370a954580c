#!/usr/bin/env bash
# A/B load test of server builds and settings in ONE run, rounds interleaved, so that the
# ratios compare like with like on a shared, noisy machine. Each variant is a binary plus extra
# server environment; per round and variant the server starts on a fresh data directory
# (durable commits) and three oha scenarios run for $DURATION each:
#   ceiling     GET /health/alive
#   issuance    POST /oauth2/token (client_credentials, client_secret_basic)
#   introspect  POST /admin/oauth2/introspect (a pool of valid tokens)
# The default variants: the build of each ref in $BASE (one or more git refs, space-separated)
# at log level info, this tree at info (the default configuration), and this tree at warn.
#
#   loadtest/ab.sh                 # BASE=HEAD~1 DURATION=10s ROUNDS=3 CONNS=64
#
# Env: BASE (git ref of the A side), DURATION, ROUNDS, CONNS, SERVER_CPUS (0), LOAD_CPUS (1),
#      POOL (2000), LABEL, LOG_SINK (file: the server log in a file beside the store; pipe: read
#      and discarded by another process, as under a supervisor), HEAD_ONLY (set: only this tree at
#      info and warn). Writes the table, every round and the exact commands under loadtest/runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${BASE:-HEAD~1}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
SERVER_CPUS=${SERVER_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
POOL=${POOL:-2000}
PUB=${PUBLIC_PORT:-14444}
ADM=${ADMIN_PORT:-14445}
command -v oha >/dev/null || cargo install --locked oha

# The A sides: each base commit built in a worktree with this tree's target directory (shared
# dependencies), its binary copied aside before this tree's build replaces it.
BASE_REVS=()
mkdir -p target/ab
for ref in $BASE; do
  BASE_REV=$(git rev-parse --short "$ref")
  BASE_REVS+=("$BASE_REV")
  if [ ! -x "target/ab/hydra-$BASE_REV" ]; then
    WT=$(mktemp -d)
    git worktree add -q --detach "$WT" "$BASE_REV"
    CARGO_TARGET_DIR="$(pwd)/target" cargo build --release --bin hydra --manifest-path "$WT/Cargo.toml"
    cp target/release/hydra "target/ab/hydra-$BASE_REV"
    git worktree remove --force "$WT"
    # The worktree's crates share names and versions with this tree's: make cargo rebuild ours.
    cargo clean --release -p hydra-rs -p hydra-storage
    cargo clean --release -p hydra-protocol 2>/dev/null || true
  fi
done
cargo build --release --bin hydra
HEAD_REV=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src storage Cargo.toml || echo "+dirty")
cp target/release/hydra target/ab/hydra-head

NAMES=() BINS=() LEVELS=()
for rev in "${BASE_REVS[@]}"; do
  NAMES+=("$rev@info")
  BINS+=("target/ab/hydra-$rev")
  LEVELS+=(info)
done
NAMES+=("head@info" "head@warn")
BINS+=(target/ab/hydra-head target/ab/hydra-head)
LEVELS+=(info warn)
if [ -n "${HEAD_ONLY:-}" ]; then
  # Only this tree, at info against warn (more rounds in the same time).
  NAMES=("head@info" "head@warn")
  BINS=(target/ab/hydra-head target/ab/hydra-head)
  LEVELS=(info warn)
fi

DATA=$(mktemp -d)
SERVER=
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
source loadtest/lib.sh
OHA=(taskset -c "$LOAD_CPUS" oha --no-tui --output-format json -z "$DURATION" -c "$CONNS")

for r in $(seq "$ROUNDS"); do
  for i in "${!NAMES[@]}"; do
    BIN=${BINS[$i]}
    rm -rf "$DATA/store" "$DATA/pool.txt"
    SERVER_ENV=(DSN="redb://$DATA/store" SECRETS_SYSTEM=loadtest-system-secret-0123456789
      SERVE_PUBLIC_HOST=127.0.0.1 SERVE_PUBLIC_PORT="$PUB" SERVE_ADMIN_HOST=127.0.0.1 SERVE_ADMIN_PORT="$ADM"
      LOG_LEVEL="${LEVELS[$i]}")
    start_server
    CLIENT=$(new_client --grant-type client_credentials --scope read --name loadtest)
    ID=$(json_field "$CLIENT" client_id)
    SECRET=$(json_field "$CLIENT" client_secret)
    token_pool "$ID" "$SECRET" "$POOL" "$DATA/pool.txt"
    tag="$i.$r"
    "${OHA[@]}" "http://127.0.0.1:$PUB/health/alive" >"$DATA/ceiling.$tag.json"
    sleep 1
    "${OHA[@]}" -m POST -a "$ID:$SECRET" -T application/x-www-form-urlencoded \
      -d 'grant_type=client_credentials&scope=read' "http://127.0.0.1:$PUB/oauth2/token" >"$DATA/issuance.$tag.json"
    sleep 1
    "${OHA[@]}" -m POST -T application/x-www-form-urlencoded -Z "$DATA/pool.txt" \
      "http://127.0.0.1:$ADM/admin/oauth2/introspect" >"$DATA/introspect.$tag.json"
    kill "$SERVER"
    wait "$SERVER" 2>/dev/null || true
    SERVER=
    sleep 1
    if [ "${LOG_SINK:-file}" = pipe ]; then lines=$(cat "$DATA/server.lines"); else lines=$(wc -l <"$DATA/server.log"); fi
    echo "round $r ${NAMES[$i]}: done ($lines log lines)"
  done
done

TABLE=$(python3 - "$DATA" "$ROUNDS" "${NAMES[@]}" <<'PY'
import json, sys
d, rounds, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def rate(s, i, r):
    return json.load(open(f"{d}/{s}.{i}.{r}.json"))["summary"]["requestsPerSec"]
def p99(s, i, r):
    return json.load(open(f"{d}/{s}.{i}.{r}.json")).get("latencyPercentiles", {}).get("p99", 0) * 1000
def med(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]
R = range(1, rounds + 1)
print("| variant | ceiling req/s | issuance req/s | introspect req/s | issuance / ceiling | introspect / ceiling | issuance p99 ms | introspect p99 ms |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for i, n in enumerate(names):
    print(f"| {n} | {med([rate('ceiling', i, r) for r in R]):.0f} | {med([rate('issuance', i, r) for r in R]):.0f} | "
          f"{med([rate('introspect', i, r) for r in R]):.0f} | {med([rate('issuance', i, r) / rate('ceiling', i, r) for r in R]):.2f} | "
          f"{med([rate('introspect', i, r) / rate('ceiling', i, r) for r in R]):.2f} | {med([p99('issuance', i, r) for r in R]):.2f} | "
          f"{med([p99('introspect', i, r) for r in R]):.2f} |")
print()
print("Pairs (median over rounds of the per-round quotient of the two variants' rates):")
print()
def pair(a, b):
    ia, ib = names.index(a), names.index(b)
    for s in ["ceiling", "issuance", "introspect"]:
        q = med([rate(s, ia, r) / rate(s, ib, r) for r in R])
        print(f"- {s}: {a} / {b} = {q:.2f}")
pair("head@info", "head@warn")
for n in names:
    if not n.startswith("head@"):
        pair("head@info", n)
print()
print("Every round (req/s):")
print()
for r in R:
    print(f"- round {r}: " + "; ".join(
        f"{n} ceiling {rate('ceiling', i, r):.0f}, issuance {rate('issuance', i, r):.0f}, introspect {rate('introspect', i, r):.0f}"
        for i, n in enumerate(names)))
PY
)
echo "$TABLE"
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
OUT="loadtest/runs/$STAMP-$HEAD_REV-ab${LABEL:+-$LABEL}.md"
{
  echo "# A/B load test $STAMP: $HEAD_REV against ${BASE_REVS[*]}"
  echo
  echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r)."
  echo "Server: \`taskset -c $SERVER_CPUS\`, one worker, a fresh data directory per round and variant, durable commits, log sink: ${LOG_SINK:-file};"
  echo "variants: ${NAMES[*]} (head = $HEAD_REV)."
  echo "Load: oha $(oha --version | awk '{print $2}'), \`taskset -c $LOAD_CPUS\`, $CONNS connections, $DURATION per scenario, $ROUNDS rounds interleaved (median shown)."
  echo
  echo "$TABLE"
  echo
  echo "Command: \`BASE='$BASE' DURATION=$DURATION ROUNDS=$ROUNDS CONNS=$CONNS LOG_SINK=${LOG_SINK:-file} loadtest/ab.sh\`; per scenario:"
  echo
  echo "- ceiling: \`${OHA[*]} http://127.0.0.1:$PUB/health/alive\`"
  echo "- issuance: \`${OHA[*]} -m POST -a <id>:<secret> -T application/x-www-form-urlencoded -d grant_type=client_credentials&scope=read http://127.0.0.1:$PUB/oauth2/token\`"
  echo "- introspect: \`${OHA[*]} -m POST -T application/x-www-form-urlencoded -Z <pool of $POOL token bodies> http://127.0.0.1:$ADM/admin/oauth2/introspect\`"
} >"$OUT"
echo "wrote $OUT"
