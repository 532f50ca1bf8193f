#!/usr/bin/env bash
# Runs the whole test suite (unit, property, CLI, damage and crash tests),
# after installing what the build needs. Also checks formatting and lints.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/snap-target}

cargo fmt --all -- --check
cargo clippy --release --all-targets -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --release --no-fail-fast
else
  cargo test --release --no-fail-fast
fi
