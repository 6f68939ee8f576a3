#!/usr/bin/env bash
# Installs what Ferry needs to build and test on Debian 12, skipping what is already there.
# Sourced by scripts/test.sh and scripts/demo.sh (or run directly: bash scripts/deps.sh).
# Non-interactive and safe to run again.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

ferry_apt_packages=(
  # build: compiler, linker inputs for WebKitGTK / GTK / tray / TLS
  build-essential pkg-config file libssl-dev curl ca-certificates
  libwebkit2gtk-4.1-dev librsvg2-dev libayatana-appindicator3-dev
  # GUI tests: virtual display, WebDriver for WebKitGTK, screenshots
  xvfb xauth x11-utils imagemagick webkit2gtk-driver xdg-utils
  # session services for tests: D-Bus, notification daemon, keyrings
  dbus dbus-x11 dunst gnome-keyring libsecret-tools keyutils
  # tunnel and network tests
  iproute2 iputils-ping wireguard-go wireguard-tools iperf3 procps ethtool
  # the helper's kill switch (nft) and its leak tests
  nftables
  # app-mode proxy tests: real clients (plain http via http_proxy), setpriv for another UID
  wget python3 util-linux
  # desktop proxy (gsettings on dconf) for "send this desktop's apps through Ferry"
  libglib2.0-bin dconf-service dconf-gsettings-backend gsettings-desktop-schemas
  # ... and KDE's (kioslaverc through kreadconfig5/kwriteconfig5)
  libkf5config-bin
)

ferry_sudo() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ferry_apt_updated=0
ferry_apt_install() {
  if [ "$ferry_apt_updated" -eq 0 ]; then
    ferry_sudo apt-get update -qq
    ferry_apt_updated=1
  fi
  ferry_sudo apt-get install -y -qq --no-install-recommends "$@"
}

ferry_install_apt() {
  local missing=()
  for p in "${ferry_apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "ferry: installing Debian packages: ${missing[*]}"
    ferry_apt_install "${missing[@]}"
  fi
}

ferry_install_node() {
  if ! command -v npm >/dev/null 2>&1; then
    echo "ferry: installing node and npm from Debian"
    ferry_apt_install nodejs npm
  fi
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  if [ "$major" -lt 20 ]; then
    echo "ferry: warning: node $(node --version) is older than the 20.19 that Vite 7 needs" >&2
  fi
}

ferry_check_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
      export PATH="$HOME/.cargo/bin:$PATH"
    else
      echo "ferry: cargo not found; install a Rust toolchain (1.85 or newer) with rustup first" >&2
      return 1
    fi
  fi
}

# npm ci when node_modules is missing or older than the lock file (always in CI).
ferry_install_npm() {
  if [ -f package.json ]; then
    if [ "${CI:-}" = "true" ] || [ ! -f node_modules/.package-lock.json ] \
      || [ package-lock.json -nt node_modules/.package-lock.json ]; then
      npm ci --no-audit --no-fund
    fi
  fi
}

ferry_install_cargo_tools() {
  if ! command -v tauri-driver >/dev/null 2>&1; then
    echo "ferry: installing tauri-driver"
    cargo install tauri-driver --version '^2' --locked
  fi
}

ferry_install_all() {
  ferry_install_apt
  ferry_install_node
  ferry_check_rust
  ferry_install_npm
  ferry_install_cargo_tools
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  cd "$(dirname "$0")/.."
  ferry_install_all
fi
