#!/usr/bin/env bash
# Runs every Ferry test: formatting, lints, UI type checks and unit tests, then all Rust tests
# (unit, lab conformance, CLI, netns, and the GUI tests in a real WebKit window) inside a virtual
# display, a private D-Bus session with an unlocked gnome-keyring, a fresh kernel session keyring
# and a notification daemon. Installs whatever is missing first. Non-interactive.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
. scripts/deps.sh
ferry_install_all

echo "== UI build (dist/ is embedded by the app, so it precedes any cargo build)"
npm run build
echo "== UI type check and unit tests"
npm run typecheck
npm test
echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== boringtun timers on a mocked clock (own build: the feature stops time, so never in the workspace build)"
cargo test -p ferry-tunnel --features mock-clock --lib peer::clock_tests

echo "== cargo test (under Xvfb + D-Bus + keyrings + dunst)"
XDG_DATA_HOME="$(mktemp -d)"   # gnome-keyring keeps its store here; HOME stays as it is
export XDG_DATA_HOME
trap 'rm -rf "$XDG_DATA_HOME"' EXIT
xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- keyctl session - bash -c '
  set -euo pipefail
  eval "$(printf %s ferry-ci | gnome-keyring-daemon --unlock --components=secrets)"
  export GNOME_KEYRING_CONTROL
  dunst >"$XDG_DATA_HOME/dunst.log" 2>&1 &
  dunst_pid=$!
  trap "kill $dunst_pid 2>/dev/null || true" EXIT
  cargo test --workspace --no-fail-fast
'
echo "ferry: all tests passed in $((SECONDS - start)) s"
