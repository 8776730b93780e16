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

cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings
cargo build --release --workspace --bins
# The fault-injection suite judges frame loss and timing against a live fake camera: it runs
# alone, after the rest, so that other tests (Chromium, benchmarks) do not starve it.
status=0
cargo test --release --workspace --no-fail-fast -- --skip reliability:: || status=$?
cargo test --release --workspace --test it -- --exact reliability::the_small_fault_injection_suite_passes_every_check || status=$?
exit $status
