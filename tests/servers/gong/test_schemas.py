"""Every Gong tool's schema, annotations and role, snapshotted so a change is a reviewable diff.

Regenerate after an intended change: SOPHIA_UPDATE_SNAPSHOTS=1 pytest tests/servers/gong/test_schemas.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio
import pytest
from sophia_gong.settings import GongSettings
from sophia_gong.tools import build_server
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect

# list_every_tool: these tests are about the whole catalogue, not about who may see which tool.
pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("list_every_tool")]

SNAPSHOT = Path(__file__).parent / "snapshots" / "tools.json"


async def test_tool_schemas_match_the_snapshot() -> None:
    server = build_server(GongSettings())
    with anyio.fail_after(10):
        async with connect(server, principal=Principal("ada", Role.ADMIN, kind="test")) as client:
            tools = await client.list_tools()
    current = {
        tool.name: {
            "description": tool.description,
            "input": tool.input_schema,
            "output": tool.output_schema,
            "annotations": tool.annotations.model_dump(mode="json", exclude_none=True) if tool.annotations else None,
            "meta": tool.meta,
        }
        for tool in tools
    }
    text = json.dumps(current, indent=2, sort_keys=True) + "\n"
    if os.environ.get("SOPHIA_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(text)
    assert SNAPSHOT.read_text() == text, "tool schemas changed: review, then regenerate the snapshot"
    for tool in tools:
        for name, prop in tool.input_schema["properties"].items():
            assert prop.get("description"), f"{tool.name}.{name} needs a description"
