#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs every test of the
# workspace (unit tests, the storage crate's tests against the embedded store and PostgreSQL,
# and the integration suite that starts the real server on ephemeral ports under both monoio
# drivers, on each backend), the conformity harness on each backend, the k6 scripts' static
# check, the fuzz targets, and closes with one summary line.
set -euo pipefail
cd "$(dirname "$0")"

# The Rust toolchain comes with the machine; the conformity harness installs its Python
# packages into conformity/.venv itself; python3-venv, a C++ compiler and PostgreSQL are
# installed below.
command -v cargo >/dev/null || { echo "cargo is required (rustup.rs)" >&2; exit 1; }
# A fresh Debian machine may lack venv (the harness), a C++ compiler (libFuzzer, built by
# cargo-fuzz) or PostgreSQL: install them with apt when missing.
need=()
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3 python3-venv)
command -v c++ >/dev/null || need+=(g++)
# Node checks the k6 scripts (loadtest/k6/check.mjs).
command -v node >/dev/null || need+=(nodejs)
# PostgreSQL's server binaries (tests start throwaway clusters of their own, see testpg/).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "${PG_BIN:-}" ] || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "the tests need: ${need[*]} (install them, or run as root on Debian)" >&2
    exit 1
  fi
fi

cargo build --bins
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?
# The integration suite again with every server on PostgreSQL (a throwaway cluster, a database
# per server); tests of what only the embedded store has say so on stderr and pass.
echo "== integration suite on PostgreSQL (IT_BACKEND=postgres) =="
IT_BACKEND=postgres cargo test --test it --no-fail-fast 2>&1 | tee -a "$log" || status=$?
# The OpenID Connect conformity harness (Basic, Implicit, Hybrid, Form Post, Config, Dynamic and
# logout plans) against the debug binary.
echo "== conformity (conformity/run.sh) =="
conformity/run.sh target/debug/hydra 2>&1 | tee -a "$log" || status=$?
# The same plans with the server on PostgreSQL (a throwaway cluster, kept until fd 3 closes).
echo "== conformity on PostgreSQL =="
cargo build -q -p testpg --bin testpg-cluster
pgdir=$(mktemp -d)
mkfifo "$pgdir/in"
target/debug/testpg-cluster <"$pgdir/in" >"$pgdir/cluster" &
exec 3>"$pgdir/in"
for _ in $(seq 150); do [ -s "$pgdir/cluster" ] && break; sleep 0.2; done
read -r _ pgport _ pgbin <"$pgdir/cluster" || true
if [ -n "${pgport:-}" ] && "$pgbin/psql" -X -q -h 127.0.0.1 -p "$pgport" -U postgres -c "create database conformity" postgres; then
  dsn="postgres://postgres@127.0.0.1:$pgport/conformity?sslmode=disable"
  target/debug/hydra migrate sql up --yes "$dsn" >/dev/null
  CONFORMITY_DSN="$dsn" conformity/run.sh target/debug/hydra 2>&1 | tee -a "$log" || status=$?
else
  echo "the PostgreSQL cluster for the conformity run did not start" | tee -a "$log"
  echo "0 passed, 1 failed" >>"$log"
  status=1
fi
exec 3>&-
wait
rm -rf "$pgdir"
# The k6 scripts parse, import what k6 exports, and call only routes the server serves (k6 itself
# is not installed on CI machines; loadtest/k6/README.md says how to run them).
echo "== k6 scripts (loadtest/k6/check.mjs) =="
if node loadtest/k6/check.mjs 2>&1 | tee -a "$log"; then
  echo "k6 scripts: ok" | tee -a "$log"
else
  echo "k6 scripts: FAILED" | tee -a "$log"
  status=1
fi
# Coverage-guided fuzzing of every parser target, bounded (FUZZ_SECONDS per target; installs
# cargo-fuzz on first use). Each target counts as one test.
echo "== fuzz (fuzz/run.sh) =="
fuzz/run.sh "${FUZZ_SECONDS:-15}" 2>&1 | tee -a "$log" || status=$?
# One closing line over every test binary (cargo prints one `test result:` line per binary;
# the harness closes with its own `N passed, N failed`).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /^[0-9]+ passed, [0-9]+ failed$/ { p += $1; f += $3 }
     /^fuzz [a-z_]+: ok/ { p += 1 }
     /^fuzz [a-z_]+: FAILED/ { f += 1 }
     /^k6 scripts: ok$/ { p += 1 }
     /^k6 scripts: FAILED$/ { f += 1 }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
