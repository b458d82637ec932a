#!/usr/bin/env bash
# The Kafka-protocol broker for the local cloud stack and its tests: Tansu, pinned, built from
# crates.io with only its Postgres storage (topics live in the same Postgres the stack runs).
# The build takes minutes, so the binary is cached in a machine-level directory keyed by version
# (PERSONAS_TOOL_CACHE, default ~/.cache/personas-tools) and linked into .tools/. An empty cache
# builds it. Prints the binary's path.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="0.6.0"
cache="${PERSONAS_TOOL_CACHE:-$HOME/.cache/personas-tools}/tansu-$version"
bin="$cache/bin/tansu"
if [ ! -x "$bin" ]; then
  echo "install-tansu: building tansu $version into $cache (once per machine)" >&2
  mkdir -p "$cache"
  cargo install tansu --version "$version" --locked --no-default-features --features postgres \
    --root "$cache" >&2
fi
mkdir -p "$root/.tools"
ln -sfn "$bin" "$root/.tools/tansu"
echo "$root/.tools/tansu"
