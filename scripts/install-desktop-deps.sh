#!/usr/bin/env bash
# Debian packages the Tauri desktop build and its WebDriver tests need. Idempotent: installs only
# what is missing. Uses sudo only when not root.
set -euo pipefail
pkgs=(libwebkit2gtk-4.1-dev build-essential curl wget file libxdo-dev libssl-dev
      libayatana-appindicator3-dev librsvg2-dev xvfb xauth webkit2gtk-driver)
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
