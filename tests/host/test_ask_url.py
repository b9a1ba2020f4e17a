"""`sophia ask --url`: the agent as an MCP client of a running `sophia up` over streamable HTTP, acting as the
user of its token (real processes; the offline router, so no model is needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from sophia_host.__main__ import app
from sophia_shared.audit import AuditLog
from sophia_shared.auth import Role, TokenStore
from typer.testing import CliRunner

from .conftest import START_S
from .test_cli import SOPHIA, _wait_http, http_host, write_config

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def _ask(home: Path, *args: str, token: str | None = None) -> tuple[int, str, str]:
    env = {**os.environ, "SOPHIA_HOME": str(home / "asker"), "SOPHIA_ROUTER_SEMANTIC": "false"}
    env.pop("SOPHIA_TOKEN", None)
    if token is not None:
        env["SOPHIA_TOKEN"] = token
    with anyio.fail_after(START_S):
        done = await anyio.run_process([SOPHIA, "ask", "--offline", *args], env=env, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_ask_over_a_url_acts_as_the_tokens_user(tmp_path: Path, sophia_home: Path, free_port: int) -> None:
    config = write_config(tmp_path, "alpha")
    _record, token = TokenStore().create("dana", Role.DEVELOPER)
    url = f"http://127.0.0.1:{free_port}/mcp"
    async with http_host(config, sophia_home, free_port):
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=START_S) as http, \
                Client(streamable_http_client(url, http_client=http)) as client:
            await _wait_http(client, "alpha_echo")  # the child starts after the host binds its port
        code, out, err = await _ask(sophia_home, "--url", url, "--json", 'Echo the text "over the url"', token=token)
        refused = await _ask(sophia_home, "--url", url, "Echo the text hi")
    assert code == 0, err
    answer = json.loads(json.loads(out)["answer"])
    assert (answer["text"], answer["principal"], answer["role"]) == ("over the url", "dana", "developer")
    # The endpoint's own request path recorded the call, as the token's user.
    echoed = [r for r in AuditLog().records() if r["tool"] == "alpha_echo" and r["server"] == "sophia"]
    assert [(r["principal"], r["outcome"]) for r in echoed][-1] == ("dana", "ok")
    assert refused[0] == 2 and "401" in refused[2] and "Traceback" not in refused[2], refused


def test_bad_target_options_are_one_line_and_exit_2(sophia_home: Path) -> None:
    runner = CliRunner()
    both = runner.invoke(app, ["ask", "--url", "http://127.0.0.1:9/mcp", "--servers", "memory", "hello"])
    stray = runner.invoke(app, ["ask", "--token-file", "/nonexistent", "hello"])
    secret = runner.invoke(app, ["ask", "--offline", "--url", "http://127.0.0.1:9/mcp?token=abc", "hello"])
    for done in (both, stray, secret):
        assert done.exit_code == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert done.exception is None or isinstance(done.exception, SystemExit), done.exception
    assert "credentials" in secret.stderr
