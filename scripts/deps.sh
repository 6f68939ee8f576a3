#!/usr/bin/env bash
# Installs what Ferry needs to build and test on Debian 12, skipping what is already there.
# Sourced by scripts/test.sh and scripts/demo.sh; safe to run again.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

ferry_apt_packages=(
  build-essential pkg-config file libssl-dev curl ca-certificates
  libwebkit2gtk-4.1-dev librsvg2-dev libayatana-appindicator3-dev
  xvfb xauth x11-utils imagemagick webkit2gtk-driver
  dbus dbus-x11 dunst gnome-keyring libsecret-tools keyutils
  iproute2 iputils-ping wireguard-go wireguard-tools iperf3 procps
)

ferry_install_apt() {
  local missing=()
  for p in "${ferry_apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "ferry: installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

ferry_install_npm() {
  if [ -f package.json ]; then
    if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
      npm ci --no-audit --no-fund
    fi
  fi
}

ferry_install_cargo_tools() {
  if ! command -v tauri-driver >/dev/null 2>&1; then
    cargo install tauri-driver --version '^2' --locked
  fi
}
