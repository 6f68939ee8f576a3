#!/usr/bin/env bash
# Starts Ferry's desktop app on the demo: an in-process lab with seeded accounts, signed in.
# Installs what is missing, builds the UI and the app, then runs it (under a virtual display when
# there is no display, so it also works on a headless box). Extra arguments go to the app.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ferry_install_apt
ferry_install_node
ferry_check_rust
ferry_install_npm
npm run build
cargo build -p ferry-desktop
app=target/debug/ferry-desktop
if [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; then
  exec "$app" --demo "$@"
fi
echo "ferry: no display; running under Xvfb (screenshot: DISPLAY=<shown below> import -window root shot.png)"
exec xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- \
  bash -c 'echo "ferry: DISPLAY=$DISPLAY"; exec "$0" --demo "$@"' "$app" "$@"
