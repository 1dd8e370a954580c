#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs every test of the
# workspace (unit tests, the storage crate's tests, and the integration suite that starts the
# real server on ephemeral ports under both monoio drivers).
set -euo pipefail
cd "$(dirname "$0")"

# The Rust toolchain comes with the machine; nothing else is needed yet. Later suites (the
# conformity harness) install their packages here.
command -v cargo >/dev/null || { echo "cargo is required (rustup.rs)" >&2; exit 1; }

cargo build --bins
cargo test --workspace --no-fail-fast
