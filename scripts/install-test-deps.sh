#!/usr/bin/env bash
# Everything `make test` needs beyond the Rust toolchain, installed into the project (never
# globally except Debian packages): the pinned Claude Code CLI, Debian's chromium for the UI's
# browser tests, the UI's npm packages (with playwright-core, which drives that chromium; no
# browser download), and for the cloud: what building librdkafka from source needs (cmake, a C
# toolchain, libcurl, OpenSSL, zlib), Debian's PostgreSQL server (the tests run their own
# clusters with initdb, as the `postgres` user when root), and the Tansu broker (pinned, cached
# per machine by scripts/install-tansu.sh). Idempotent and quick when done: apt runs only when a
# package is missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pkgs=(chromium cmake build-essential pkg-config libcurl4-openssl-dev libssl-dev zlib1g-dev
      postgresql)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-test-deps: installing ${missing[*]}" >&2
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
fi
"$root/scripts/install-claude.sh"
"$root/scripts/install-tansu.sh" >/dev/null
"$root/scripts/build-ui.sh"
