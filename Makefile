# The two commands a newcomer needs: `make up` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
PERSONAS := target/release/personas

.PHONY: up build test test-deps lint bench clean-tools

## Build the release binary and run the local runtime (embedded SQLite in the data dir).
up: build
	$(PERSONAS) up $(ARGS)

build:
	$(CARGO) build --release -p personas-cli

## Install test prerequisites (pinned Claude Code CLI) and run every test.
test: test-deps
	$(CARGO) test --workspace --locked

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
