# The two commands a newcomer needs: `make up` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
PERSONAS := target/release/personas

.PHONY: up build ui test test-core test-deps desktop desktop-test lint bench clean-tools cloud-dev

## Build the release binary and run the local runtime (embedded SQLite in the data dir).
up: build
	$(PERSONAS) up $(ARGS)

build: ui
	$(CARGO) build --release -p personas-cli

## The cloud on this machine, no Docker: Postgres, the Tansu broker, 2 orchestrators and 2
## workers, data in .cloud-dev/. Prints PERSONAS_CLOUD_URL=… PERSONAS_CLOUD_TOKEN=… when ready
## (the only line on standard output); Ctrl-C stops it all. Workers use ANTHROPIC_API_KEY /
## ANTHROPIC_BASE_URL / CLAUDE_CODE_OAUTH_TOKEN from this environment. ARGS go to
## personas-cloud-dev (--help).
cloud-dev:
	@./scripts/install-claude.sh
	@./scripts/install-tansu.sh >/dev/null
	@$(CARGO) build -p personas-cloud -p personas-testkit --bins
	@exec "$${CARGO_TARGET_DIR:-target}/debug/personas-cloud-dev" $(ARGS)

## The web UI (npm ci + vite build), skipped when its sources are unchanged.
ui:
	./scripts/build-ui.sh

## Install test prerequisites (pinned Claude Code CLI, Chromium, desktop packages) and run every
## test: the workspace, the UI's unit and browser tests, then the desktop app's own step.
test: test-core desktop-test

## Everything but the desktop app: `cargo test` on the default members (the Tauri crate is kept
## out of this path), Vitest, the browser e2e.
test-core: test-deps
	$(CARGO) test --locked
	cd apps/ui && npx vitest run
	$(CARGO) build --locked -p personas-cli -p personas-testkit --bins
	cd apps/ui && node e2e/run.mjs

## The desktop app's CI step: build it (debug, UI embedded, .deb) and drive it under Xvfb.
desktop-test: test-deps
	./scripts/build-desktop.sh --debug
	$(CARGO) test --locked -p personas-desktop --features custom-protocol
	$(CARGO) build --locked -p personas-cli -p personas-testkit --bins
	node apps/desktop/e2e/run.mjs

## The desktop app and its .deb and .AppImage bundles (release).
desktop:
	./scripts/build-desktop.sh

test-deps:
	./scripts/install-test-deps.sh

lint:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) fmt --all --check

bench:
	$(CARGO) build --release -p personas-cli -p personas-testkit --bins
	$(PERSONAS) bench

clean-tools:
	rm -rf .tools
