#!/usr/bin/env bash
# Runs every Ferry test: formatting, lints, UI type checks and unit tests, then all Rust tests
# (unit, lab conformance, CLI, netns, and the GUI tests in a real WebKit window) inside a virtual
# display, a private D-Bus session with an unlocked gnome-keyring, a fresh kernel session keyring
# and a notification daemon. Installs whatever is missing first. Non-interactive.
# Every check runs even when an earlier one failed (except the UI build, which the app embeds);
# the script lists the failed checks at the end and exits non-zero if there was any.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
# One-shot builds: incremental caches only cost disk and time here.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
. scripts/deps.sh
ferry_install_all

# A full debug build takes ~8 GB; a linker dying of SIGBUS is usually a full disk, so say how
# much there is before and after.
disk() { df -h "${CARGO_TARGET_DIR:-$PWD/target}" 2>/dev/null | tail -1 | awk '{print "ferry: disk free " $4 " of " $2}' || true; }
mkdir -p "${CARGO_TARGET_DIR:-$PWD/target}"
disk

failed=()
check() { # check NAME COMMAND...
  local name=$1
  shift
  echo "== $name"
  if ! "$@"; then
    echo "ferry: FAILED: $name" >&2
    failed+=("$name")
  fi
}

echo "== UI build (dist/ is embedded by the app, so it precedes any cargo build)"
npm run build
check "UI type check" npm run typecheck
check "UI unit tests" npm test
check "cargo fmt" cargo fmt --all -- --check
check "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
# Own build: the feature stops time, so never in the workspace build.
check "boringtun timers on a mocked clock" \
  cargo test -p ferry-tunnel --features mock-clock --lib peer::clock_tests

# The .deb users install (a debug build here: the release build would not fit beside the rest
# in CI's time; the release package is `npm run tauri -- build --bundles deb`). Its install test
# (tests/tests/deb_package.rs) runs as root with the rest and skips without FERRY_DEB.
check "package (.deb, debug build)" npm run tauri -- build --debug --bundles deb --ci
FERRY_DEB="$(ls -t "${CARGO_TARGET_DIR:-$PWD/target}"/debug/bundle/deb/*.deb 2>/dev/null | head -1 || true)"
if [ -n "$FERRY_DEB" ]; then export FERRY_DEB; else unset FERRY_DEB; fi
check "cargo test (under Xvfb + D-Bus + keyrings + dunst)" \
  bash scripts/desktop-env.sh cargo test --workspace --no-fail-fast
disk
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'ferry: %d check(s) failed after %d s:\n' "${#failed[@]}" "$((SECONDS - start))" >&2
  printf '  - %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "ferry: all tests passed in $((SECONDS - start)) s"
