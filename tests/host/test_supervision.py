"""Supervision (children.py, child_env.py): a child killed under load comes back on its standby with
every call answered, a crash loop is reported with the child's own last line and backed off, health
comes from each server's own check, and a child's environment holds only its own settings."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import anyio
import pytest
from sophia_host.children import State
from sophia_host.config import ServerEntry, installed_servers
from sophia_host.status import render
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect, error_code, structured

from .conftest import START_S, child_entry, ready, running_host, settle

pytestmark = pytest.mark.anyio

ALICE = Principal("alice", Role.DEVELOPER, kind="token")


async def test_a_child_killed_under_load_switches_to_its_standby_and_every_call_is_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_host([child_entry("alpha")], standby_after_s=0.0) as host:
        alpha = host.children[0]
        with anyio.fail_after(START_S):
            await alpha.wait_standby()
        assert alpha.process is not None
        killed, spare = alpha.process.pid, alpha.standby_pid
        assert spare is not None and spare != killed
        outcomes: list[tuple[str | None, int | None]] = []
        after_kill = anyio.Event()
        back = anyio.Event()

        async def caller(client: object, worker: int) -> None:
            i = 0
            while not back.is_set():
                result = await client.call("alpha_echo", {"text": f"{worker}-{i}"})  # type: ignore[attr-defined]
                code = error_code(result)
                pid = None if code else structured(result)["pid"]
                outcomes.append((code, pid))
                if after_kill.is_set() and pid == spare:
                    back.set()
                i += 1

        async with connect(host, principal=ALICE) as client:
            with anyio.fail_after(START_S):
                async with anyio.create_task_group() as tg:
                    for worker in range(4):
                        tg.start_soon(caller, client, worker)
                    while len(outcomes) < 20:
                        await anyio.sleep(0.01)
                    os.kill(killed, signal.SIGKILL)
                    after_kill.set()
        # Every call got an answer, and the only failure is a clean `unavailable`.
        assert {code for code, _ in outcomes} <= {None, "unavailable"}
        assert all(pid in (killed, spare) for code, pid in outcomes if code is None)
        # The standby took over: the next process is the one that was already waiting.
        assert alpha.process.pid == spare
        assert alpha.restarts == 1 and alpha.crashes == 1 and not alpha.crash_looping
        assert alpha.state is State.ready
    # The warning line says what happened to it.
    assert "server alpha: the process was killed by signal 9; restarting" in caplog.text


async def test_a_crash_loop_is_reported_with_the_childs_own_last_line() -> None:
    # The child refuses a bad setting at start: one line on its stderr, exit 2, every time.
    bad = ServerEntry(name="snowflake", command=installed_command("snowflake"),
                      env={"SOPHIA_SNOWFLAKE_PORT": "not-a-port"})
    async with running_host([bad, child_entry("alpha")], wait=False, backoff_initial_s=0.2,
                            backoff_max_s=0.4) as host:
        snowflake, alpha = host.children
        await settle(host, lambda: snowflake.crashes >= 3 and ready(alpha))
        assert snowflake.crash_looping
        health, reason = snowflake.health_state()
        assert health == "crash-looping"
        assert reason is not None and "exited (code 2)" in reason and "SOPHIA_SNOWFLAKE_PORT" in reason
        status = {s["name"]: s for s in host.children_status()}
        assert status["snowflake"]["health"] == "crash-looping"
        assert status["snowflake"]["log"].endswith("snowflake.log")
        table = render({"pid": 1, "started": 0, "tools": 0, "listed": 0, "servers": list(status.values()),
                        "logs": str(host.log_dir)})
        assert "crash-looping" in table and "SOPHIA_SNOWFLAKE_PORT" in table and "sophia logs" in table
        # The rest of the host serves on.
        async with connect(host, principal=ALICE) as client:
            assert not (await client.call("alpha_echo", {"text": "x"})).is_error


def installed_command(name: str) -> list[str]:
    return next(s.command for s in installed_servers() if s.name == name)


async def test_health_comes_from_each_servers_own_check() -> None:
    servers = [child_entry("alpha"), child_entry("beta", "--not-configured")]
    by_name = {s.name: s for s in installed_servers()}
    docker = by_name["docker"].model_copy(update={"env": {"SOPHIA_DOCKER_HOST": "unix:///nonexistent/docker.sock"}})
    gong = by_name["gong"]
    async with running_host([*servers, docker, gong], standby=False) as host:
        children = {c.name: c for c in host.children}
        await settle(host, lambda: all(c.health is not None for c in host.children))
        assert children["alpha"].health_state() == ("ready", "alpha answers")
        assert children["beta"].health_state() == ("not-configured", "beta is not configured: set SOPHIA_BETA_TOKEN")
        state, reason = children["docker"].health_state()
        assert state == "unavailable" and reason is not None and "/nonexistent/docker.sock" in reason
        state, reason = children["gong"].health_state()
        assert state == "not-configured" and reason is not None and "SOPHIA_GONG_ACCESS_KEY" in reason
        status = {s["name"]: s for s in host.children_status()}
        assert status["docker"]["state"] == "ready" and status["docker"]["health"] == "unavailable"


@pytest.mark.parametrize("fork_server", [True, False], ids=["forked", "spawned"])
async def test_a_child_sees_only_its_own_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fork_server: bool
) -> None:
    monkeypatch.setenv("SOPHIA_BETA_API_KEY", "beta-secret-value")
    monkeypatch.setenv("SOPHIA_GONG_ACCESS_KEY_SECRET", "gong-secret-value")
    monkeypatch.setenv("UNRELATED_TOKEN", "unrelated-secret-value")
    monkeypatch.setenv("SOPHIA_STDIO_ROLE", "viewer")
    # alpha's own env table sets a variable Python could read at start: never forked.
    alpha = child_entry("alpha", "--report-start", str(tmp_path / "alpha.json"), env={"ALPHA_FROM_TOML": "1"})
    beta = child_entry("beta", "--report-start", str(tmp_path / "beta.json"))
    async with running_host([alpha, beta], standby=False, fork_server=fork_server) as host:
        assert [c.status()["forked"] for c in host.children] == [False, fork_server]
        # What /proc shows of each process holds no secret but its own (a forked one's: none at all).
        for child in host.children:
            assert child.process is not None
            shown = environ_of(child.process.pid)
            assert not any("secret-value" in v for k, v in shown.items() if k != "SOPHIA_BETA_API_KEY")
    alpha_env, beta_env = (json.loads((tmp_path / f"{n}.json").read_text())["environ"] for n in ("alpha", "beta"))
    assert "SOPHIA_BETA_API_KEY" not in alpha_env and beta_env["SOPHIA_BETA_API_KEY"] == "beta-secret-value"
    for env in (alpha_env, beta_env):
        assert "SOPHIA_GONG_ACCESS_KEY_SECRET" not in env and "UNRELATED_TOKEN" not in env
        assert not any("secret-value" in v for k, v in env.items() if k != "SOPHIA_BETA_API_KEY")
        # Suite-wide settings and what any process needs still reach every child.
        assert env["SOPHIA_STDIO_ROLE"] == "viewer" and env["PATH"] == os.environ["PATH"]
        assert env["SOPHIA_TRUST_HOST_PRINCIPAL"] == "1" and env["SOPHIA_HOME"]
    assert alpha_env["ALPHA_FROM_TOML"] == "1" and "ALPHA_FROM_TOML" not in beta_env


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode().split("=", 1) for item in raw.split(b"\0") if b"=" in item)
