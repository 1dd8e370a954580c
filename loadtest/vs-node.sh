#!/usr/bin/env bash
# Side by side with node-oidc-provider 9 (npm `oidc-provider`, pinned in loadtest/node/): both
# servers unpinned on every CPU of this machine, one after the other (never at the same time),
# under the same oha load for $DURATION at $CONNS connections:
#   issuance    POST /oauth2/token  grant_type=client_credentials&scope=read, client_secret_basic
#   introspect  POST to the introspection endpoint, a pool of $POOL valid tokens (`-Z`, one
#               `token=...` body per line); ours: the admin endpoint without authentication (as
#               Hydra); node: /oauth2/introspect, which oidc-provider always guards with client
#               authentication (Basic, the same client), so node pays one more client
#               authentication per introspection.
# Rounds are interleaved (ours, node, ours, node, ...); each turn starts its server fresh (ours:
# a new data directory, durable commits; node: NODE_ENV=production, one process, tokens in
# memory), creates the client, fills the pool, runs issuance then introspection, and stops the
# server. Every request must answer 2xx: any non-2xx or error other than oha's own cut-off at the
# end of a run (errors containing "deadline") fails the script. Prints the table and writes it,
# with the machine, the versions and the exact commands, to
# loadtest/runs/<UTC stamp>-<commit>-vs-node.md.
#
#   loadtest/vs-node.sh                            # builds target/release/hydra first
#   BIN=path/to/hydra DURATION=5s ROUNDS=1 loadtest/vs-node.sh
#
# Env: BIN (a hydra binary; unset: `cargo build --release --bin hydra` and target/release/hydra),
#      DURATION (15s), CONNS (64), ROUNDS (2), POOL (2000 tokens), PUBLIC_PORT (14644),
#      ADMIN_PORT (14645), NODE_PORT (14646), LOG_LEVEL (info, our default configuration), LABEL
#      (added to the run file name). Needs oha (`cargo install --locked oha` when missing), node
#      >= 20.19 and npm (`apt-get install -y nodejs npm` when node is missing); installs
#      loadtest/node's pinned dependencies with `npm ci` when they are missing or stale.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15s}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-2}
POOL=${POOL:-2000}
PUB=${PUBLIC_PORT:-14644}
ADM=${ADMIN_PORT:-14645}
NODE_PORT=${NODE_PORT:-14646}
# Unpinned: the servers may run on every CPU (taskset over all of them is no restriction).
SERVER_CPUS=0-$(($(nproc) - 1))

die() { echo "vs-node: $*" >&2; exit 1; }

source loadtest/lib.sh
select_bin
command -v oha >/dev/null || cargo install --locked oha
if ! command -v node >/dev/null; then
  apt-get update
  apt-get install -y nodejs npm
fi
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' ||
  die "node $(node --version) is too old for oidc-provider 9: install Node.js 20.19 or later"
NODE_DIR=loadtest/node
want=$(cd "$NODE_DIR" && node -p "require('./package-lock.json').packages['node_modules/oidc-provider'].version")
have=$(cd "$NODE_DIR" && node -p "require('./node_modules/oidc-provider/package.json').version" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund)
fi
OIDC_VERSION=$(cd "$NODE_DIR" && node -p "require('./node_modules/oidc-provider/package.json').version")

DATA=$(mktemp -d)
SERVER= NODE_PID=
cleanup() {
  for pid in $SERVER $NODE_PID; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$DATA"
}
trap cleanup EXIT
OHA=(oha --no-tui --output-format json -z "$DURATION" -c "$CONNS")
FORM=(-m POST -T application/x-www-form-urlencoded)
BODY='grant_type=client_credentials&scope=read'

# Introspects the first and the last token of a pool and fails unless both are active (so that
# the introspection scenario measures real hits): pool_active URL POOL [ID:SECRET]
pool_active() {
  python3 - "$@" <<'PY'
import base64, json, sys, urllib.request
url, pool = sys.argv[1], open(sys.argv[2]).read().split()
headers = {"Content-Type": "application/x-www-form-urlencoded"}
if len(sys.argv) > 3:
    headers["Authorization"] = "Basic " + base64.b64encode(sys.argv[3].encode()).decode()
for body in (pool[0], pool[-1]):
    with urllib.request.urlopen(urllib.request.Request(url, body.encode(), headers)) as r:
        if not json.loads(r.read()).get("active"):
            sys.exit(f"vs-node: a pool token is not active at {url}")
PY
}

# The peak resident memory of a process, in MiB.
peak_mib() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }

