#!/usr/bin/env bash
# Everything `make test` needs beyond the Rust toolchain, installed into the project (never
# globally except Debian packages): the pinned Claude Code CLI. Idempotent and quick when done.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install-claude.sh"
