"""The fork server (fork_server.py, fork_client.py): a forked child starts as a plain start of its
command would, whatever it cannot run is spawned, and a fork server that dies takes its children with
it and leaves the host spawning them."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from pathlib import Path

import anyio
import pytest
from sophia_host.child_env import child_environment
from sophia_host.config import ServerEntry, installed_servers
from sophia_host.fork_client import ForkServer
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect, structured

from .conftest import START_S, child_entry, ready, running_host, settle

pytestmark = pytest.mark.anyio

ALICE = Principal("alice", Role.DEVELOPER, kind="token")
PROCESS_ONLY = {"PATH": "/usr/bin", "HOME": "/root", "PYTHONPATH": "/x"}


async def _started(tmp_path: Path, fork_server: bool) -> tuple[dict[str, object], bool, int]:
    report = tmp_path / "report.json"  # one path for both runs: it is in their argv
    async with running_host([child_entry("alpha", "--report-start", str(report))], standby=False,
                            fork_server=fork_server) as host:
        alpha = host.children[0]
        assert alpha.process is not None
        async with connect(host, principal=ALICE) as client:
            echoed = structured(await client.call("alpha_echo", {"text": "x"}))
        assert echoed["pid"] == alpha.process.pid == alpha.pid
        return json.loads(report.read_text()), bool(alpha.status()["forked"]), alpha.process.pid


async def test_a_forked_child_starts_as_a_spawned_one_would(tmp_path: Path) -> None:
    forked, was_forked, pid = await _started(tmp_path, True)
    spawned, was_spawned_forked, _ = await _started(tmp_path, False)
    assert was_forked and not was_spawned_forked
    # Same environment, argv, sys.path[0], cwd, __main__, flags, signal dispositions and stdio kinds;
    # its own session; one thread; no descriptor beyond stdio (none of the fork server's, none of
    # another child's) but what the interpreter itself holds in both.
    for key in ("environ", "argv", "path0", "cwd", "main_file", "flags", "signals", "stdio", "threads", "fds"):
        assert forked[key] == spawned[key], key
    assert forked["leads_session"] is True
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


async def test_installed_servers_are_forked_and_answer() -> None:
    memory = next(s for s in installed_servers() if s.name == "memory")
    async with running_host([memory], standby=False) as host, connect(host, principal=ALICE) as client:
        child = host.children[0]
        assert child.status()["forked"] is True and host._status()["fork_server_pid"]
        assert child.process is not None and _parent_of(child.process.pid) == host.fork_server.pid  # type: ignore[union-attr]
        assert not (await client.call("memory_stats", {})).is_error


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


async def test_the_fork_server_dying_takes_its_children_and_the_host_spawns_them() -> None:
    async with running_host([child_entry("alpha"), child_entry("beta")], standby=False) as host:
        alpha, beta = host.children
        assert alpha.status()["forked"] and beta.status()["forked"]
        fork_server = host.fork_server
        assert fork_server is not None and fork_server.pid is not None
        first = alpha.pid
        os.kill(fork_server.pid, signal.SIGKILL)
        await settle(host, lambda: alpha.pid not in (None, first) and ready(alpha) and beta.restarts >= 1
                     and ready(beta))
        assert alpha.status()["forked"] is False and beta.status()["forked"] is False
        assert not fork_server.usable and host._status()["fork_server_pid"] is None
        async with connect(host, principal=ALICE) as client:
            assert structured(await client.call("alpha_echo", {"text": "back"}))["text"] == "back"


async def test_a_fork_server_dead_before_the_start_means_plain_spawns(tmp_path: Path) -> None:
    fork_server = ForkServer(tmp_path / "fork-server.log")
    fork_server.start()
    assert fork_server.process is not None
    fork_server.process.kill()
    fork_server.process.wait()
    from sophia_host.server import HostServer

    from .conftest import host_settings

    host = HostServer(host_settings(standby=False), [child_entry("alpha")], fork_server=fork_server)
    async with host.running():
        with anyio.fail_after(START_S):
            await host.wait_ready()
        alpha = host.children[0]
        assert ready(alpha) and alpha.status()["forked"] is False


async def test_a_request_the_fork_server_refuses_falls_back_to_a_spawn(tmp_path: Path) -> None:
    fork_server = ForkServer(tmp_path / "fork-server.log")
    async with fork_server.serving():
        control = fork_server._control
        assert control is not None
        # A request it cannot read is answered with an error, not a crash: the next one still forks.
        socket.send_fds(control, [b'{"id": 999, "run": ["nonsense", "x"]}'], [0, 1, 2])
        entry = child_entry("alpha")
        env = child_environment("alpha", entry.command, {})
        read_end, write_end = os.pipe()
        try:
            forked = await fork_server.fork("alpha", entry.command, env, write_end, None)
        finally:
            os.close(read_end)
            os.close(write_end)
        assert forked is not None
        forked.kill()
        with anyio.fail_after(START_S):
            assert await forked.wait() == -signal.SIGKILL
        await forked.aclose()
    assert "Traceback" not in (tmp_path / "fork-server.log").read_text()


# -- which commands are forked (no process needed) ---------------------------------------------


def _server(environ: dict[str, str] | None = None) -> ForkServer:
    return ForkServer(environ=environ if environ is not None else PROCESS_ONLY)


def test_what_a_plain_start_would_run_is_planned_the_same_way(tmp_path: Path) -> None:
    server = _server()
    env = {**PROCESS_ONLY, "SOPHIA_HOME": "/h", "SOPHIA_DOCKER_HOST": "unix:///x", "DOCKER_HOST": "tcp://d"}
    script = next(s for s in installed_servers() if s.name == "docker").command
    launch = server.plan("docker", script, env, tmp_path)
    assert launch is not None and launch.kind == "entry_point" and launch.target == "sophia_docker.__main__:main"
    assert launch.argv == script and launch.path0 == os.path.dirname(os.path.realpath(script[0]))
    assert launch.env == env and launch.cwd == str(tmp_path)
    module = server.plan("x", [sys.executable, "-m", "pkg.mod", "--flag"], PROCESS_ONLY, tmp_path)
    assert module is not None and (module.kind, module.target, module.argv[1:]) == ("module", "pkg.mod", ["--flag"])
    assert module.path0 == os.path.realpath(tmp_path)
    path = server.plan("x", [sys.executable, "child.py", "a"], PROCESS_ONLY, tmp_path)
    assert path is not None and (path.kind, path.target, path.argv) == ("path", "child.py", ["child.py", "a"])
    assert path.path0 == str(tmp_path.resolve())


@pytest.mark.parametrize("command", [
    ["/bin/sh", "-c", "exec sophia-memory"],  # not Python
    [sys.executable, "-u", "child.py"],  # interpreter flags
    [sys.executable],  # an interactive interpreter
    ["python3", "-m", "x"],  # another (or an unresolved) interpreter
    ["/nonexistent/sophia-ghost"],  # cannot start at all: the spawn says why
    [str(Path(sys.executable).with_name("ruff"))],  # beside the interpreter, but not a Python script
], ids=["shell", "flags", "interactive", "other-python", "missing", "binary"])
def test_what_it_cannot_run_as_a_plain_start_is_spawned(command: list[str]) -> None:
    assert _server().plan("x", command, PROCESS_ONLY, None) is None


@pytest.mark.parametrize("extra", [
    {"PYTHONPATH": "/elsewhere"},  # read by Python at start
    {"LD_PRELOAD": "/lib/x.so"},  # read by the loader at start
    {"ALPHA_FROM_TOML": "1"},  # an env table's variable nobody vouches for
], ids=["pythonpath", "loader", "unknown"])
def test_an_environment_python_reads_at_start_differently_is_spawned(extra: dict[str, str]) -> None:
    command = [sys.executable, "child.py"]
    assert _server().plan("x", command, {**PROCESS_ONLY, **extra}, None) is None
    missing = {k: v for k, v in PROCESS_ONLY.items() if k != "HOME"}
    assert _server().plan("x", command, missing, None) is None
    # Settings and what a server's client library reads when it connects may differ freely.
    late = {**PROCESS_ONLY, "SOPHIA_X_TOKEN": "t", "SOPHIA_STDIO_ROLE": "viewer"}
    assert _server().plan("x", command, late, None) is not None
    docker = {**PROCESS_ONLY, "DOCKER_HOST": "tcp://d", "HTTPS_PROXY": "http://p"}
    assert _server().plan("docker", command, docker, None) is not None
    assert _server().plan("memory", command, docker, None) is None


def test_a_remote_server_is_never_forked() -> None:
    remote = ServerEntry(name="far", url="http://127.0.0.1:1/mcp")
    assert _server().plan("far", remote.command, PROCESS_ONLY, None) is None
