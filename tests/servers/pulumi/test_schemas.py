"""Every tool's annotations, roles and parameter texts. The schemas themselves are snapshotted with
every other server's, one file per tool, by tests/test_tool_contract.py (`make snapshots`)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from sophia_pulumi.settings import PulumiSettings
from sophia_pulumi.tools import build_server
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect

pytestmark = pytest.mark.anyio



async def listed_tools() -> list[Any]:
    server = build_server(PulumiSettings())
    with anyio.fail_after(10):
        async with connect(server, principal=Principal("ada", Role.ADMIN, kind="test")) as client:
            return await client.list_tools()


async def test_every_tool_states_role_and_all_four_annotations() -> None:
    tools = await listed_tools()
    assert len(tools) == 10
    for tool in tools:
        hints = tool.annotations
        assert hints is not None, tool.name
        for hint in (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint, hints.open_world_hint):
            assert isinstance(hint, bool), tool.name
        assert (tool.meta or {})["sophia"]["role"] in {"viewer", "devops", "admin"}, tool.name
        assert tool.output_schema is not None, tool.name
        properties = tool.input_schema["properties"]
        for name, schema in properties.items():
            assert schema.get("description"), f"{tool.name}.{name} has no description"


async def test_change_tools_are_confirmed_and_destroy_is_admin_only() -> None:
    tools = {t.name: t for t in await listed_tools()}
    for name in ("pulumi_up", "pulumi_refresh", "pulumi_destroy"):
        assert "confirmation_token" in tools[name].input_schema["properties"], name
        assert tools[name].meta["sophia"]["confirm"] is True  # type: ignore[index]
    assert tools["pulumi_destroy"].meta["sophia"]["role"] == "admin"  # type: ignore[index]
    assert "confirmation_token" not in tools["pulumi_preview"].input_schema["properties"]
