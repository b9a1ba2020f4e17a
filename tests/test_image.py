"""The container image, built by `make image` on a private dockerd and run: the documented use, end to end.

`make image-test` runs this (marker `image`; `make test` deselects it: a cold build costs minutes). The
container runs with no network at all (the private engine has no bridge) and every request is made inside
it with `docker exec`: /healthz with the image's own python; tools/list with the image's SDK client over
streamable HTTP (fixtures/image_tools.py), then with the real SDK client on this side speaking stdio to
`sophia connect` in the container, as a desktop client would.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import anyio
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from servers.docker.engine import Engine, EngineUnavailable, start_engine

pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[1]
LIST_TOOLS = Path(__file__).with_name("fixtures") / "image_tools.py"
IMAGE = "sophia-test/sophia:smoke"
# Bounds for waits, never expectations: a cold build on a loaded 2-core machine takes a few minutes.
BUILD_S = 1500.0
START_S = 120.0
CALL_S = 60.0
SERVING = "sophia: serving on http://0.0.0.0:8760/mcp"
# One tool of each server that answers on embedded defaults, and the host's own.
WANTED = frozenset({"memory_store", "snowflake_query", "pulumi_list_stacks", "sophia_find_tools"})
PROBE = (
    "import sys, urllib.request, urllib.error\n"
    "try:\n"
    "    with urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=sys.argv[2].encode() or None,"
    " headers={'Content-Type': 'application/json', 'Accept': 'application/json, text/event-stream'}),"
    " timeout=30) as r:\n"
    "        print(r.status, r.read().decode())\n"
    "except urllib.error.HTTPError as e:\n"
    "    print(e.code, e.read().decode())\n"
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A private dockerd, stopped by PID at the end."""
    try:
        started = start_engine(tmp_path_factory.mktemp("image-dockerd"))
    except EngineUnavailable as exc:
        message = f"REAL DOCKERD UNAVAILABLE, image not built: {exc}"
        if os.environ.get("SOPHIA_REQUIRE_DOCKER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def docker_env(engine: Engine) -> dict[str, str]:
    return {**os.environ, "DOCKER_HOST": engine.url}


@pytest.fixture(scope="module")
def image(docker_env: dict[str, str]) -> str:
    """`make image`, exactly as documented (the base made from Debian packages when none is given)."""
    done = subprocess.run(["make", "--no-print-directory", "image", f"IMAGE={IMAGE}"], cwd=ROOT, env=docker_env,
                          capture_output=True, text=True, timeout=BUILD_S, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"make image failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return IMAGE


def docker(env: dict[str, str], *args: str, timeout: float = CALL_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def container(image: str, docker_env: dict[str, str]) -> Iterator[str]:
    """The image's own command (`sophia up` over HTTP), started detached; stopped and removed after."""
    name = f"sophia-smoke-{uuid.uuid4().hex[:8]}"
    started = docker(docker_env, "run", "-d", "--name", name, "--network", "none", image)
    assert started.returncode == 0, started.stderr
    try:
        wait_for_log(docker_env, name, SERVING)
        yield name
    finally:
        logs = docker(docker_env, "logs", name)
        print(logs.stdout[-3000:], logs.stderr[-3000:])
        docker(docker_env, "rm", "--force", name)


def wait_for_log(env: dict[str, str], name: str, marker: str) -> None:
    """Follow the container's output until `marker` appears (bounded); fail with what it said if it exits."""
    follow = subprocess.Popen(["docker", "logs", "--follow", name], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)  # fmt: skip
    seen: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert follow.stdout is not None
        for line in follow.stdout:
            seen.append(line)
            if marker in line:
                found.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=START_S)
    follow.kill()
    follow.wait(timeout=CALL_S)
    assert found.is_set(), f"{marker!r} not seen; the container said:\n{''.join(seen)[-3000:]}"


def probe(env: dict[str, str], name: str, path: str, body: str = "", token: str = "") -> tuple[int, str]:
    """One HTTP request from inside the container (its python, its loopback): status and body."""
    args = ["exec", *(["-e", f"SOPHIA_TOKEN={token}"] if token else []), name, "python3", "-c", PROBE]
    done = docker(env, *args, f"http://127.0.0.1:8760{path}", body)
    assert done.returncode == 0, done.stderr
    status, _, text = done.stdout.partition(" ")
    return int(status), text


def test_image_prints_its_version(image: str, docker_env: dict[str, str]) -> None:
    done = docker(docker_env, "run", "--rm", "--network", "none", image, "sophia", "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"sophia {version('sophia-host')}"


def test_image_serves_healthz_and_tools_to_a_token_it_created(container: str, docker_env: dict[str, str]) -> None:
    status, body = probe(docker_env, container, "/healthz")
    assert (status, body.strip()) == (200, '{"status":"ok"}')
    # No token, no tools: the container binds every interface, so /mcp must refuse an anonymous caller.
    status, _ = probe(docker_env, container, "/mcp", '{"jsonrpc":"2.0","id":1,"method":"tools/list"}')
    assert status == 401

    created = docker(docker_env, "exec", container, "sophia", "token", "create", "--name", "smoke")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token

    # Inside the container, until the children have started: the image's client, the token from the environment.
    listed = subprocess.run(["docker", "exec", "-i", "-e", "SOPHIA_TOKEN", container, "python3", "-", *sorted(WANTED)],
                            input=LIST_TOOLS.read_text(), env={**docker_env, "SOPHIA_TOKEN": token},
                            capture_output=True, text=True, timeout=START_S + CALL_S, check=False)  # fmt: skip
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert set(json.loads(listed.stdout)) >= WANTED

    async def bridged() -> set[str]:
        # The token reaches `sophia connect` through the environment, never its argv.
        params = StdioServerParameters(command="docker", args=["exec", "-i", "-e", "SOPHIA_TOKEN", container, "sophia",
                                       "connect", "http://127.0.0.1:8760/mcp"],
                                       env={**docker_env, "SOPHIA_TOKEN": token})  # fmt: skip
        with anyio.fail_after(CALL_S):
            async with Client(stdio_client(params), read_timeout_seconds=CALL_S) as client:
                return {tool.name for tool in (await client.list_tools()).tools}

    assert anyio.run(bridged) == set(json.loads(listed.stdout))

    # `docker stop` sends SIGTERM to PID 1, `sophia up`: it stops its children and the audit log and exits 0;
    # 137 would mean docker had to SIGKILL it.
    stopped = docker(docker_env, "stop", "--timeout", "60", container, timeout=START_S)
    assert stopped.returncode == 0, stopped.stderr
    assert docker(docker_env, "inspect", "--format", "{{.State.ExitCode}}", container).stdout.strip() == "0"
