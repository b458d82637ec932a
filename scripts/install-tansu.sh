#!/usr/bin/env bash
# The Kafka-protocol broker for the local cloud stack and its tests: Tansu, pinned, built from
# crates.io with its embedded SQL storage (libsql: topics in one SQLite file, kept across broker
# restarts). Not its Postgres storage: the crates.io package of 0.6.0 does not ship the Postgres
# schema that storage needs (only the SQLite one, which the broker applies itself), so a broker
# on an empty database stops at once with "relation cluster does not exist".
# The build takes minutes, so the binary is cached in a machine-level directory keyed by version
# (PERSONAS_TOOL_CACHE, default ~/.cache/personas-tools) and linked into .tools/. An empty cache
# builds it (under a lock, so concurrent callers wait for one build). Prints the binary's path.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="0.6.0"
cache="${PERSONAS_TOOL_CACHE:-$HOME/.cache/personas-tools}/tansu-$version-libsql"
bin="$cache/bin/tansu"
if [ ! -x "$bin" ]; then
  mkdir -p "$cache"
  # One build per machine even when several checkouts ask at once: the others wait for it.
  exec 9>"$cache.lock"
  flock 9
  if [ ! -x "$bin" ]; then
    echo "install-tansu: building tansu $version into $cache (once per machine)" >&2
    # A test and dev broker: a light optimisation level and no LTO halve the build; the
    # broker's speed is not what the tests measure.
    CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
      CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=0 \
      cargo install tansu --version "$version" --locked --no-default-features --features libsql \
      --root "$cache" >&2
  fi
  exec 9>&-
fi
mkdir -p "$root/.tools"
ln -sfn "$bin" "$root/.tools/tansu"
echo "$root/.tools/tansu"
