#!/usr/bin/env bash
# Runs every Ferry test: formatting, lints, unit and end-to-end tests. Installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ferry_install_apt
ferry_install_npm

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== boringtun timers on a mocked clock (own build: the feature stops time, so never in the workspace build)"
cargo test -p ferry-tunnel --features mock-clock --lib peer::clock_tests
echo "== cargo test"
cargo test --workspace --no-fail-fast
