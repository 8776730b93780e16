#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests and the integration tests that drive the real
# binaries against fake cameras. One build profile (release) for binaries and tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

# The web UI tests drive Debian's Chromium with playwright-core (no browser download).
if ! command -v node >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
[ -d tests/ui/node_modules/playwright-core ] || (cd tests/ui && npm ci --no-audit --no-fund --loglevel=error)

# Runs a test command that must run exactly $1 tests: one whose filter matches nothing (a renamed
# test, a cfg that compiles it out) fails here instead of passing with "0 passed".
run_exactly() {
  local want=$1 log rc=0 ran
  shift
  log=$(mktemp)
  "$@" 2>&1 | tee "$log" || rc=$?
  ran=$(grep -o 'test result: [a-zA-Z]*\. [0-9]* passed' "$log" | awk '{n += $4} END {print n + 0}')
  rm -f "$log"
  if [ "$rc" -eq 0 ] && [ "$ran" -ne "$want" ]; then
    echo "test.sh: $ran tests passed where $want must run: $*" >&2
    rc=1
  fi
  return "$rc"
}

cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings
cargo build --release --workspace --bins
status=0
cargo test --release --workspace --no-fail-fast -- --skip reliability:: || status=$?
# The frame ring's and the packet ring's protocols, model-checked by loom: every interleaving of a
# writer and a reader (src/ring.rs, src/packet_layout.rs). Its own target directory, so `--cfg loom` does not invalidate the main build.
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
  run_exactly 4 cargo test --release -p shm-bus --lib loom || status=$?
# The fault-injection suite judges frame loss and timing against a live fake camera: it runs
# alone, after the rest, so that other tests (Chromium, benchmarks) do not starve it.
run_exactly 1 cargo test --release --workspace --test it -- \
  --exact reliability::the_small_fault_injection_suite_passes_every_check || status=$?
# The README's first command, end to end. It binds fixed ports and the repo's output/: alone, last.
bash scripts/demo_check.sh || status=$?
exit $status
