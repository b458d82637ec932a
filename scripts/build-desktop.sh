#!/usr/bin/env bash
# Builds the desktop app and its Linux bundles with the Tauri CLI.
#   build-desktop.sh            release build: target/release/bundle/{deb,appimage}/
#   build-desktop.sh --debug    debug build with the UI embedded (what the GUI tests drive)
# The AppImage step downloads linuxdeploy from github.com; where that is unreachable the .deb is
# still built and the AppImage is reported as skipped (the release workflow builds it).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
mode="${1:-}"
"$root/scripts/install-desktop-deps.sh" ${mode:+--test}
"$root/scripts/build-ui.sh"
cd "$root/apps/desktop"
flags=()
[ "$mode" = "--debug" ] && flags+=(--debug)
npx tauri build "${flags[@]}" --bundles deb
if [ "$mode" != "--debug" ]; then
  if curl -sfI --max-time 5 https://github.com >/dev/null 2>&1; then
    npx tauri build --bundles appimage
  else
    echo "build-desktop: AppImage skipped — its tools (linuxdeploy) download from github.com, which this machine cannot reach; the .deb is built" >&2
  fi
fi
profile=$([ "$mode" = "--debug" ] && echo debug || echo release)
echo "build-desktop: bundles in target/$profile/bundle/:" >&2
find "$root/target/$profile/bundle" -maxdepth 2 -type f \( -name '*.deb' -o -name '*.AppImage' \) -exec ls -lh {} \; >&2
