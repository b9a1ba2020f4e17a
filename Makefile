# Sophia: the README's commands. Each target installs what it needs on a fresh machine.
SHELL := /bin/bash
# uv from PyPI when the machine has none (`python3 -m uv` runs the pip-installed binary).
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export UV_LINK_MODE := copy
APT_STAMP := .venv/.apt-installed

.PHONY: install test-deps run test lint typecheck bench config

.venv/.synced: uv.lock pyproject.toml $(wildcard */pyproject.toml servers/*/pyproject.toml)
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --all-packages --frozen --compile-bytecode
	touch $@

install: .venv/.synced

# System packages the integration tests need: a real dockerd, busybox for local images,
# a local registry for pull tests; Node for the MCP Inspector CLI.
$(APT_STAMP): | .venv/.synced
	@if ! command -v dockerd >/dev/null || ! command -v busybox >/dev/null || ! command -v docker-registry >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    docker.io busybox-static docker-registry >/dev/null; fi
	touch $@

test-deps: install $(APT_STAMP)

# HTTP on 127.0.0.1 needs a bearer token: the first run creates one (printed once) for this user.
run: install
	@$(UV) run --frozen sophia token list | grep -q " make-run " || \
	  $(UV) run --frozen sophia token create --name make-run --role developer
	$(UV) run --frozen sophia up

test: test-deps
	$(UV) run --frozen ruff check .
	$(UV) run --frozen mypy
	$(UV) run --frozen pytest -q

lint: install
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

typecheck: install
	$(UV) run --frozen mypy

# Every benchmark in bench/ in turn (bench/run_all.py); `make bench BENCHES="host memory"` runs only those.
bench: install
	$(UV) run --frozen python -m bench.run_all $(BENCHES)

config: install
	$(UV) run --frozen sophia config --client claude > mcp_config.json
