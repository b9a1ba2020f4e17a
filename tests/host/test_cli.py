"""End to end (cli.py): `sophia up` as a real process, over stdio and streamable HTTP with the real SDK client,
and the MCP Inspector CLI (npm) listing and calling tools through it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from anyio.abc import Process
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ElicitResult, ToolListChangedNotification
from sophia_shared.audit import AuditLog
from sophia_shared.auth import Principal, Role, TokenStore
from sophia_shared.testing import error_of

from .conftest import CHILD, START_S

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

SOPHIA = str(Path(sys.executable).with_name("sophia"))


def write_config(directory: Path, *names: str) -> Path:
    lines = ["[host]", "semantic_search = false", "backoff_initial_s = 0.1", "installed_servers = false", ""]
    for name in names:
        lines += [f"[servers.{name}]", f"command = {json.dumps([sys.executable, str(CHILD), name])}", ""]
    path = directory / "sophia.toml"
    path.write_text("\n".join(lines))
    return path


def host_env(config: Path, home: Path) -> dict[str, str]:
    return {**os.environ, "SOPHIA_CONFIG": str(config), "SOPHIA_HOME": str(home)}


class Changes:
    """tools/list_changed as seen by a client: an event per change."""

    def __init__(self) -> None:
        self.event = anyio.Event()

    def bump(self) -> None:
        self.event.set()
        self.event = anyio.Event()


async def wait_for_tools(client: Client, wanted: set[str], changes: Changes) -> set[str]:
    """List until every wanted tool shows up, waking on tools/list_changed (children start after the host)."""
    with anyio.fail_after(START_S):
        while True:
            waiter = changes.event  # taken before listing, so a change during the listing is not missed
            names = {t.name for t in (await client.list_tools(cache_mode="bypass")).tools}
            if wanted <= names:
                return names
            await waiter.wait()


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_stdio_end_to_end(tmp_path: Path, sophia_home: Path, mode: str) -> None:
    config = write_config(tmp_path, "alpha", "beta")
    changes = Changes()

    async def on_message(message: Any) -> None:
        if isinstance(message, ToolListChangedNotification):
            changes.bump()

    params = StdioServerParameters(command=SOPHIA, args=["up", "--transport", "stdio"],
                                   env=host_env(config, sophia_home))
    with anyio.fail_after(START_S):
        async with Client(params, mode=mode, message_handler=on_message) as client:
            if mode == "auto":
                # 2026-era clients hear tools/list_changed on a subscriptions/listen stream.
                async with client.listen(tools_list_changed=True) as subscription, \
                        anyio.create_task_group() as tg:

                    async def follow() -> None:
                        async for _ in subscription:
                            changes.bump()

                    tg.start_soon(follow)
                    names = await wait_for_tools(client, {"alpha_echo", "beta_echo"}, changes)
                    tg.cancel_scope.cancel()
            else:
                names = await wait_for_tools(client, {"alpha_echo", "beta_echo"}, changes)
            await _check_tools(client, names)
            status = subprocess.run([SOPHIA, "status", "--json"], env=host_env(config, sophia_home),
                                    capture_output=True, text=True, timeout=60, check=True)
            servers = {s["name"]: s for s in json.loads(status.stdout)["servers"]}
            assert set(servers) == {"alpha", "beta"}
            assert all(s["state"] == "ready" and s["pid"] for s in servers.values())
            table = subprocess.run([SOPHIA, "status"], env=host_env(config, sophia_home), capture_output=True,
                                   text=True, timeout=60, check=True).stdout.splitlines()
            rows = {line.split()[0]: line.split() for line in table[2:]}
            assert rows["alpha"][1:3] == ["ready", str(servers["alpha"]["pid"])]
            assert rows["beta"][1] == "ready"
    # The host removed its status when it left: `sophia status` says nothing runs.
    after = subprocess.run([SOPHIA, "status"], env=host_env(config, sophia_home), capture_output=True,
                           text=True, timeout=60)
    assert after.returncode == 1 and "no host is running" in after.stderr


async def _check_tools(client: Client, names: set[str]) -> None:
    assert {"sophia_find_tools", "beta_echo"} <= names
    result = await client.call_tool("beta_echo", {"text": "over stdio"})
    assert not result.is_error
    assert result.structured_content is not None and result.structured_content["text"] == "over stdio"
    missing = await client.call_tool("beta_echo", {"text": "missing"})
    assert missing.is_error
    assert error_of(missing)["code"] == "not_found"


@asynccontextmanager
async def http_host(config: Path, home: Path, port: int, *flags: str) -> AsyncIterator[Process]:
    """`sophia up` over streamable HTTP; yields once it printed that the port is bound."""
    process = await anyio.open_process([SOPHIA, "up", "--port", str(port), *flags], env=host_env(config, home),
                                       stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        assert process.stderr is not None
        seen = b""
        with anyio.fail_after(START_S):
            async for chunk in process.stderr:
                seen += chunk
                if b"sophia: serving on" in seen:
                    break
        assert b"serving on" in seen, seen.decode(errors="replace")
        yield process
    finally:
        if process.returncode is None:  # a test may have stopped it itself
            process.terminate()
        with anyio.fail_after(60):
            await process.wait()


async def test_streamable_http_end_to_end_with_tokens_and_roles(tmp_path: Path, sophia_home: Path,
                                                                free_port: int) -> None:
    config = write_config(tmp_path, "alpha")
    _record, dev_token = TokenStore().create("dana", Role.DEVELOPER)
    _record, viewer_token = TokenStore().create("vic", Role.VIEWER)
    url = f"http://127.0.0.1:{free_port}/mcp"
    async with http_host(config, sophia_home, free_port):
        async with httpx2.AsyncClient() as http:
            refused = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            assert refused.status_code == 401
            assert "www-authenticate" in {k.lower() for k in refused.headers}
        # httpx's 5 s default read timeout would end an idle listen stream while a loaded machine starts the child.
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {dev_token}"}, timeout=START_S) as http, \
                Client(streamable_http_client(url, http_client=http)) as client:
            names = await _wait_http(client, "alpha_echo")
            assert "sophia_find_tools" in names
            result = await client.call_tool("alpha_echo", {"text": "over http"})
            assert result.structured_content is not None
            # The child's view of the caller is the token's principal, forwarded by the host.
            assert (result.structured_content["principal"], result.structured_content["role"]) == ("dana", "developer")
            first = await client.call_tool("alpha_delete", {"item": "x"})
            assert first.is_error
            assert error_of(first)["code"] == "confirmation_required"
            token = error_of(first)["data"]["confirmation_token"]
            done = await client.call_tool("alpha_delete", {"item": "x", "confirmation_token": token})
            assert not done.is_error
        asked: list[str] = []

        async def approve(context: Any, params: Any) -> ElicitResult:
            asked.append(params.message)
            return ElicitResult(action="accept", content={"confirm": True})

        # A client that can show a prompt is asked by the host instead of handed a token.
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {dev_token}"}) as http, \
                Client(streamable_http_client(url, http_client=http), elicitation_callback=approve) as client:
            confirmed = await client.call_tool("alpha_delete", {"item": "y"})
            assert not confirmed.is_error, confirmed
            assert confirmed.structured_content == {"result": "deleted y for dana"}
            assert len(asked) == 1 and "alpha_delete" in asked[0]
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {viewer_token}"}) as http, \
                Client(streamable_http_client(url, http_client=http)) as client:
            denied = await client.call_tool("alpha_delete", {"item": "x"})
            assert denied.is_error
            assert error_of(denied)["code"] == "forbidden"
    who = {(r["server"], r["principal"]) for r in AuditLog().records() if r["tool"] == "alpha_echo"}
    assert who == {("sophia", "dana"), ("alpha", "dana")}


async def _wait_http(client: Client, name: str) -> set[str]:
    # The first tools/list waits for children that are starting, so it usually has them all.
    names = {t.name for t in (await client.list_tools(cache_mode="bypass")).tools}
    if name in names:
        return names
    # Over stateless HTTP there is no standing stream unless listened to; listen, then list.
    changes = Changes()
    async with client.listen(tools_list_changed=True) as subscription, anyio.create_task_group() as tg:

        async def follow() -> None:
            async for _ in subscription:
                changes.bump()

        tg.start_soon(follow)
        names = await wait_for_tools(client, {name}, changes)
        tg.cancel_scope.cancel()
    return names


async def test_inspector_cli_lists_and_calls_tools_through_the_host(inspector: list[str], tmp_path: Path,
                                                                    sophia_home: Path, free_port: int) -> None:
    config = write_config(tmp_path, "alpha")
    url = f"http://127.0.0.1:{free_port}/mcp"
    target = [url, "--transport", "http"]
    async with http_host(config, sophia_home, free_port, "--allow-unauthenticated"):
        async with Client(url) as client:
            await _wait_http(client, "alpha_echo")
        listed = await anyio.run_process([*inspector, *target, "--method", "tools/list"])
        names = {t["name"] for t in json.loads(listed.stdout)["tools"]}
        assert {"sophia_find_tools", "alpha_echo", "alpha_delete"} <= names
        called = await anyio.run_process([*inspector, *target, "--method", "tools/call", "--tool-name", "alpha_echo",
                                          "--tool-arg", "text=inspected"])
        body = json.loads(called.stdout)
        assert body.get("isError") in (None, False)
        assert body["structuredContent"]["text"] == "inspected"


async def test_the_suite_servers_compose_without_collisions() -> None:
    """Every installed sophia-<name> server, on its embedded default, behind one host (no sophia.toml):
    the first tools/list, sent at once, lists every server's tools; unconfigured ones are routed, not listed."""
    from sophia_host.children import State
    from sophia_host.config import installed_servers
    from sophia_shared.testing import connect, error_code

    from .conftest import running_host

    servers = installed_servers()
    assert {"memory", "snowflake", "docker", "pulumi", "gong", "retool"} <= {s.name for s in servers}
    admin = Principal("root", Role.ADMIN, kind="test")
    async with running_host(servers, wait=False) as host, connect(host, principal=admin) as client:
        with anyio.fail_after(START_S):
            names = {t.name for t in await client.list_tools()}
        assert host.fatal is None
        up = {c.name for c in host.children if c.state is State.ready}
        assert {"memory", "retool"} <= up, host.children_status()
        for child in host.children:
            own = {t.name for t in child.tools if (t.meta or {}).get("sophia", {}).get("configured") is not False}
            assert child.tools and own <= names, child.name
        # Unconfigured Gong lists its offline tools only; Retool lists nothing.
        assert {n for n in names if n.startswith("gong_")} == {"gong_search_calls", "gong_sync_status"}
        assert not any(n.startswith("retool_") for n in names)
        # Called anyway, Retool answers not_configured through the host, with its code.
        assert error_code(await client.call("retool_list_apps", {})) == "not_configured"


async def test_a_tool_name_collision_refuses_to_run_naming_both(tmp_path: Path, sophia_home: Path) -> None:
    config = tmp_path / "sophia.toml"
    child = json.dumps([sys.executable, str(CHILD), "alpha"])
    config.write_text(f"[host]\ninstalled_servers = false\n\n[servers.one]\ncommand = {child}\n\n"
                      f"[servers.two]\ncommand = {child}\n")
    # stdin stays open (a client that says nothing): the host leaves because of the collision alone.
    async with await anyio.open_process([SOPHIA, "up", "--transport", "stdio"], env=host_env(config, sophia_home),
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE) as process:
        assert process.stderr is not None
        err = b""
        with anyio.fail_after(START_S):
            async for chunk in process.stderr:
                err += chunk
            code = await process.wait()
    assert code == 2
    message = err.decode()
    assert "refused to run" in message and "server one" in message and "server two" in message
