#!/usr/bin/env bash
# Records a flamegraph of the server under one load scenario.
#   flamegraphs/record.sh issuance|introspect|flow|flow-es256|refresh
# Starts the release server on a fresh data directory (durable commits) pinned to CPU 0, drives it
# with oha on CPU 1 at 64 connections, records `perf record -F 999 -g` of the server for 8 s in the
# middle of a 14 s run, and writes flamegraphs/<date>-<scenario>-<commit>.svg.
# FOLDED=<file> also keeps the collapsed stacks (for flamegraphs/split.py).
# PG=1: the server runs on PostgreSQL (a throwaway cluster from crate testpg, pinned to CPU 0
# with the server, as in `PG=1 loadtest/run.sh`); the SVG's name gains `-pg`.
# Needs perf (Debian's linux-perf) and inferno (`cargo install --locked inferno`).
set -euo pipefail
cd "$(dirname "$0")/.."
SC=${1:?issuance or introspect}
cargo build --release --bin hydra
cargo build --release -p hydra-bench --bin flowload
command -v inferno-flamegraph >/dev/null || cargo install --locked inferno
BIN=target/release/hydra
DATA=$(mktemp -d)
trap 'kill $S 2>/dev/null || true; exec 3>&- 2>/dev/null || true; rm -rf "$DATA"' EXIT
DSN="redb://$DATA"
if [ -n "${PG:-}" ]; then
  cargo build --release -p testpg --bin testpg-cluster
  mkfifo "$DATA/pg.in"
  taskset -c 0 target/release/testpg-cluster <"$DATA/pg.in" >"$DATA/pg.cluster" &
  exec 3>"$DATA/pg.in"
  for _ in $(seq 150); do [ -s "$DATA/pg.cluster" ] && break; sleep 0.2; done
  read -r _ PGPORT _ PGBIN <"$DATA/pg.cluster"
  "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$PGPORT" -U postgres -c "create database hydra" postgres
  DSN="postgres://postgres@127.0.0.1:$PGPORT/hydra?sslmode=disable"
  "$BIN" migrate sql up --yes "$DSN" >/dev/null
fi
env DSN="$DSN" SECRETS_SYSTEM=flamegraph-system-secret-0123456789 SERVE_PUBLIC_HOST=127.0.0.1 \
  SERVE_PUBLIC_PORT=14444 SERVE_ADMIN_HOST=127.0.0.1 SERVE_ADMIN_PORT=14445 LOG_LEVEL="${LOG_LEVEL:-info}" \
  taskset -c 0 "$BIN" serve all >"$DATA/log" 2>&1 &
S=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:14444/health/ready >/dev/null 2>&1 && break; sleep 0.1; done
C=$("$BIN" create oauth2-client -e http://127.0.0.1:14445 --grant-type client_credentials --scope read --format json)
ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_id"])' "$C")
SEC=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_secret"])' "$C")
OHA=(taskset -c 1 oha --no-tui -z 14s -c 64 -m POST -T application/x-www-form-urlencoded)
case "$SC" in
  issuance)
    "${OHA[@]}" -a "$ID:$SEC" -d 'grant_type=client_credentials&scope=read' http://127.0.0.1:14444/oauth2/token >/dev/null &
    ;;
  introspect)
    for _ in $(seq 2000); do
      curl -s -u "$ID:$SEC" -d 'grant_type=client_credentials&scope=read' http://127.0.0.1:14444/oauth2/token |
        python3 -c 'import json,sys; print("token=" + json.load(sys.stdin)["access_token"])'
    done >"$DATA/pool.txt"
    "${OHA[@]}" -Z "$DATA/pool.txt" http://127.0.0.1:14445/admin/oauth2/introspect >/dev/null &
    ;;
  flow | flow-es256)
    # flow-es256: an ES256 key, newest in the ID-token set, signs the ID tokens.
    [ "$SC" = flow ] || "$BIN" create jwk hydra.openid.id-token --alg ES256 -e http://127.0.0.1:14445 --quiet >/dev/null
    RP=$("$BIN" create oauth2-client -e http://127.0.0.1:14445 --grant-type authorization_code,refresh_token \
      --response-type code --scope openid,offline_access --redirect-uri https://rp.example/cb --format json)
    RP_ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_id"])' "$RP")
    RP_SECRET=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_secret"])' "$RP")
    taskset -c 1 target/release/flowload --public http://127.0.0.1:14444 --admin http://127.0.0.1:14445 \
      --client "$RP_ID" --secret "$RP_SECRET" --mode flow --conns 32 --duration 14 >/dev/null &
    ;;
  refresh)
    # Refresh-token rotation, one chain per connection (scope offline_access: no ID token).
    RP=$("$BIN" create oauth2-client -e http://127.0.0.1:14445 --grant-type authorization_code,refresh_token \
      --response-type code --scope openid,offline_access --redirect-uri https://rp.example/cb --format json)
    RP_ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_id"])' "$RP")
    RP_SECRET=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_secret"])' "$RP")
    taskset -c 1 target/release/flowload --public http://127.0.0.1:14444 --admin http://127.0.0.1:14445 \
      --client "$RP_ID" --secret "$RP_SECRET" --mode refresh --scope offline_access --conns 64 --duration 14 >/dev/null &
    ;;
  *) echo "unknown scenario $SC" >&2; exit 2 ;;
esac
O=$!
sleep 3
# CALL_GRAPH=dwarf unwinds through DWARF (the release build has no frame pointers, so `-g`
# stacks stop at the first frame without one; dwarf costs more to record and to fold).
CG=(-g)
[ -z "${CALL_GRAPH:-}" ] || CG=(--call-graph "$CALL_GRAPH")
perf record -F 999 "${CG[@]}" -p "$S" -o "$DATA/perf.data" -- sleep 8 >/dev/null 2>&1
wait $O
OUT="flamegraphs/$(date -u +%Y-%m-%d)-$SC-$(git rev-parse --short HEAD)${PG:+-pg}.svg"
perf script -i "$DATA/perf.data" 2>/dev/null | inferno-collapse-perf >"$DATA/folded"
if [ -n "${FOLDED:-}" ]; then cp "$DATA/folded" "$FOLDED"; fi
inferno-flamegraph <"$DATA/folded" --title "hydra-rs $SC (oha -c 64, server on 1 core${PG:+, on PostgreSQL sharing it})" >"$OUT"
echo "wrote $OUT"
