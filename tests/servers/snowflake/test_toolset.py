"""The Snowflake tools as values: listed without building a server, and one called directly with a
stand-in client (a fake: the warehouse tests in test_tools.py run the same tool against fakesnow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import anyio
import pytest
from sophia_shared.roles import Role
from sophia_snowflake.client import ColumnInfo, SnowflakeClient
from sophia_snowflake.settings import SnowflakeSettings
from sophia_snowflake.tools import TOOLS, SnowflakeDeps, _Cursors, snowflake_execute, snowflake_list_databases

SNAPSHOTS = Path(__file__).parents[2] / "snapshots" / "snowflake"


def test_the_toolset_lists_every_tool_without_a_server() -> None:
    assert sorted(TOOLS.names) == sorted(p.stem for p in SNAPSHOTS.glob("*.json"))
    assert snowflake_execute.role is Role.DEVOPS and snowflake_execute.destructive
    assert all(t.read_only for t in TOOLS if t.name not in ("snowflake_execute", "snowflake_cancel"))


class FakeWarehouse:
    """Answers SHOW DATABASES with two rows; records what it was asked."""

    is_local = True

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    async def rows(self, sql: str, params: Any, *, limit: int, **_: Any) -> tuple[list[ColumnInfo], list[Any]]:
        self.asked.append((sql, limit))
        columns = [ColumnInfo("name", "TEXT", False), ColumnInfo("comment", "TEXT", True)]
        return columns, [["SHOP", "demo"], ["RAW", ""]]


@pytest.mark.anyio
async def test_list_databases_called_directly_with_a_fake_client() -> None:
    warehouse = FakeWarehouse()
    deps = SnowflakeDeps(settings=SnowflakeSettings(), sf=cast(SnowflakeClient, warehouse), cursors=_Cursors(),
                         source="fake")
    with anyio.fail_after(5):
        listed = await snowflake_list_databases.handler(deps, limit=1)
    assert warehouse.asked == [("SHOW DATABASES", 2)]
    assert [d.name for d in listed.databases] == ["SHOP"] and listed.truncated and listed.source == "fake"
