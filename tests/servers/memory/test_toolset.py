"""The memory tools as values: listed without building a server, and one called directly with a
stand-in store (a fake: test_tools.py runs the same tools against SQLite + sqlite-vec)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import anyio
import pytest
from sophia_memory.client import MemoryClient
from sophia_memory.settings import MemoryServerSettings
from sophia_memory.tools import TOOLS, MemoryDeps, memory_forget, memory_stats
from sophia_shared.auth import Principal
from sophia_shared.memory import Stats
from sophia_shared.request import Call, bound
from sophia_shared.roles import Role

SNAPSHOTS = Path(__file__).parents[2] / "snapshots" / "memory"


def test_the_toolset_lists_every_tool_without_a_server() -> None:
    assert sorted(TOOLS.names) == sorted(p.stem for p in SNAPSHOTS.glob("*.json"))
    assert memory_forget.role is Role.ADMIN and memory_forget.destructive
    # Bounds that come from settings are applied at registration, not fixed in the module.
    assert {t.name for t in TOOLS if t.parameters} == {"memory_store", "memory_search", "memory_list", "memory_update"}


class FakeStore:
    """Counts for whichever tenant it is asked about."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def stats(self, tenant: str) -> Stats:
        self.asked.append(tenant)
        return Stats(tenant=tenant, total=2, expired=0, by_namespace={"default": 2}, by_source={}, oldest=None,
                     newest=None, embedding_model="fake", dimensions=3, backend="sqlite")


class FakeClient:
    def __init__(self) -> None:
        self.opened = FakeStore()

    async def store(self) -> FakeStore:
        return self.opened


@pytest.mark.anyio
async def test_stats_called_directly_counts_the_callers_own_memories() -> None:
    client = FakeClient()
    deps = MemoryDeps(settings=MemoryServerSettings(), client=cast(MemoryClient, client), text_chars=100,
                      total_chars=1_000)
    ada = Principal("ada", Role.VIEWER, kind="test")
    with anyio.fail_after(5), bound(Call(tool="memory_stats", arguments={}, principal=ada, correlation_id="c")):
        result = await memory_stats.handler(deps)
    assert client.opened.asked == [result.stats.tenant] and result.stats.total == 2
    assert "ada" in result.stats.tenant


