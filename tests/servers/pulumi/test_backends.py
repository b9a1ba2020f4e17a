"""The backend the user already has: PULUMI_BACKEND_URL and their `pulumi login` (credentials.json
`current`), read from a file backend laid out as the CLI does; the labelled demo only without either.

A Pulumi Cloud login cannot be exercised here (no CLI, no network): its reads go through the CLI
(the Automation API), and without a CLI they answer `unavailable` naming the backend.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import SecretStr
from servers.pulumi.environments import Backend
from servers.pulumi.state_fixtures import PASSPHRASE
from sophia_pulumi.settings import PulumiSettings
from sophia_pulumi.tools import build_server
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect, error_code, structured

pytestmark = pytest.mark.anyio

VIEWER = Principal("vera", Role.VIEWER, kind="test")


def _login(pulumi_home: Path, current: str) -> Path:
    """credentials.json as `pulumi login <url>` writes it."""
    pulumi_home.mkdir(parents=True, exist_ok=True)
    credentials = pulumi_home / "credentials.json"
    tokens = {current: "pul-0000000000000000000000000000000000000000"} if current.startswith("https") else {}
    credentials.write_text(json.dumps({"current": current, "accessTokens": tokens, "accounts": {}}, indent=4))
    return credentials


def _settings(tmp_path: Path) -> PulumiSettings:
    """No backend setting: the server finds the backend itself."""
    return PulumiSettings(cli=tmp_path / "absent" / "bin" / "pulumi", projects_dir=tmp_path / "projects",
                          passphrase=SecretStr(PASSPHRASE))


async def _call(settings: PulumiSettings, tool: str, args: dict[str, Any]) -> Any:
    with anyio.fail_after(30):
        async with connect(build_server(settings), principal=VIEWER) as client:
            return await client.call(tool, args)


async def test_the_current_pulumi_login_is_read(read_backend: Backend, tmp_path: Path) -> None:
    credentials = _login(Path(os.environ["PULUMI_HOME"]), read_backend.url)
    body = structured(await _call(_settings(tmp_path), "pulumi_list_stacks", {}))
    assert body["demo"] is False and body["source"] == "state"
    assert body["backend"] == f"{read_backend.url} (current Pulumi login, {credentials})"
    assert ("webapp", "prod") in {(s["project"], s["name"]) for s in body["stacks"]}
    webapp_dev = {"project": "webapp", "stack": "dev"}
    outputs = structured(await _call(_settings(tmp_path), "pulumi_stack_outputs", webapp_dev))
    assert outputs["demo"] is False and "current Pulumi login" in outputs["backend"]


async def test_pulumi_backend_url_wins_over_the_login(
    read_backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _login(Path(os.environ["PULUMI_HOME"]), (tmp_path / "elsewhere").as_uri())
    monkeypatch.setenv("PULUMI_BACKEND_URL", read_backend.url)
    body = structured(await _call(_settings(tmp_path), "pulumi_list_stacks", {}))
    assert body["backend"] == f"{read_backend.url} (PULUMI_BACKEND_URL)" and body["stacks"]


async def test_without_a_backend_or_login_the_demo_stack_is_labelled(tmp_path: Path) -> None:
    body = structured(await _call(_settings(tmp_path), "pulumi_list_stacks", {}))
    assert body["demo"] is True and body["backend"].startswith("file://")
    assert "demo: no Pulumi backend" in body["backend"]
    assert [(s["project"], s["name"]) for s in body["stacks"]] == [("demo", "dev")]
    demo_dev = {"project": "demo", "stack": "dev"}
    resources = structured(await _call(_settings(tmp_path), "pulumi_list_resources", demo_dev))
    assert resources["demo"] is True and resources["total"] >= 2


async def test_a_cloud_login_reads_through_the_cli_and_says_so_without_one(tmp_path: Path) -> None:
    _login(Path(os.environ["PULUMI_HOME"]), "https://api.pulumi.com")
    result = await _call(_settings(tmp_path), "pulumi_list_stacks", {"project": "webapp"})
    assert error_code(result) == "unavailable"
    text = str(result.content)
    assert "https://api.pulumi.com (current Pulumi login" in text and "Pulumi CLI" in text
