#!/usr/bin/env bash
# Runs a command inside what a desktop session offers, on a headless machine: Xvfb, a private
# D-Bus session, a fresh kernel keyring, an unlocked gnome-keyring (Secret Service) and dunst
# (notifications). Used by test.sh; handy alone: bash scripts/desktop-env.sh cargo test --test gui_demo
set -euo pipefail
XDG_DATA_HOME="$(mktemp -d)"   # gnome-keyring keeps its store here; HOME stays as it is
export XDG_DATA_HOME
# dconf (gsettings' store, started on the private bus) keeps its database here, not in ~/.config.
XDG_CONFIG_HOME="$XDG_DATA_HOME/config"
mkdir -p "$XDG_CONFIG_HOME"
export XDG_CONFIG_HOME
trap 'rm -rf "$XDG_DATA_HOME"' EXIT
xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- keyctl session - bash -c '
  set -euo pipefail
  eval "$(printf %s ferry-ci | gnome-keyring-daemon --unlock --components=secrets)"
  export GNOME_KEYRING_CONTROL
  dunst >"$XDG_DATA_HOME/dunst.log" 2>&1 &
  dunst_pid=$!
  trap "kill $dunst_pid 2>/dev/null || true" EXIT
  "$@"
' desktop-env "$@"
