# syntax=docker/dockerfile:1
# The Personas cloud image: one binary, two modes (`orchestrator`, `worker`), with the pinned
# Claude Code CLI the workers run. Build from the repository root:
#   docker build -t personas-cloud .
# See docs/cloud.md for the settings and docker-compose.yml for a whole deployment.

ARG RUST_VERSION=1.95
ARG NODE_VERSION=22

# --- build: personas-cloud in release; librdkafka is compiled from source (cmake, libcurl) ---
FROM rust:${RUST_VERSION}-slim-bookworm AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libcurl4-openssl-dev libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p personas-cloud \
 && install -m 0755 target/release/personas-cloud /usr/local/bin/personas-cloud

# --- runtime: Debian slim with Node (the Claude CLI's runtime), non-root ---
FROM node:${NODE_VERSION}-bookworm-slim
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Keep in step with scripts/install-claude.sh (the version the tests run).
ARG CLAUDE_CODE_VERSION=2.1.197
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl git \
 && rm -rf /var/lib/apt/lists/*
# npm may skip the package's postinstall, which puts the native binary in place: run it when
# the CLI does not answer, then insist on the pinned version.
RUN npm install -g --no-audit --no-fund --loglevel=error \
      "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}" \
 && npm cache clean --force \
 && (claude --version >/dev/null 2>&1 \
     || (cd "$(npm root -g)/@anthropic-ai/claude-code" && node install.cjs)) \
 && claude --version | grep -q "^${CLAUDE_CODE_VERSION} "
COPY --from=build /usr/local/bin/personas-cloud /usr/local/bin/personas-cloud
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/personas personas
USER 10001:10001
WORKDIR /home/personas
# In a container the orchestrator listens on every interface; workers find the CLI here.
ENV PERSONAS_CLOUD_LISTEN=0.0.0.0:9500 \
    PERSONAS_CLOUD_CLAUDE_PATH=/usr/local/bin/claude \
    PERSONAS_CLOUD_LOG=info
EXPOSE 9500
# SIGTERM stops either mode gracefully. Run with an init (`docker run --init`, compose's
# `init: true`) so the Claude CLI's orphaned tool processes are reaped.
ENTRYPOINT ["personas-cloud"]
CMD ["orchestrator"]
