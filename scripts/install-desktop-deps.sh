#!/usr/bin/env bash
# What building and testing the Tauri desktop app needs: Debian packages (WebKitGTK, tray, the
# X server, session bus and WebDriver for the GUI tests), the desktop CLI's npm package, and —
# with --test — tauri-driver (pinned, into .tools/). Idempotent and quick when done; sudo only
# when not root.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pkgs=(libwebkit2gtk-4.1-dev build-essential curl wget file libxdo-dev libssl-dev
      libayatana-appindicator3-dev librsvg2-dev desktop-file-utils)
if [ "${1:-}" = "--test" ]; then
  pkgs+=(xvfb xauth webkit2gtk-driver dbus-daemon python3-xlib x11-utils)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-desktop-deps: installing ${missing[*]}" >&2
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
desk="$root/apps/desktop"
lock_hash="$(sha256sum "$desk/package-lock.json" | cut -d' ' -f1)"
if [ ! -f "$desk/node_modules/.lock-hash" ] || [ "$(cat "$desk/node_modules/.lock-hash")" != "$lock_hash" ]; then
  (cd "$desk" && npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$lock_hash" > "$desk/node_modules/.lock-hash"
fi
if [ "${1:-}" = "--test" ] && [ ! -x "$root/.tools/tauri-driver/bin/tauri-driver" ]; then
  echo "install-desktop-deps: building tauri-driver 2.1.0 into .tools/" >&2
  cargo install tauri-driver --version 2.1.0 --locked --root "$root/.tools/tauri-driver" >&2
fi
