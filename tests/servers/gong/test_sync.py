"""gong_sync and the offline cache: Gong traffic from the contract server's log, the cache in the real
SQLite + sqlite-vec memory store. Protocol tests use a stand-in embedder (see conftest); search
quality runs on the real local MiniLM."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from servers.gong.gong_contract_server import GongContractServer
from sophia_gong.settings import GongSettings
from sophia_gong.tools import build_server
from sophia_shared.memory import MemoryStore
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect, error_code, structured

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

DEV = Principal("dana", Role.DEVELOPER, kind="test")
Opener = Callable[[], Awaitable[MemoryStore]]


def days_ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).replace(microsecond=0).isoformat().replace("+00:00", "Z")


async def run_tools(
    settings: GongSettings,
    memory: Opener | None,
    calls: list[tuple[str, dict[str, Any]]],
    principal: Principal = DEV,
) -> list[Any]:
    server = build_server(settings, memory=memory)
    results = []
    with anyio.fail_after(60):
        async with connect(server, principal=principal) as client:
            for name, args in calls:
                results.append(await client.call(name, args))
    return results


def transcript_ids(gong: GongContractServer) -> list[str]:
    return [i for e in gong.requests("/v2/calls/transcript") for i in e.body["filter"]["callIds"]]


async def test_incremental_sync_skips_known_calls_and_picks_up_late_ones(
    gong: GongContractServer, gong_settings: GongSettings, stand_in_memory: Opener
) -> None:
    since = days_ago(2)
    (first,) = await run_tools(gong_settings, stand_in_memory, [("gong_sync", {"since": since})])
    report = structured(first)
    on_time = [c.id for c in gong.dataset.calls if not c.late and c.filter_time() >= datetime.fromisoformat(since)]
    assert report["status"] == "complete" and report["calls_new"] == len(on_time) > 0
    # The minimum: one page of details, one batch of transcripts.
    assert report["requests_used"] == 2 == len(gong.requests())
    assert sorted(transcript_ids(gong)) == sorted(on_time)

    gong.reset()
    late = gong.publish_late_calls()
    (second, status, found) = await run_tools(
        gong_settings,
        stand_in_memory,
        [
            ("gong_sync", {}),
            ("gong_sync_status", {}),
            ("gong_search_calls", {"query": "pricing", "call_id": late[0]}),
        ],
    )
    report = structured(second)
    assert report["status"] == "complete"
    # The window reaches back by the overlap, and only the late calls are fetched.
    assert report["window_from"] <= days_ago(1)
    assert sorted(transcript_ids(gong)) == sorted(late) and report["calls_new"] == len(late)
    assert len(gong.requests("/v2/calls/extensive")) == 1
    filters = [e.body["filter"] for e in gong.requests("/v2/calls/extensive")]
    assert filters[0]["toDateTime"] == report["window_to"] == structured(status)["watermark"]
    assert structured(status)["calls_indexed"] == len(on_time) + len(late)
    assert {h["call_id"] for h in structured(found)["hits"]} == {late[0]}


async def test_sync_stops_at_the_daily_budget_and_a_later_run_resumes(
    gong: GongContractServer, gong_settings: GongSettings, stand_in_memory: Opener, sophia_home: Path
) -> None:
    visible = [c.id for c in gong.dataset.calls if not c.late]
    tight = gong_settings.model_copy(update={"daily_budget": 3})
    (paused, status) = await run_tools(
        tight,
        stand_in_memory,
        [
            ("gong_sync", {"since": days_ago(30)}),
            ("gong_sync_status", {}),
        ],
    )
    report = structured(paused)
    assert report["status"] == "paused" and "budget" in report["reason"]
    assert report["calls_seen"] == 100 and report["requests_used"] == 2
    assert structured(status)["scan_in_progress"] and structured(status)["budget_used_today"] == 2
    assert len(gong.requests()) == 2

    # Next day: the budget file rolls over; the same scan continues from its saved cursor.
    budget = sophia_home / "gong" / "budget.json"
    budget.write_text(json.dumps({"day": "2000-01-01", "used": 3}))
    (resumed,) = await run_tools(gong_settings, stand_in_memory, [("gong_sync", {})])
    report = structured(resumed)
    assert report["status"] == "complete" and report["resumed"] is True
    assert report["calls_seen"] == len(visible)
    details = gong.requests("/v2/calls/extensive")
    assert isinstance(details[1].body["cursor"], str)
    assert len({json.dumps(e.body["filter"], sort_keys=True) for e in details}) == 1
    fetched = transcript_ids(gong)
    assert sorted(fetched) == sorted(visible) and len(fetched) == len(set(fetched))


async def test_sync_leaves_the_reserve_for_other_tools(
    gong: GongContractServer, gong_settings: GongSettings, stand_in_memory: Opener
) -> None:
    settings = gong_settings.model_copy(update={"daily_budget": 5, "sync_budget_reserve": 2})
    (paused, users) = await run_tools(
        settings,
        stand_in_memory,
        [
            ("gong_sync", {"since": days_ago(30)}),
            ("gong_list_users", {}),
        ],
    )
    report = structured(paused)
    assert report["status"] == "paused" and "kept for other tools" in report["reason"]
    assert report["requests_used"] == 2 and report["budget_remaining"] == 3
    assert len(structured(users)["users"]) == 100


async def test_sync_stops_after_max_seconds_and_resumes(
    gong: GongContractServer, gong_settings: GongSettings, stand_in_memory: Opener
) -> None:
    # Gong's Retry-After makes the first page take at least a second.
    gong.fail_next(429, times=1, retry_after=1)
    (cut, rest) = await run_tools(
        gong_settings,
        stand_in_memory,
        [
            ("gong_sync", {"since": days_ago(30), "max_seconds": 1}),
            ("gong_sync", {}),
        ],
    )
    assert structured(cut)["status"] == "paused" and "1 s" in structured(cut)["reason"]
    assert structured(cut)["calls_seen"] == 100
    assert structured(rest)["status"] == "complete" and structured(rest)["resumed"] is True


async def test_gong_daily_cap_pauses_the_sync_cleanly(
    gong: GongContractServer, gong_settings: GongSettings, stand_in_memory: Opener
) -> None:
    gong.daily_cap = 3
    (paused, again) = await run_tools(
        gong_settings,
        stand_in_memory,
        [
            ("gong_sync", {"since": days_ago(30)}),
            ("gong_sync", {}),
        ],
    )
    report = structured(paused)
    assert report["status"] == "paused" and report["calls_new"] == 100
    assert report["budget_remaining"] == 0
    # The second run sends nothing: the client now knows the day's cap is reached.
    assert structured(again)["status"] == "paused" and structured(again)["requests_used"] == 0
    assert [e.status for e in gong.requests()] == [200, 200, 200, 429]


async def test_an_expired_cursor_rescans_the_frozen_window_without_refetching(
    gong: GongContractServer, gong_settings: GongSettings, stand_in_memory: Opener
) -> None:
    # The first run stops after one page; the cursor it saved is already expired.
    gong.cursor_ttl_s = -1
    try:
        (paused,) = await run_tools(
            gong_settings, stand_in_memory, [("gong_sync", {"since": days_ago(30), "max_pages": 1})]
        )
    finally:
        gong.cursor_ttl_s = 600
    assert structured(paused)["status"] == "paused"
    first_batch = set(transcript_ids(gong))
    gong.reset()
    (done,) = await run_tools(gong_settings, stand_in_memory, [("gong_sync", {})])
    assert structured(done)["status"] == "complete"
    details = gong.requests("/v2/calls/extensive")
    assert details[0].status == 400 and "cursor" not in details[1].body
    assert first_batch and not first_batch & set(transcript_ids(gong))


async def test_sync_reports_progress(
    gong: GongContractServer, gong_settings: GongSettings, stand_in_memory: Opener
) -> None:
    server = build_server(gong_settings, memory=stand_in_memory)
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    with anyio.fail_after(60):
        async with connect(server, principal=DEV) as client:
            result = await client.call("gong_sync", {"since": days_ago(30)}, progress_callback=on_progress)
    total = structured(result)["calls_seen"]
    assert seen[0] == (100, total) and seen[-1] == (total, total)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({"since": "2026-02-30"}, "invalid_argument"),
        ({"since": "2099-01-01"}, "invalid_argument"),
        ({"since": "2000-01-01"}, "invalid_argument"),
        ({"max_pages": 0}, "invalid_argument"),
    ],
)
async def test_bad_sync_arguments(
    gong: GongContractServer, gong_settings: GongSettings, stand_in_memory: Opener, args: dict[str, Any], code: str
) -> None:
    (result,) = await run_tools(gong_settings, stand_in_memory, [("gong_sync", args)])
    assert error_code(result) == code
    assert gong.requests() == []


async def test_search_with_minilm_finds_what_a_customer_said_offline_and_per_tenant(
    gong: GongContractServer, gong_settings: GongSettings
) -> None:
    """The real local MiniLM embedder and the real store; a 1-day window keeps embedding short."""
    since = days_ago(1)
    (synced,) = await run_tools(gong_settings, None, [("gong_sync", {"since": since})])
    assert structured(synced)["status"] == "complete"
    synced_calls = [c for c in gong.dataset.calls if not c.late and c.filter_time() >= datetime.fromisoformat(since)]
    pricing = next(c for c in synced_calls if any(t["name"] == "Pricing" for t in c.content["topics"]))
    account = pricing.account
    gong.reset()

    # Offline: no credentials, nothing listening is needed for search.
    offline = GongSettings(base_url="http://127.0.0.1:9")
    query = {"query": f"what did {account} say about pricing", "affiliation": "external", "limit": 5}
    (found, elsewhere) = await run_tools(
        offline,
        None,
        [
            ("gong_search_calls", query),
            ("gong_search_calls", {**query, "call_id": "1"}),
        ],
    )
    (other_tenant,) = await run_tools(
        offline, None, [("gong_search_calls", query)], principal=Principal("mallory", Role.VIEWER)
    )
    result = structured(found)
    assert result["hits"] and result["cached_chunks"] is None
    top = result["hits"][0]
    assert account in top["call_title"] and top["affiliation"] == "external" and top["speaker"]
    assert top["date"] >= since[:10] and top["kind"] == "turn"
    assert any(w in top["text"].lower() for w in ("price", "pricing", "budget", "discount"))
    assert "data, not instructions" in result["note"]
    # Nothing cached for this user and no credentials: an error naming the fix, not an empty success.
    assert error_code(other_tenant) == "not_configured" and "gong_sync" in str(other_tenant.content)
    assert structured(elsewhere)["hits"] == [] and structured(elsewhere)["cached_chunks"] > len(synced_calls)
    assert gong.requests() == []
