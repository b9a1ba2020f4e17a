"""The local default: no account configured → a fakesnow warehouse on loopback with the demo dataset."""

from __future__ import annotations

import os

import anyio
import pytest
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect, structured
from sophia_snowflake.client import SnowflakeClient
from sophia_snowflake.local import DEMO_TABLES
from sophia_snowflake.settings import SnowflakeSettings
from sophia_snowflake.tools import build_server

# list_every_tool: these tests are about the whole catalogue, not about who may see which tool.
pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.usefixtures("list_every_tool")]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_local_demo_warehouse_starts_on_first_use_and_is_labelled(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SOPHIA_SNOWFLAKE_"):
            monkeypatch.delenv(name)
    settings = SnowflakeSettings()
    assert settings.is_local
    client = SnowflakeClient(settings)
    server = build_server(settings, client)
    assert client.local is not None
    async with connect(server, principal=Principal("lou", Role.VIEWER, kind="test")) as session:
        with anyio.fail_after(90):
            tools = await session.list_tools()
            assert len(tools) == 9
            assert not client.local.running  # listing tools never starts the warehouse
            tables = structured(await session.call("snowflake_list_tables", {}))
            revenue = structured(await session.call(
                "snowflake_query",
                {"sql": "select country, revenue from revenue_by_country order by revenue desc", "max_rows": 3},
            ))
            joined = structured(await session.call(
                "snowflake_query",
                {"sql": "select count(*) from orders o join order_items i on i.order_id = o.id "
                        "join products p on p.id = i.product_id join customers c on c.id = o.customer_id"},
            ))
        port = client.local.port
        process = client.local._process
        assert process is not None and _alive(process.pid)
        assert client.local.ensure_started() == port  # started once, reused
    # the server's lifespan closed the client when the session ended: the child is stopped by its PID
    assert not client.local.running
    assert process.returncode is not None and not _alive(process.pid)
    assert {t["name"] for t in tables["tables"]} >= set(DEMO_TABLES)
    assert tables["local"] is True
    assert revenue["local"] is True and "local demo warehouse" in revenue["source"]
    assert revenue["row_count"] == 3 and revenue["truncated"] is True
    assert joined["rows"][0][0] > 400
    assert port is not None and client.address() == f"local fakesnow warehouse on 127.0.0.1:{port}"
    client.local.stop()  # idempotent
