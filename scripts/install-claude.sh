#!/usr/bin/env bash
# Installs the pinned Claude Code CLI into .tools/claude-code (project-local; never global).
# Idempotent: does nothing when the pinned version is already there.
set -euo pipefail
VERSION="${CLAUDE_CODE_VERSION:-2.1.197}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.tools/claude-code"
bin="$dest/node_modules/.bin/claude"
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "^$VERSION "; then
  exit 0
fi
command -v npm >/dev/null || { echo "install-claude: npm is required (apt install nodejs npm)" >&2; exit 1; }
mkdir -p "$dest"
echo "install-claude: installing @anthropic-ai/claude-code@$VERSION into $dest" >&2
npm install --prefix "$dest" --no-audit --no-fund --loglevel=error \
  "@anthropic-ai/claude-code@$VERSION" >&2
# npm may skip the package's postinstall (which puts the native binary in place); run it if the
# binary does not answer yet.
if ! "$bin" --version >/dev/null 2>&1; then
  (cd "$dest/node_modules/@anthropic-ai/claude-code" && node install.cjs) >&2
fi
"$bin" --version | grep -q "^$VERSION " || { echo "install-claude: $bin is not version $VERSION" >&2; exit 1; }
