#!/usr/bin/env bash
# Everything `make test` needs beyond the Rust toolchain, installed into the project (never
# globally except Debian packages): the pinned Claude Code CLI, Debian's chromium for the UI's
# browser tests, and the UI's npm packages (with playwright-core, which drives that chromium;
# no browser download). Idempotent and quick when done.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install-claude.sh"
if [ ! -x /usr/bin/chromium ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-test-deps: installing Debian chromium" >&2
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >&2
fi
"$root/scripts/build-ui.sh"
