"""Supervised children (children.py, transport.py) under faults: a child killed with SIGKILL mid-stream,
a child whose process dies mid-call, a child that never answers initialize, a command that cannot
start, a remote server that comes up late. The host keeps each failure to its server."""

from __future__ import annotations

import os
import signal
import sys

import anyio
import pytest
from sophia_host.children import State
from sophia_host.config import ServerEntry
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect, error_code, error_of, structured

from .conftest import CHILD, START_S, child_entry, ready, running_host, settle

pytestmark = pytest.mark.anyio

ALICE = Principal("alice", Role.DEVELOPER, kind="token")


async def test_kill_9_mid_stream_fails_in_flight_calls_cleanly_and_the_child_comes_back() -> None:
    async with running_host([child_entry("alpha"), child_entry("beta")]) as host:
        alpha, beta = host.children
        assert alpha.process is not None
        first_pid = alpha.process.pid
        async with connect(host, principal=ALICE) as client:
            codes: list[str | None] = []
            in_flight: dict[str, str | None] = {}
            five_done = anyio.Event()

            async def stream() -> None:
                for i in range(300):
                    codes.append(error_code(await client.call("alpha_echo", {"text": str(i)})))
                    if len(codes) == 5:
                        five_done.set()

            async def hung() -> None:
                in_flight["code"] = error_code(await client.call("alpha_hang", {}))

            with anyio.fail_after(START_S):
                async with anyio.create_task_group() as tg:
                    # The hung call goes out first, so it is in flight by the time five echoes are back.
                    tg.start_soon(hung)
                    tg.start_soon(stream)
                    await five_done.wait()
                    os.kill(first_pid, signal.SIGKILL)
                    await host.until(lambda: alpha.state is not State.ready)
                    # The rest of the host keeps serving while alpha is down.
                    assert not (await client.call("beta_echo", {"text": "still here"})).is_error

            # The call in flight at the kill ended cleanly with `unavailable`, not a hang or a crash.
            assert in_flight["code"] == "unavailable"
            assert set(codes) <= {None, "unavailable"}
            assert codes[:5] == [None] * 5

            await settle(host, lambda: ready(alpha))
            assert alpha.restarts >= 1
            assert alpha.process is not None and alpha.process.pid != first_pid
            after = structured(await client.call("alpha_echo", {"text": "back"}))
            assert after["text"] == "back" and after["pid"] == alpha.process.pid
            assert beta.restarts == 0


async def test_a_child_dying_mid_call_answers_unavailable_then_restarts() -> None:
    async with running_host([child_entry("alpha")]) as host, connect(host, principal=ALICE) as client:
        alpha = host.children[0]
        crashed = await client.call("alpha_crash", {})
        assert error_code(crashed) == "unavailable"
        assert "restart" in error_of(crashed)["message"]
        await settle(host, lambda: alpha.restarts >= 1 and ready(alpha))
        assert not (await client.call("alpha_echo", {"text": "x"})).is_error
        # While restarting, its tools stay listed and answer `unavailable` (checked on the status).
        assert "alpha_echo" in {t.name for t in await client.list_tools()}


async def test_a_child_that_never_answers_initialize_does_not_hold_up_the_others() -> None:
    servers = [child_entry("stuck", "--hang-init", start_timeout_s=3.0), child_entry("alpha")]
    async with running_host(servers, wait=False) as host:
        stuck, alpha = host.children
        await settle(host, lambda: ready(alpha))
        async with connect(host, principal=ALICE) as client:
            # tools/list answers at once with what is up; the sick server is simply absent.
            with anyio.fail_after(10):
                names = {t.name for t in await client.list_tools()}
            assert "alpha_echo" in names
            assert not any(n.startswith("stuck_") for n in names)
            assert not (await client.call("alpha_echo", {"text": "x"})).is_error
        await settle(host, lambda: stuck.restarts >= 2)
        assert stuck.state in (State.restarting, State.starting)
        assert stuck.last_error is not None and "initialize" in stuck.last_error
        status = {s["name"]: s for s in host.children_status()}
        assert status["alpha"]["state"] == "ready" and status["alpha"]["pid"] == alpha.pid
        assert status["stuck"]["pid"] is None


async def test_a_command_that_cannot_start_is_retried_with_backoff() -> None:
    missing = child_entry("ghost")
    missing.command = ["/nonexistent/sophia-ghost"]
    async with running_host([missing, child_entry("alpha")], wait=False) as host:
        ghost, alpha = host.children
        await settle(host, lambda: ghost.restarts >= 3 and ready(alpha))
        assert ghost.last_error is not None and "sophia-ghost" in ghost.last_error
        async with connect(host, principal=ALICE) as client:
            assert not (await client.call("alpha_echo", {"text": "x"})).is_error


async def test_a_remote_server_over_streamable_http_is_composed_and_reconnected(free_port: int) -> None:
    command = [sys.executable, str(CHILD), "remote", "--http", str(free_port)]
    remote = ServerEntry(name="remote", url=f"http://127.0.0.1:{free_port}/mcp")
    # The host starts before the remote server answers: it keeps trying, with backoff, until it does.
    async with running_host([remote, child_entry("alpha")], wait=False) as host:
        remote_child = host.children[0]
        async with await anyio.open_process(command) as process:
            try:
                await settle(host, lambda: ready(remote_child))
                async with connect(host, principal=ALICE) as client:
                    echoed = structured(await client.call("remote_echo", {"text": "far"}))
                    assert echoed["text"] == "far"
                    # A remote server does not trust the host's principal unless configured to.
                    assert echoed["principal"] != "alice"
            finally:
                process.kill()
