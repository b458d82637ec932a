#!/usr/bin/env bash
# Builds the web UI (apps/ui/dist) once: npm ci when the lockfile changed, vite build when any
# UI source changed. A stamp of the inputs' hash makes a second run a no-op.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
ui="$root/apps/ui"
command -v npm >/dev/null || { echo "build-ui: npm is required (apt install nodejs npm)" >&2; exit 1; }
lock_hash="$(sha256sum "$ui/package-lock.json" | cut -d' ' -f1)"
if [ ! -f "$ui/node_modules/.lock-hash" ] || [ "$(cat "$ui/node_modules/.lock-hash")" != "$lock_hash" ]; then
  (cd "$ui" && npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$lock_hash" > "$ui/node_modules/.lock-hash"
fi
src_hash="$(cd "$ui" && find src public index.html vite.config.ts tsconfig.json package-lock.json -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
if [ -f "$ui/dist/index.html" ] && [ -f "$ui/.build-stamp" ] && [ "$(cat "$ui/.build-stamp")" = "$src_hash" ]; then
  exit 0
fi
(cd "$ui" && npx tsc -b && npx vite build --logLevel warn >&2)
echo "$src_hash" > "$ui/.build-stamp"
