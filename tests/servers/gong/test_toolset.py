"""The Gong tools as values: listed without building a server, and one called directly with a
stand-in cache (a fake: test_tools.py and test_sync.py run the tools against the contract server
and the real memory store)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import anyio
import pytest
from sophia_gong.cache import CallCache
from sophia_gong.client import GongClient
from sophia_gong.settings import GongSettings
from sophia_gong.sync import SyncStore
from sophia_gong.tools import TOOLS, GongDeps, _RecentCalls, gong_search_calls, gong_sync_status
from sophia_shared.roles import Role

SNAPSHOTS = Path(__file__).parents[2] / "snapshots" / "gong"


def test_the_toolset_lists_every_tool_without_a_server() -> None:
    assert sorted(TOOLS.names) == sorted(p.stem for p in SNAPSHOTS.glob("*.json"))
    assert not gong_search_calls.needs_config and gong_search_calls.role is Role.VIEWER
    assert all(t.read_only for t in TOOLS if t.name != "gong_sync")


class FakeCache:
    """A cache of 7 chunks for whoever asks."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def chunk_count(self, tenant: str) -> int:
        self.asked.append(tenant)
        return 7


@pytest.mark.anyio
async def test_sync_status_called_directly_before_any_sync() -> None:
    settings = GongSettings(daily_budget=50)
    cache = FakeCache()
    deps = GongDeps(settings=settings, client=GongClient(settings), cache=cast(CallCache, cache),
                    sync_store=SyncStore(), recent=_RecentCalls())
    with anyio.fail_after(5):
        status = await gong_sync_status.handler(deps)
    assert not status.configured and status.watermark is None and not status.scan_in_progress
    assert status.cached_chunks == 7 and len(cache.asked) == 1
    assert (status.budget_used_today, status.budget_limit) == (0, 50)
