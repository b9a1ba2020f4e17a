"""Every Gong tool's annotations, roles and parameter texts. The schemas themselves are snapshotted with
every other server's, one file per tool, by tests/test_tool_contract.py (`make snapshots`)."""

from __future__ import annotations

import anyio
import pytest
from sophia_gong.settings import GongSettings
from sophia_gong.tools import build_server
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect

# list_every_tool: these tests are about the whole catalogue, not about who may see which tool.
pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("list_every_tool")]



async def test_every_parameter_is_described() -> None:
    server = build_server(GongSettings())
    with anyio.fail_after(10):
        async with connect(server, principal=Principal("ada", Role.ADMIN, kind="test")) as client:
            tools = await client.list_tools()
    assert tools
    for tool in tools:
        for name, prop in tool.input_schema["properties"].items():
            assert prop.get("description"), f"{tool.name}.{name} needs a description"
