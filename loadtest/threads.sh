#!/usr/bin/env bash
# CPU time per request by server thread (worker, committer, log writer, ...), from the kernel's
# per-thread accounting (/proc/<pid>/task/*/stat, user + system) over one oha run of issuance or
# introspection, for one or more server binaries in turn: what the committer costs per token,
# and where else the core goes. Also counts each thread's context switches, and gives each round's
# rate (with its ratio to the first binary's in the same round) and p99 latency.
#
#   loadtest/threads.sh [binary ...]          # default: this tree's release build
#
# Env: SCENARIO (issuance | introspect | refresh | flow | flow-es256, default issuance; refresh
#      rotates refresh tokens with bench's flowload, one chain per connection, scope offline_access
#      so no ID token; flow runs whole browser flows with flowload at FLOW_CONNS (32) with an
#      RS256 ID token, flow-es256 with an ES256 key newest in the ID-token set),
#      DURATION (10s), CONNS (64), ROUNDS (2),
#      SERVER_CPUS (0), LOAD_CPUS (1), LABEL. Writes the table and the exact commands under
#      loadtest/runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
SCENARIO=${SCENARIO:-issuance}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-2}
SERVER_CPUS=${SERVER_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
PUB=${PUBLIC_PORT:-14474}
ADM=${ADMIN_PORT:-14475}
command -v oha >/dev/null || cargo install --locked oha
BINS=("$@")
if [ ${#BINS[@]} -eq 0 ]; then
  cargo build --release --bin hydra
  BINS=(target/release/hydra)
fi
case "$SCENARIO" in refresh | flow*) cargo build --release -p hydra-bench --bin flowload ;; esac
TICK=$(getconf CLK_TCK)
DATA=
SERVER=
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; [ -z "$DATA" ] || rm -rf "$DATA"' EXIT
source loadtest/lib.sh

# name voluntary nonvoluntary ticks, one line per thread (names with a trailing digit kept).
snap() {
  for t in /proc/"$SERVER"/task/*; do
    printf '%s %s %s %s\n' "$(tr ' ' '_' <"$t/comm")" \
      "$(awk '/^voluntary_ctxt/ {print $2}' "$t/status")" "$(awk '/^nonvoluntary_ctxt/ {print $2}' "$t/status")" \
      "$(awk '{print $14 + $15}' "$t/stat")"
  done | sort
}

ROWS=()
for r in $(seq "$ROUNDS"); do
  for BIN in "${BINS[@]}"; do
    DATA=$(mktemp -d)
    SERVER_ENV=(DSN="redb://$DATA/store" SECRETS_SYSTEM=loadtest-system-secret-0123456789
      SERVE_PUBLIC_HOST=127.0.0.1 SERVE_PUBLIC_PORT="$PUB" SERVE_ADMIN_HOST=127.0.0.1 SERVE_ADMIN_PORT="$ADM"
      LOG_LEVEL=${LOG_LEVEL:-info})
    start_server
    CLIENT=$(new_client --grant-type client_credentials --scope read --name threads)
    ID=$(json_field "$CLIENT" client_id)
    SECRET=$(json_field "$CLIENT" client_secret)
    # Warms the secret cache (and fills the introspection pool).
    token_pool "$ID" "$SECRET" "$([ "$SCENARIO" = introspect ] && echo 2000 || echo 1)" "$DATA/pool.txt"
    if [ "$SCENARIO" = introspect ]; then
      REQ=(-m POST -T application/x-www-form-urlencoded -Z "$DATA/pool.txt" "http://127.0.0.1:$ADM/admin/oauth2/introspect")
    else
      REQ=(-m POST -a "$ID:$SECRET" -T application/x-www-form-urlencoded -d 'grant_type=client_credentials&scope=read'
        "http://127.0.0.1:$PUB/oauth2/token")
    fi
    snap >"$DATA/before"
    # The load generator's own CPU (user + system of the subshell's children) goes in a row too.
    if [ "$SCENARIO" = refresh ] || [ "${SCENARIO#flow}" != "$SCENARIO" ]; then
      [ "$SCENARIO" != flow-es256 ] || "$BIN" create jwk hydra.openid.id-token --alg ES256 -e "http://127.0.0.1:$ADM" --quiet >/dev/null
      if [ "$SCENARIO" = refresh ]; then MODE=(--mode refresh --scope offline_access --conns "$CONNS")
      else MODE=(--mode flow --conns "${FLOW_CONNS:-32}"); fi
      RP=$(new_client --grant-type authorization_code,refresh_token --response-type code --scope openid,offline_access \
        --redirect-uri https://rp.example/cb --name threads-rp)
      (taskset -c "$LOAD_CPUS" target/release/flowload --public "http://127.0.0.1:$PUB" --admin "http://127.0.0.1:$ADM" \
        --client "$(json_field "$RP" client_id)" --secret "$(json_field "$RP" client_secret)" \
        --duration "${DURATION%s}" "${MODE[@]}" >"$DATA/load.json"
        times >"$DATA/times")
      ok=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["errors"] == 0, d; print(d["completed"])' "$DATA/load.json")
      p99=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["p99_ms"])' "$DATA/load.json")
    else
      (taskset -c "$LOAD_CPUS" oha --no-tui --output-format json -z "$DURATION" -c "$CONNS" "${REQ[@]}" >"$DATA/load.json"
        times >"$DATA/times")
      ok=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(v for k, v in d["statusCodeDistribution"].items() if k.startswith("2")))' "$DATA/load.json")
      p99=$(python3 -c 'import json,sys; print(1000 * json.load(open(sys.argv[1]))["latencyPercentiles"]["p99"])' "$DATA/load.json")
    fi
    snap >"$DATA/after"
    load=$(tail -n1 "$DATA/times" | awk '{gsub(/s/, ""); split($1, u, "m"); split($2, s, "m"); print u[1] * 60 + u[2] + s[1] * 60 + s[2]}')
    ROWS+=("$r|$BIN|$ok|$p99|$(join "$DATA/before" "$DATA/after" | awk -v tick="$TICK" '{printf "%s:%d:%d:%.3f,", $1, $5-$2, $6-$3, ($7-$4)/tick}')(load_generator):0:0:$load,")
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=
    rm -rf "$DATA"; DATA=
  done
done

TABLE=$(python3 - "$SCENARIO" "$DURATION" "${ROWS[@]}" <<'PY'
import sys, collections
scenario, duration, rows = sys.argv[1], sys.argv[2], sys.argv[3:]
per = collections.defaultdict(list)  # (bin, thread) -> [(us per request, switches per request)]
for row in rows:
    r, b, ok, p99, threads = row.split("|")
    ok = int(ok)
    total = 0.0
    for t in filter(None, threads.split(",")):
        name, vol, nonvol, secs = t.rsplit(":", 3)
        # Per-partition and per-helper names collapse to their kind (worker-0 stays).
        if name != "(load_generator)":
            total += float(secs)
        per[(b, name)].append((float(secs) * 1e6 / ok, (int(vol) + int(nonvol)) / ok))
    per[(b, "(all threads)")].append((total * 1e6 / ok, 0))
    per[(b, "(requests)")].append((ok, float(p99)))
print(f"| binary | thread | CPU µs per {scenario} request (median of rounds) | context switches per request |")
print("| --- | --- | ---: | ---: |")
for (b, name), v in sorted(per.items()):
    if name == "(requests)":
        continue
    us = sorted(x[0] for x in v)[len(v) // 2]
    sw = sorted(x[1] for x in v)[len(v) // 2]
    if us < 0.05 and name != "(all threads)":
        continue
    print(f"| `{b}` | {name} | {us:.2f} | {sw:.3f} |")
# Rates by round (rounds interleave the binaries, so a round's ratios compare like with like).
secs = float(duration.rstrip("s"))
bins = list(dict.fromkeys(b for (b, _) in per))
rates = {b: [n / secs for n, _ in per[(b, "(requests)")]] for b in bins}
p99s = {b: [p for _, p in per[(b, "(requests)")]] for b in bins}
print()
print("| binary | answers per second by round | against the first binary by round | p99 ms by round |")
print("| --- | --- | --- | --- |")
for b in bins:
    ratios = [r / f for r, f in zip(rates[b], rates[bins[0]])]
    print(f"| `{b}` | {', '.join(f'{r:.0f}' for r in rates[b])} | {', '.join(f'{x:.2f}' for x in ratios)} | {', '.join(f'{p:.2f}' for p in p99s[b])} |")
PY
)
echo "$TABLE"
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
OUT="loadtest/runs/$STAMP-$(git rev-parse --short HEAD)-threads${LABEL:+-$LABEL}.md"
{
  echo "# CPU per request by thread $STAMP ($SCENARIO)"
  echo
  echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r)."
  echo "Server: \`taskset -c $SERVER_CPUS\`, a fresh data directory per run, durable commits, log level ${LOG_LEVEL:-info};"
  case "$SCENARIO" in
    refresh) GEN="bench's flowload --mode refresh, $CONNS connections" ;;
    flow*) GEN="bench's flowload --mode flow, ${FLOW_CONNS:-32} connections" ;;
    *) GEN="oha, $CONNS connections" ;;
  esac
  echo "load: $GEN, \`taskset -c $LOAD_CPUS\`, $DURATION, $ROUNDS round(s) interleaved."
  echo "CPU time is user + system of each thread (/proc/<pid>/task/*/stat) over the load run, divided by the 2xx answers (refresh: completed rotations); (load_generator) is the load process itself, not in (all threads)."
  echo
  echo "$TABLE"
  echo
  echo "Command: \`SCENARIO=$SCENARIO DURATION=$DURATION CONNS=$CONNS ROUNDS=$ROUNDS loadtest/threads.sh ${BINS[*]}\`"
} >"$OUT"
echo "wrote $OUT"