# One turn of our server: fresh data directory, client, pool, issuance, introspection.
ours_turn() {
  local r=$1
  rm -rf "$DATA/store" "$DATA/pool.txt"
  SERVER_ENV=(DSN="redb://$DATA/store" SECRETS_SYSTEM=loadtest-system-secret-0123456789
    SERVE_PUBLIC_HOST=127.0.0.1 SERVE_PUBLIC_PORT="$PUB" SERVE_ADMIN_HOST=127.0.0.1 SERVE_ADMIN_PORT="$ADM"
    LOG_LEVEL="${LOG_LEVEL:-info}")
  start_server
  curl -sf "http://127.0.0.1:$PUB/health/ready" >/dev/null || { tail -n 20 "$DATA/server.log" >&2; die "our server did not start"; }
  local client
  client=$(new_client --grant-type client_credentials --scope read --name loadtest)
  ID=$(json_field "$client" client_id)
  SECRET=$(json_field "$client" client_secret)
  token_pool "$ID" "$SECRET" "$POOL" "$DATA/pool.txt"
  pool_active "http://127.0.0.1:$ADM/admin/oauth2/introspect" "$DATA/pool.txt"
  "${OHA[@]}" "${FORM[@]}" -a "$ID:$SECRET" -d "$BODY" "http://127.0.0.1:$PUB/oauth2/token" >"$DATA/ours-issuance.$r.json"
  check_run "$DATA/ours-issuance.$r.json" "round $r ours issuance" "$DATA/server.log"
  sleep 1
  "${OHA[@]}" "${FORM[@]}" -Z "$DATA/pool.txt" "http://127.0.0.1:$ADM/admin/oauth2/introspect" >"$DATA/ours-introspect.$r.json"
  check_run "$DATA/ours-introspect.$r.json" "round $r ours introspect" "$DATA/server.log"
  pool_active "http://127.0.0.1:$ADM/admin/oauth2/introspect" "$DATA/pool.txt"
  DRIVER=$(grep -m1 -o 'driver=[^ ]*' "$DATA/server.log" || echo "not in the log")
  echo "$(peak_mib "$SERVER")" >"$DATA/ours-rss.$r"
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=
  sleep 1
}

# One turn of node-oidc-provider: fresh process (tokens in memory), pool, issuance, introspection.
NODE_ID=loadtest
node_turn() {
  local r=$1
  rm -f "$DATA/pool.txt"
  NODE_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
  env NODE_ENV=production NODE_PORT="$NODE_PORT" CLIENT_ID="$NODE_ID" CLIENT_SECRET="$NODE_SECRET" \
    node "$NODE_DIR/server.mjs" >"$DATA/node.log" 2>&1 &
  NODE_PID=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$NODE_PORT/.well-known/openid-configuration" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$NODE_PORT/.well-known/openid-configuration" >/dev/null ||
    { tail -n 20 "$DATA/node.log" >&2; die "node-oidc-provider did not start"; }
  PUB=$NODE_PORT token_pool "$NODE_ID" "$NODE_SECRET" "$POOL" "$DATA/pool.txt"
  pool_active "http://127.0.0.1:$NODE_PORT/oauth2/introspect" "$DATA/pool.txt" "$NODE_ID:$NODE_SECRET"
  "${OHA[@]}" "${FORM[@]}" -a "$NODE_ID:$NODE_SECRET" -d "$BODY" "http://127.0.0.1:$NODE_PORT/oauth2/token" >"$DATA/node-issuance.$r.json"
  check_run "$DATA/node-issuance.$r.json" "round $r node issuance" "$DATA/node.log"
  sleep 1
  "${OHA[@]}" "${FORM[@]}" -a "$NODE_ID:$NODE_SECRET" -Z "$DATA/pool.txt" "http://127.0.0.1:$NODE_PORT/oauth2/introspect" >"$DATA/node-introspect.$r.json"
  check_run "$DATA/node-introspect.$r.json" "round $r node introspect" "$DATA/node.log"
  pool_active "http://127.0.0.1:$NODE_PORT/oauth2/introspect" "$DATA/pool.txt" "$NODE_ID:$NODE_SECRET"
  echo "$(peak_mib "$NODE_PID")" >"$DATA/node-rss.$r"
  kill "$NODE_PID"; wait "$NODE_PID" 2>/dev/null || true; NODE_PID=
  sleep 1
}

for r in $(seq "$ROUNDS"); do
  ours_turn "$r"
  node_turn "$r"
done

