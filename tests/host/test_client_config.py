"""client_config.py and connect.py end to end: each config `sophia config` prints is used the way its client
uses it. Stdio entries are spawned as a client spawns them (command + args + only the entry's env over the
SDK's default environment) and list tools with the real SDK client; HTTP entries (URL + headers, with the
client's own token placeholder filled in as the client fills it) connect with the real SDK client to a real
`sophia up --transport http`; the `sophia connect` bridge, spawned from the Claude Desktop entry, reaches the
same host. The children are tests/host/child_server.py (see test_cli.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ToolListChangedNotification
from sophia_host.client_config import TOKEN_ENV, VSCODE_TOKEN_INPUT, ClientKind, client_config, suite_settings
from sophia_shared.auth import Role, TokenStore
from sophia_shared.testing import error_of

from .conftest import START_S
from .test_cli import SOPHIA, Changes, _wait_http, http_host, wait_for_tools, write_config

pytestmark = [pytest.mark.anyio]


def sophia_config(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run([SOPHIA, "config", *args], env=env, capture_output=True, text=True, timeout=120,
                          check=True)
    config: dict[str, Any] = json.loads(done.stdout)
    return config


def entry_of(config: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = (config.get("mcpServers") or config["servers"])["sophia"]
    return entry


def assert_accepted(kind: ClientKind, config: dict[str, Any]) -> None:
    """The shapes each client reads (ENVIRONMENT.md, 'Real clients to test against')."""
    if kind is ClientKind.vscode:
        assert set(config) <= {"servers", "inputs"}
        for entry in config["servers"].values():
            assert entry["type"] in ("stdio", "http")
            assert ("command" in entry) == (entry["type"] == "stdio")
            assert ("url" in entry) == (entry["type"] == "http")
        return
    assert set(config) == {"mcpServers"}
    for entry in config["mcpServers"].values():
        if kind is ClientKind.claude:  # stdio entries only: a url entry is "not valid" there
            assert set(entry) <= {"command", "args", "env"} and "command" in entry
        else:
            assert set(entry) <= {"command", "args", "env"} or set(entry) <= {"url", "headers"}


@pytest.mark.parametrize("kind", list(ClientKind))
@pytest.mark.parametrize("url", [None, "http://127.0.0.1:8760/mcp"])
@pytest.mark.parametrize("bridge", [False, True])
def test_every_config_is_one_its_client_accepts(kind: ClientKind, url: str | None, bridge: bool,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "sph_secret-value-that-must-not-be-printed")
    config = client_config(kind, url=url, settings=suite_settings(), bridge=bridge)
    assert_accepted(kind, config)
    assert "sph_secret-value" not in json.dumps(config)
    entry = entry_of(config)
    if url is not None and (bridge or kind is ClientKind.claude):
        assert entry["args"][:2] == ["connect", url]
    elif url is not None:
        assert entry["headers"]["Authorization"].startswith("Bearer ${")


def test_settings_travel_absolute_and_secrets_stay_behind(tmp_path: Path) -> None:
    (tmp_path / "sophia.toml").write_text("[host]\n")
    environ = {
        "SOPHIA_HOME": "state", "SOPHIA_STDIO_ROLE": "admin", "SOPHIA_MEMORY_BACKEND": "sqlite",
        "SOPHIA_AUDIT_KEY": "k" * 40, "SOPHIA_GONG_ACCESS_KEY_SECRET": "s3cret", "SOPHIA_TOKEN": "sph_x",
        "SOPHIA_DATABASE_URL": "postgresql://sophia:hunter2@db/sophia", "SOPHIA_UP_TRANSPORT": "http",
        "PATH": "/bin",
    }
    settings = suite_settings(environ, cwd=tmp_path)
    assert settings.env == {
        "SOPHIA_HOME": str(tmp_path / "state"), "SOPHIA_CONFIG": str(tmp_path / "sophia.toml"),
        "SOPHIA_STDIO_ROLE": "admin", "SOPHIA_MEMORY_BACKEND": "sqlite",
    }
    assert settings.left_out == ["SOPHIA_AUDIT_KEY", "SOPHIA_DATABASE_URL", "SOPHIA_GONG_ACCESS_KEY_SECRET"]


@pytest.mark.e2e
@pytest.mark.parametrize("kind", [ClientKind.claude, ClientKind.vscode])  # Cursor's stdio entry is Claude's
async def test_the_stdio_config_runs_as_the_client_spawns_it(kind: ClientKind, tmp_path: Path) -> None:
    home = tmp_path / "home"
    config_file = write_config(tmp_path, "alpha")
    ours = {"SOPHIA_HOME": str(home), "SOPHIA_CONFIG": str(config_file), "SOPHIA_STDIO_ROLE": "admin"}
    shell = {**{k: v for k, v in os.environ.items() if not k.startswith("SOPHIA_")}, **ours}
    config = sophia_config(shell, "--client", kind.value)
    assert_accepted(kind, config)
    entry = entry_of(config)
    assert Path(entry["command"]).is_absolute()
    assert entry["env"] == ours  # every SOPHIA_* setting of the shell, and only those
    async with stdio_client(entry) as client:
        result = await client.call_tool("alpha_echo", {"text": "from the config"})
    assert result.structured_content is not None
    assert result.structured_content["role"] == "admin"  # the settings in env reached the host and its child


@asynccontextmanager
async def stdio_client(entry: dict[str, Any]) -> AsyncIterator[Client]:
    """What a desktop client does with a stdio entry: spawn command + args with the entry's env."""
    changes = Changes()

    async def on_message(message: Any) -> None:
        if isinstance(message, ToolListChangedNotification):
            changes.bump()

    params = StdioServerParameters(command=entry["command"], args=entry["args"], env=entry.get("env"))
    with anyio.fail_after(START_S):
        async with Client(params, message_handler=on_message) as client:
            await wait_for_tools(client, {"alpha_echo"}, changes)
            yield client


