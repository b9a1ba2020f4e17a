# Sophia: the README's commands. Each target installs what it needs on a fresh machine.
SHELL := /bin/bash
# uv from PyPI when the machine has none (`python3 -m uv` runs the pip-installed binary).
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export UV_LINK_MODE := copy
APT_STAMP := .venv/.apt-installed

.PHONY: install dev-deps test-deps run test lint typecheck bench config image snapshots

LOCK_INPUTS := uv.lock pyproject.toml $(wildcard */pyproject.toml servers/*/pyproject.toml)
UV_PRESENT := command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv

# What `make run` needs and nothing more: the suite without the dev group (pytest, ruff, mypy,
# embedded PostgreSQL). --inexact leaves dev tools a `make test` installed in place.
.venv/.synced-run: $(LOCK_INPUTS)
	@$(UV_PRESENT)
	$(UV) sync --all-packages --frozen --compile-bytecode --no-dev --inexact
	touch $@

# The suite plus the dev group, for tests, lint and benchmarks.
.venv/.synced: $(LOCK_INPUTS)
	@$(UV_PRESENT)
	$(UV) sync --all-packages --frozen --compile-bytecode
	touch $@

install: .venv/.synced-run

dev-deps: .venv/.synced

# System packages the integration tests need: a real dockerd, busybox for local images,
# a local registry for pull tests; Node for the MCP Inspector CLI; Debian's chromium for the
# dashboard's browser tests (Playwright drives it: it cannot download a browser here).
$(APT_STAMP): | .venv/.synced
	@if ! command -v dockerd >/dev/null || ! command -v busybox >/dev/null || ! command -v docker-registry >/dev/null \
	    || ! test -x /usr/bin/chromium; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    docker.io busybox-static docker-registry chromium >/dev/null; fi
	touch $@

test-deps: dev-deps $(APT_STAMP)

# HTTP on 127.0.0.1 needs a bearer token: the first run creates one (printed once) for this user,
# then every run prints each client's config (stdio, and HTTP to this host) before serving.
# --no-sync: `uv run` would otherwise install the dev group.
run: install
	@$(UV) run --frozen --no-sync python -m sophia_host.first_run --url http://127.0.0.1:8760/mcp
	$(UV) run --frozen --no-sync sophia up

test: test-deps
	$(UV) run --frozen ruff check .
	$(UV) run --frozen mypy
	$(UV) run --frozen pytest -q

lint: dev-deps
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

typecheck: dev-deps
	$(UV) run --frozen mypy

# Rewrite tests/snapshots/<server>/<tool>.json from what every server lists now (after an intended
# schema change; review the diff before committing it).
snapshots: dev-deps
	SOPHIA_UPDATE_SNAPSHOTS=1 $(UV) run --frozen pytest -q tests/test_tool_contract.py -k snapshot

# Every benchmark in bench/ in turn (bench/run_all.py); `make bench BENCHES="host memory"` runs only those.
bench: dev-deps
	$(UV) run --frozen python -m bench.run_all $(BENCHES)

config: install
	$(UV) run --frozen --no-sync sophia config --client claude --portable > mcp_config.json

# The container image (Dockerfile): the suite on its embedded defaults, `sophia up` over HTTP.
# Needs a container engine; `make test` does not build it.
IMAGE ?= sophia:local
BASE ?= python:3.11-slim-bookworm
image:
	docker build --build-arg BASE=$(BASE) -t $(IMAGE) .
