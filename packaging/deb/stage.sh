#!/usr/bin/env bash
# Tauri's beforeBundleCommand: builds the CLI and the helper in the profile of the app being
# bundled and stages them where tauri.conf.json's deb "files" expect them.
set -euo pipefail
cd "$(dirname "$0")/../.."
profile=release
flags=(--release)
if [ "${TAURI_ENV_DEBUG:-}" = "true" ]; then
  profile=debug
  flags=()
fi
cargo build --locked "${flags[@]}" -p ferry-cli -p ferry-helper
target="${CARGO_TARGET_DIR:-target}"
mkdir -p target/deb-stage
install -m 0755 "$target/$profile/ferry" target/deb-stage/ferry
install -m 0755 "$target/$profile/ferry-helper" target/deb-stage/ferry-helper
