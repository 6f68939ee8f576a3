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
if [ "${SKIP_GUI_TESTS:-0}" != 1 ]; then
  npm run build >/dev/null
  cargo build --release -p ferry-desktop
  for t in gui_demo gui_instance gui_tray_start; do
    FERRY_DESKTOP_BIN="$(pwd)/target/release/ferry-desktop" bash scripts/desktop-env.sh \
      cargo test -p ferry-desktop --test "$t" -- --nocapture 2>&1 | grep -E "^measure:|test result|panicked"
  done
fi

# shellcheck disable=SC2046 # pkg-config's flags are words
cc -O2 -o target/footprint-baseline scripts/footprint-baseline.c \
  $(pkg-config --cflags --libs webkit2gtk-4.1)
SETTLE="${SETTLE:-10}" bash scripts/desktop-env.sh bash -c '
  set -euo pipefail
  # PSS of a process and of the processes it started (WebKit`s web and network processes).
  tree_line() {
    local total=0 each="" p k
    for p in "$1" $(pgrep -P "$1" || true); do
      k=$(awk "/^Pss:/ {print \$2}" "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
      total=$((total + k))
      each="$each, $(cat "/proc/$p/comm" 2>/dev/null) $((k / 1024)) MiB"
    done
    echo "PSS $((total / 1024)) MiB (${each#, })"
  }
  export WEBKIT_DISABLE_DMABUF_RENDERER=1
  fifo=$(mktemp -u) && mkfifo "$fifo"
  target/footprint-baseline >"$fifo" 2>/dev/null &
  pid=$!
  read -r _ready <"$fifo"
  sleep "$SETTLE"
  echo "measure: floor, the smallest WebKitGTK window: $(tree_line "$pid")"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -f "$fifo"
' 2>/dev/null | grep "^measure:"