TABLE=$(python3 - "$DATA" "$ROUNDS" <<'PY'
import json, statistics, sys
d, rounds = sys.argv[1], int(sys.argv[2])
R = range(1, rounds + 1)
def load(side, name, r):
    return json.load(open(f"{d}/{side}-{name}.{r}.json"))
def rate(side, name, r):
    return load(side, name, r)["summary"]["requestsPerSec"]
def lat(side, name, r, p):
    return load(side, name, r).get("latencyPercentiles", {}).get(p, 0) * 1000
def counts(side, name):
    ok = errors = cut = 0
    for r in R:
        j = load(side, name, r)
        codes = j.get("statusCodeDistribution", {})
        ok += sum(v for k, v in codes.items() if k.startswith("2"))
        errors += sum(v for k, v in codes.items() if not k.startswith("2"))
        dist = j.get("errorDistribution", {})
        cut += sum(v for k, v in dist.items() if "deadline" in k)
        errors += sum(v for k, v in dist.items() if "deadline" not in k)
    return ok, errors, cut
med = statistics.median
label = {"issuance": "issuance (`client_credentials`)", "introspect": "introspection (pool of tokens)"}
print("| scenario | ours req/s | node req/s | ours/node | ours p50 / p99 ms | node p50 / p99 ms | 2xx ours / node | errors ours / node | cut at end ours / node |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
ratios = {}
for name in ["issuance", "introspect"]:
    ratios[name] = med([rate("ours", name, r) / rate("node", name, r) for r in R])
    o, n = counts("ours", name), counts("node", name)
    print(f"| {label[name]} | {med([rate('ours', name, r) for r in R]):,.0f} | {med([rate('node', name, r) for r in R]):,.0f} "
          f"| {ratios[name]:.1f}× "
          f"| {med([lat('ours', name, r, 'p50') for r in R]):.2f} / {med([lat('ours', name, r, 'p99') for r in R]):.2f} "
          f"| {med([lat('node', name, r, 'p50') for r in R]):.2f} / {med([lat('node', name, r, 'p99') for r in R]):.2f} "
          f"| {o[0]:,} / {n[0]:,} | {o[1]} / {n[1]} | {o[2]} / {n[2]} |")
print()
print(f"Rates, latencies and ratios are medians over {rounds} round(s) (the ratio: median of each round's ours/node);")
print("2xx, errors and cut-offs are summed over the rounds.")
print()
print("Every round (req/s, ours/node in that round):")
print()
for r in R:
    parts = [f"{n} ours {rate('ours', n, r):,.0f}, node {rate('node', n, r):,.0f} ({rate('ours', n, r) / rate('node', n, r):.1f}×)"
             for n in ["issuance", "introspect"]]
    print(f"- round {r}: " + "; ".join(parts))
print()
verdict = lambda x: "met" if x >= 10 else "not met"
print(f"Goal (≥ 10× node for both): issuance {ratios['issuance']:.1f}× ({verdict(ratios['issuance'])}), "
      f"introspection {ratios['introspect']:.1f}× ({verdict(ratios['introspect'])}).")
PY
)
echo "$TABLE"

STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git diff --quiet HEAD -- src storage protocol Cargo.toml Cargo.lock 2>/dev/null || echo " (the tree had uncommitted changes to the server's sources)")
OUT="loadtest/runs/$STAMP-$COMMIT-vs-node${LABEL:+-$LABEL}.md"
RSS_OURS=$(cat "$DATA"/ours-rss.* | paste -sd/)
RSS_NODE=$(cat "$DATA"/node-rss.* | paste -sd/)
{
  echo "# Ours against node-oidc-provider $OIDC_VERSION, $STAMP ($COMMIT)"
  echo
  echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r)."
  echo "Ours: $BIN_NOTE, commit $COMMIT$DIRTY; $("$BIN" version 2>/dev/null | head -1 | xargs)."
  echo "Node: node $(node --version), oidc-provider $OIDC_VERSION (loadtest/node/package-lock.json)."
  echo "Load: oha $(oha --version | awk '{print $2}'), $CONNS connections, $DURATION per scenario, $ROUNDS round(s) interleaved (ours, node, ours, node, ...)."
  echo
  echo "$TABLE"
  echo
  echo "Setup:"
  echo
  echo "- Both servers unpinned (every one of the $(nproc) CPUs; ours started with \`taskset -c $SERVER_CPUS\`, which"
  echo "  restricts nothing), one after the other, never at the same time; oha unpinned too, on the same"
  echo "  CPUs. Each turn starts its server fresh, creates the client, fills a pool of $POOL tokens,"
  echo "  runs issuance, then introspection, then stops the server. The first and the last pool token"
  echo "  are introspected before and after each introspection run and must be active."
  echo "- Ours: \`hydra serve all\`, env \`$(printf '%s ' "${SERVER_ENV[@]}" | sed "s|$DATA/store|<fresh dir>|; s|SECRETS_SYSTEM=[^ ]*|SECRETS_SYSTEM=<secret>|" | xargs)\`"
  echo "  (the default configuration: one engine worker per CPU, log level info with one access-log"
  echo "  line per request written to a file), store \`$DRIVER\`, durable commits (a write-ahead"
  echo "  log record written with O_DSYNC before every 2xx). Peak resident memory per round: $RSS_OURS MiB."
  echo "- Node: \`NODE_ENV=production node loadtest/node/server.mjs\`, ONE process (Node runs JavaScript"
  echo "  on one thread, so node uses one core for the requests; its cluster module is not used because"
  echo "  in-memory tokens would not be shared between processes and introspection would miss)."
  echo "  Features: clientCredentials, introspection; devInteractions and resourceIndicators off, so"
  echo "  client_credentials tokens are opaque (43 random characters, no JWT). Tokens live in memory"
  echo "  (a Map adapter in server.mjs; the bundled development adapter is an LRU of 1,000 entries"
  echo "  that would evict the pool), nothing is written to disk: ours writes every token durably."
  echo "  No request logging. Peak resident memory per round: $RSS_NODE MiB. oidc-provider 9 warns"
  echo "  \"Unsupported runtime. Use Node.js v22.x LTS\" on node 20; it runs."
  echo "- Client secret check: ours stores a PBKDF2-SHA256 hash (25,000 iterations); after the first"
  echo "  successful check it caches an HMAC-SHA256 (per-process key) of the client id and the"
  echo "  presented secret and compares later requests' HMAC with it in constant time. oidc-provider"
  echo "  by default compares the stored plaintext secret in constant time (\`Client#compareClientSecret\`,"
  echo "  \`timingSafeEqual\` over buffers padded to 1,000 bytes); server.mjs replaces that prototype"
  echo "  method with the same scheme as ours: the client record holds only a PBKDF2-SHA256 hash in"
  echo "  Hydra's format, verified off the event loop on the first request, then one HMAC-SHA256 and"
  echo "  one \`timingSafeEqual\` per request."
  echo "- Introspection is not the same work: ours is Hydra's admin endpoint, without client"
  echo "  authentication; oidc-provider's endpoint always authenticates the caller, so each node"
  echo "  introspection also pays a client authentication (Basic header parse, client lookup, one"
  echo "  HMAC-SHA256 and compare). Ours verifies the token's HMAC signature and reads the store;"
  echo "  node looks the random token up in its Map."
  echo
  echo "Commands (ours, round $ROUNDS; the client id is new in every round):"
  echo
  echo "- issuance: \`${OHA[*]} ${FORM[*]} -a $ID:<secret> -d $BODY http://127.0.0.1:$PUB/oauth2/token\`"
  echo "- introspect: \`${OHA[*]} ${FORM[*]} -Z <pool of $POOL token bodies> http://127.0.0.1:$ADM/admin/oauth2/introspect\`"
  echo "- client: \`hydra create oauth2-client -e http://127.0.0.1:$ADM --format json --grant-type client_credentials --scope read --name loadtest\`"
  echo
  echo "Commands (node):"
  echo
  echo "- server: \`env NODE_ENV=production NODE_PORT=$NODE_PORT CLIENT_ID=$NODE_ID CLIENT_SECRET=<secret> node loadtest/node/server.mjs\`"
  echo "- issuance: \`${OHA[*]} ${FORM[*]} -a $NODE_ID:<secret> -d $BODY http://127.0.0.1:$NODE_PORT/oauth2/token\`"
  echo "- introspect: \`${OHA[*]} ${FORM[*]} -a $NODE_ID:<secret> -Z <pool of $POOL token bodies> http://127.0.0.1:$NODE_PORT/oauth2/introspect\`"
  echo
  echo "Pools: \`token_pool\` of loadtest/lib.sh ($POOL issuances through each server's token endpoint)."
  echo "Run: \`${BIN_GIVEN}DURATION=$DURATION CONNS=$CONNS ROUNDS=$ROUNDS POOL=$POOL loadtest/vs-node.sh\`"
} >"$OUT"
echo "wrote $OUT"