@pytest.mark.e2e
async def test_http_configs_and_the_bridge_reach_a_running_host(tmp_path: Path, sophia_home: Path,
                                                                free_port: int) -> None:
    config_file = write_config(tmp_path, "alpha")
    _record, token = TokenStore().create("laptop", Role.DEVELOPER)
    token_file = tmp_path / "laptop.token"
    token_file.write_text(token + "\n")
    url = f"http://127.0.0.1:{free_port}/mcp"
    shell = {**os.environ, "SOPHIA_HOME": str(sophia_home), "SOPHIA_CONFIG": str(config_file)}
    async with http_host(config_file, sophia_home, free_port):
        for kind, placeholder in ((ClientKind.cursor, f"${{env:{TOKEN_ENV}}}"),
                                  (ClientKind.vscode, f"${{input:{VSCODE_TOKEN_INPUT}}}")):
            config = sophia_config(shell, "--client", kind.value, "--url", url)
            assert_accepted(kind, config)
            entry = entry_of(config)
            # What the client substitutes: Cursor from its environment, VS Code from its prompt.
            headers = {k: v.replace(placeholder, token) for k, v in entry["headers"].items()}
            async with httpx2.AsyncClient(headers=headers, timeout=START_S) as http, \
                    Client(streamable_http_client(entry["url"], http_client=http)) as client:
                with anyio.fail_after(START_S):
                    await _wait_http(client, "alpha_echo")
                    result = await client.call_tool("alpha_echo", {"text": kind.value})
            assert result.structured_content is not None and result.structured_content["principal"] == "laptop"

        bridge = entry_of(sophia_config(shell, "--client", "claude", "--url", url, "--token-file", str(token_file)))
        assert token not in json.dumps(bridge)
        # The host's child is up (the clients above saw it), so the bridge's first listing has its tools.
        steps: list[str | None] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            steps.append(message)

        async with stdio_client(bridge) as client:
            result = await client.call_tool("alpha_echo", {"text": "bridged"})
            missing = await client.call_tool("alpha_echo", {"text": "missing"})
            slow = await client.call_tool("alpha_slow", {"steps": 3}, progress_callback=on_progress)
            first = await client.call_tool("alpha_delete", {"item": "x"})
            confirmation = error_of(first)["data"]["confirmation_token"]  # the suite's tests run in token mode
            done = await client.call_tool("alpha_delete", {"item": "x", "confirmation_token": confirmation})
        assert result.structured_content == {**result.structured_content, "text": "bridged", "principal": "laptop"}
        assert error_of(missing)["code"] == "not_found"  # a tool error crosses the bridge with its code
        # Progress crosses the bridge in order. This test's own SDK client runs each progress callback as a
        # task, so its last step may land after call_tool returns: a prefix here; tests/host/test_fastpath.py
        # checks on the wire that every step comes before the answer.
        assert not slow.is_error and steps and steps == ["step 1", "step 2", "step 3"][:len(steps)]
        assert error_of(first)["code"] == "confirmation_required" and not done.is_error

        await ctrl_c_ends_the_bridge(url, token_file)
        refused = await run_bridge(url, env={TOKEN_ENV: "sph_wrong-token-value"})
        assert refused.returncode == 2
        message = refused.stderr.decode()
        assert "401" in message and "Traceback" not in message and "sph_wrong" not in message


async def run_bridge(url: str, env: dict[str, str]) -> Any:
    with anyio.fail_after(START_S):
        return await anyio.run_process([SOPHIA, "connect", url], env={**os.environ, **env}, check=False,
                                       stdin=subprocess.DEVNULL)


@pytest.mark.e2e
async def test_the_bridge_refuses_credentials_in_the_url_and_an_unreachable_host(free_port: int) -> None:
    in_url = await run_bridge(f"http://127.0.0.1:{free_port}/mcp?token=sph_abc", env={})
    assert in_url.returncode == 2 and b"carries credentials" in in_url.stderr
    down = await run_bridge(f"http://127.0.0.1:{free_port}/mcp", env={})
    assert down.returncode == 2 and b"cannot reach" in down.stderr and b"Traceback" not in down.stderr


async def ctrl_c_ends_the_bridge(url: str, token_file: Path) -> None:
    """Ctrl-C in a serving bridge: exit 130, no traceback (its stdin reader is a thread nothing can cancel)."""
    process = await anyio.open_process([SOPHIA, "connect", url, "--token-file", str(token_file)],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    async with process:
        assert process.stdin is not None and process.stdout is not None and process.stderr is not None
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
        await process.stdin.send(json.dumps(init).encode() + b"\n")
        with anyio.fail_after(START_S):
            assert b'"result"' in await process.stdout.receive()
            process.send_signal(signal.SIGINT)
            code = await process.wait()
            err = b"".join([chunk async for chunk in process.stderr])
    assert code == 130 and b"Traceback" not in err, err
