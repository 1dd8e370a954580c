#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer through cargo-fuzz) of every target in fuzz_targets/, each for a
# bounded time, on the stable toolchain (no sanitizer: `-s none`; safe Rust needs none to catch the
# panics and failed assertions the targets check for).
#
#   fuzz/run.sh [seconds per target] [target...]     default: 20 seconds, every target
#
# The committed corpus (fuzz/corpus/<target>) seeds each run, and what a run learns is merged back
# into it, minimised (commit it when it grew). A crash leaves its input in fuzz/artifacts/<target>/,
# is copied to fuzz/regressions/<target>/ (replayed by `cargo test --test fuzz_corpus` ever after),
# and the script fails.
set -euo pipefail
cd "$(dirname "$0")"
SECS="${1:-20}"
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=($(ls fuzz_targets | sed 's/\.rs$//'))
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install --locked cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
fi
cargo fuzz build -s none 2>&1 | tail -1
failed=0
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t" "regressions/$t"
  fresh="$(mktemp -d)"
  log="$(mktemp)"
  if cargo fuzz run -s none "$t" "$fresh" "corpus/$t" -- -max_total_time="$SECS" -rss_limit_mb=2048 -max_len=8192 >"$log" 2>&1; then
    runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -1 | awk '{print $2}')
    # Fold into the committed corpus only the inputs that reach coverage it lacks.
    cargo fuzz run -s none "$t" "corpus/$t" "$fresh" -- -merge=1 >/dev/null 2>&1
    echo "fuzz $t: ok (${runs:-?} runs in ${SECS}s, corpus $(ls "corpus/$t" | wc -l) inputs)"
  else
    failed=1
    tail -30 "$log"
    echo "fuzz $t: FAILED"
    for a in artifacts/"$t"/*; do
      [ -e "$a" ] && cp "$a" "regressions/$t/" && echo "  input saved as fuzz/regressions/$t/$(basename "$a")"
    done
  fi
  rm -rf "$fresh" "$log"
done
exit $failed
