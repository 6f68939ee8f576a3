#!/usr/bin/env bash
# The desktop app's memory footprint (a measure, not a test): the release build, driven through
# the same walkthrough as the GUI test (src-tauri/tests/gui_demo.rs) in a virtual desktop; the
# whole app tree (ferry-desktop, WebKitWebProcess, WebKitNetworkProcess) as PSS from
# /proc/PID/smaps_rollup, idle (first window, demo signed in) and connected (app mode,
# tunnelbyte, traffic through the proxy), then (gui_instance, gui_tray_start; no demo) idle with
# the window open, after closing it to the tray, and started in the tray.
# Usage: bash scripts/footprint.sh        env: FERRY_WEBKIT_COMPOSITING=1 (WebKit's default
# accelerated compositing, for the "before" figure)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
npm run build >/dev/null
cargo build --release -p ferry-desktop
for t in gui_demo gui_instance gui_tray_start; do
  FERRY_DESKTOP_BIN="$(pwd)/target/release/ferry-desktop" bash scripts/desktop-env.sh \
    cargo test -p ferry-desktop --test "$t" -- --nocapture 2>&1 | grep -E "^measure:|test result|panicked"
done
