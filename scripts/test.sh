#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests and the integration tests that drive the real
# binaries against fake cameras. One build profile (release) for binaries and tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings
cargo build --release --workspace --bins
cargo test --release --workspace --no-fail-fast
