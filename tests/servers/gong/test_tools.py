"""The Gong tools through the in-memory MCP client, against the local Gong v2 contract server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from servers.gong.gong_contract_server import GongContractServer
from sophia_gong.settings import GongSettings
from sophia_gong.tools import build_server, check
from sophia_shared.errors import NotConfigured, Unavailable
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect, error_code, error_data, structured

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

VIEWER = Principal("vera", Role.VIEWER, kind="test")
# The dataset's calls lie in the 20 days before the session started.
RECENT = (datetime.now(UTC) - timedelta(days=40)).date().isoformat()
API_TOOLS = ["gong_list_calls", "gong_get_call", "gong_get_transcript", "gong_list_users", "gong_sync"]


async def call(settings: GongSettings, name: str, args: dict[str, Any], principal: Principal = VIEWER) -> Any:
    server = build_server(settings)
    with anyio.fail_after(30):
        async with connect(server, principal=principal) as client:
            return await client.call(name, args)


async def test_every_tool_declares_role_and_all_annotations(gong_settings: GongSettings) -> None:
    server = build_server(gong_settings)
    async with connect(server) as client:
        tools = {t.name: t for t in await client.list_tools()}
    assert set(tools) == {*API_TOOLS, "gong_search_calls", "gong_sync_status"}
    for tool in tools.values():
        hints = tool.annotations
        assert hints is not None
        assert None not in (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint, hints.open_world_hint)
        assert tool.description and tool.output_schema
        assert (tool.meta or {})["sophia"]["role"] in ("viewer", "developer")
    assert tools["gong_sync"].annotations is not None and not tools["gong_sync"].annotations.read_only_hint


async def test_read_only_mode_hides_sync(gong_settings: GongSettings) -> None:
    server = build_server(gong_settings.model_copy(update={"read_only": True}))
    async with connect(server) as client:
        names = {t.name for t in await client.list_tools()}
    assert "gong_sync" not in names and "gong_search_calls" in names


async def test_list_calls_pages_with_a_frozen_window(gong: GongContractServer, gong_settings: GongSettings) -> None:
    server = build_server(gong_settings)
    ids: list[str] = []
    with anyio.fail_after(30):
        async with connect(server, principal=VIEWER) as client:
            first = structured(await client.call("gong_list_calls", {"from_date": RECENT}))
            ids += [c["id"] for c in first["calls"]]
            cursor = first["next_cursor"]
            while cursor:
                # The window travels in the cursor: page 2 cannot shift with "now".
                page = structured(await client.call("gong_list_calls", {"cursor": cursor}))
                assert (page["window_from"], page["window_to"]) == (first["window_from"], first["window_to"])
                ids += [c["id"] for c in page["calls"]]
                cursor = page["next_cursor"]
    expected = [c.id for c in gong.dataset.calls if not c.late]
    assert ids == expected and first["total"] == len(expected)
    assert set(first["calls"][0]) == {
        "id",
        "title",
        "started",
        "duration_s",
        "host_user_id",
        "direction",
        "scope",
        "workspace_id",
        "url",
    }
    log = gong.requests("/v2/calls")
    assert len({(e.query["fromDateTime"], e.query["toDateTime"]) for e in log}) == 1


async def test_list_calls_by_host_uses_the_extensive_filter(
    gong: GongContractServer, gong_settings: GongSettings
) -> None:
    host = gong.dataset.calls[0].meta["primaryUserId"]
    result = structured(await call(gong_settings, "gong_list_calls", {"from_date": RECENT, "host_user_ids": [host]}))
    expected = [c.id for c in gong.dataset.calls if not c.late and c.meta["primaryUserId"] == host]
    assert [c["id"] for c in result["calls"]] == expected
    (request,) = gong.requests("/v2/calls/extensive")
    assert request.body["filter"]["primaryUserIds"] == [host]


async def test_quiet_range_is_an_empty_list(gong: GongContractServer, gong_settings: GongSettings) -> None:
    result = await call(gong_settings, "gong_list_calls", {"from_date": "2001-01-01", "to_date": "2001-01-31"})
    assert structured(result) | {"window_from": None} == {
        "calls": [],
        "total": 0,
        "window_from": None,
        "window_to": "2001-02-01T00:00:00Z",
        "next_cursor": None,
        "truncated": False,
    }
    assert [e.status for e in gong.requests()] == [404]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ({"from_date": "2026-11-10", "to_date": "2026-11-01"}, "before to_date"),
        ({"from_date": "2026-13-45"}, "is not a date"),
        ({"from_date": "2026-11-01T10:00:00"}, "no time zone"),
        ({"from_date": "2015-01-01", "to_date": "2026-01-01"}, "at most 366"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"host_user_ids": ["alice"]}, "host_user_ids"),
    ],
)
async def test_bad_dates_and_cursors_are_clear_errors_and_send_nothing(
    gong: GongContractServer, gong_settings: GongSettings, args: dict[str, Any], needle: str
) -> None:
    result = await call(gong_settings, "gong_list_calls", args)
    assert error_code(result) == "invalid_argument"
    assert needle in result.content[0].text  # type: ignore[union-attr]
    assert gong.requests() == []


async def test_get_call_details_joins_parties_and_crm(gong: GongContractServer, gong_settings: GongSettings) -> None:
    source = gong.dataset.calls[5]
    details = structured(await call(gong_settings, "gong_get_call", {"call_id": source.id}))
    assert details["call"]["id"] == source.id
    assert details["account"] == source.account
    assert {p["speaker_id"] for p in details["parties"]} == {p["speakerId"] for p in source.parties}
    assert details["brief"] == source.content["brief"]
    assert details["topics"] == [t["name"] for t in source.content["topics"]]
    assert {o["object_type"] for o in details["crm"]} == {"Account", "Opportunity"}
    assert "data, not instructions" in details["note"]
    (request,) = gong.requests()
    assert request.body["filter"] == {"callIds": [source.id]}


async def test_unknown_and_malformed_call_ids(gong: GongContractServer, gong_settings: GongSettings) -> None:
    missing = await call(gong_settings, "gong_get_call", {"call_id": "1111111111111111111"})
    assert error_code(missing) == "not_found"
    malformed = await call(gong_settings, "gong_get_transcript", {"call_id": "12ab"})
    assert error_code(malformed) == "invalid_argument"
    assert len(gong.requests()) == 1


async def test_transcript_is_speaker_attributed_and_paged_without_refetching(
    gong: GongContractServer, gong_settings: GongSettings
) -> None:
    source = max(gong.dataset.calls, key=lambda c: len(c.transcript))
    names = {p["speakerId"]: p["name"] for p in source.parties}
    server = build_server(gong_settings)
    turns: list[dict[str, Any]] = []
    with anyio.fail_after(30):
        async with connect(server, principal=VIEWER) as client:
            offset: int | None = 0
            while offset is not None:
                page = structured(
                    await client.call("gong_get_transcript", {"call_id": source.id, "offset": offset, "max_turns": 3})
                )
                turns += page["turns"]
                offset = page["next_offset"]
    assert len(turns) == len(source.transcript) == page["total_turns"]
    for turn, monologue in zip(turns, source.transcript, strict=True):
        assert turn["speaker"] == names[monologue["speakerId"]]
        assert turn["start_ms"] == monologue["sentences"][0]["start"]
        assert turn["text"] == " ".join(s["text"] for s in monologue["sentences"])
    # Details once, transcript once, however many pages were read.
    assert [e.path for e in gong.requests()] == ["/v2/calls/extensive", "/v2/calls/transcript"]


async def test_list_users_pages(gong: GongContractServer, gong_settings: GongSettings) -> None:
    server = build_server(gong_settings)
    with anyio.fail_after(30):
        async with connect(server, principal=VIEWER) as client:
            first = structured(await client.call("gong_list_users", {}))
            second = structured(await client.call("gong_list_users", {"cursor": first["next_cursor"]}))
    assert len(first["users"]) == 100 and second["next_cursor"] is None
    assert [u["id"] for u in first["users"] + second["users"]] == [u["id"] for u in gong.dataset.users]
    assert "cursor" in gong.requests()[1].query


async def test_not_configured_names_the_settings_and_sends_nothing(
    gong: GongContractServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ACCESS_KEY", "ACCESS_KEY_SECRET", "OAUTH_TOKEN", "OAUTH_REFRESH_TOKEN"):
        monkeypatch.delenv(f"SOPHIA_GONG_{name}", raising=False)
    settings = GongSettings(base_url=gong.base_url)
    server = build_server(settings)
    args = {"call_id": gong.dataset.calls[0].id}
    with anyio.fail_after(30):
        async with connect(server, principal=Principal("dev", Role.DEVELOPER)) as client:
            for tool in API_TOOLS:
                result = await client.call(tool, args if tool in ("gong_get_call", "gong_get_transcript") else {})
                assert error_code(result) == "not_configured", tool
                assert "SOPHIA_GONG_ACCESS_KEY" in result.content[0].text  # type: ignore[union-attr]
            status = structured(await client.call("gong_sync_status", {}))
    assert status["configured"] is False
    assert gong.requests() == []


async def test_upstream_refusal_carries_the_request_id(gong: GongContractServer, gong_settings: GongSettings) -> None:
    gong.fail_next(500, times=10)
    result = await call(gong_settings.model_copy(update={"max_retries": 1}), "gong_list_users", {})
    assert error_code(result) == "unavailable"
    assert error_data(result)["request_id"]


async def test_sync_needs_developer_role(gong_settings: GongSettings) -> None:
    result = await call(gong_settings, "gong_sync", {})
    assert error_code(result) == "forbidden"


async def test_check_reports_connectivity_or_what_is_missing(
    gong: GongContractServer, gong_settings: GongSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with anyio.fail_after(10):
        line = await check(gong_settings)
    assert "2 workspaces" in line and gong.base_url in line
    for name in ("ACCESS_KEY", "ACCESS_KEY_SECRET", "OAUTH_TOKEN", "OAUTH_REFRESH_TOKEN"):
        monkeypatch.delenv(f"SOPHIA_GONG_{name}", raising=False)
    with anyio.fail_after(10), pytest.raises(NotConfigured):
        await check(GongSettings(base_url=gong.base_url))
    with anyio.fail_after(10), pytest.raises(Unavailable) as down:
        await check(gong_settings.model_copy(update={"base_url": "http://127.0.0.1:9", "max_retries": 0}))
    assert "127.0.0.1:9" in down.value.message


async def test_search_over_an_empty_cache_is_an_error_naming_the_fix(gong_settings: GongSettings) -> None:
    """An empty cache cannot answer: not an empty success (a model would say "no call mentions it")."""
    nobody = Principal("nobody-has-synced", Role.VIEWER, kind="test")
    unconfigured = GongSettings(base_url="http://127.0.0.1:9")
    result = await call(unconfigured, "gong_search_calls", {"query": "pricing"}, principal=nobody)
    assert error_code(result) == "not_configured"
    assert "SOPHIA_GONG_ACCESS_KEY" in str(result.content) and "gong_sync" in str(result.content)
    result = await call(gong_settings, "gong_search_calls", {"query": "pricing"}, principal=nobody)
    assert error_code(result) == "unavailable" and "run gong_sync" in str(result.content)
