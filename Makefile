# The two commands a newcomer needs: `make up` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
PERSONAS := target/release/personas

.PHONY: up build ui test test-deps lint bench clean-tools

## Build the release binary and run the local runtime (embedded SQLite in the data dir).
up: build
	$(PERSONAS) up $(ARGS)

build: ui
	$(CARGO) build --release -p personas-cli

## The web UI (npm ci + vite build), skipped when its sources are unchanged.
ui:
	./scripts/build-ui.sh

## Install test prerequisites (pinned Claude Code CLI) and run every test.
test: test-deps
	$(CARGO) test --workspace --locked
	cd apps/ui && npx vitest run
	$(CARGO) build --locked -p personas-cli -p personas-testkit --bins
	cd apps/ui && node e2e/run.mjs

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
