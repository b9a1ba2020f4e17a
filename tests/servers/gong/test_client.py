"""GongClient against the local Gong v2 contract server, asserted from the server's request log."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from pydantic import SecretStr
from servers.gong.gong_contract_server import GongContractServer, LoggedRequest
from sophia_gong.client import (
    BudgetExhausted,
    CursorRejected,
    DailyBudget,
    GongClient,
    RateLimited,
    chunked,
)
from sophia_gong.settings import GongSettings
from sophia_shared.errors import Forbidden, NotFound, Unavailable

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

WHOLE_RANGE = {"fromDateTime": "2020-01-01T00:00:00Z", "toDateTime": "2030-01-01T00:00:00Z"}


def most_in_any_second(entries: list[LoggedRequest]) -> int:
    """The largest number of requests the server received within any 1-second window."""
    times = sorted(e.t for e in entries)
    best = 0
    start = 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def visible_calls(gong: GongContractServer) -> list[str]:
    return [c.id for c in gong.dataset.calls if not c.late or c.id in gong.published]


async def test_get_paging_puts_the_cursor_in_the_query_and_keeps_the_filter(
    gong: GongContractServer, gong_settings: GongSettings
) -> None:
    client = GongClient(gong_settings)
    seen: list[str] = []
    with anyio.fail_after(20):
        async for page in client.pages("GET", "/v2/calls", "calls", params=dict(WHOLE_RANGE)):
            seen += [c["id"] for c in page.items]
    await client.aclose()
    assert seen == visible_calls(gong)
    log = gong.requests("/v2/calls")
    assert len(log) == -(-len(seen) // 100) >= 3
    assert "cursor" not in log[0].query
    assert all("cursor" in e.query for e in log[1:])
    assert all({k: v for k, v in e.query.items() if k != "cursor"} == WHOLE_RANGE for e in log)
    assert all(e.status == 200 for e in log)


async def test_post_paging_puts_the_cursor_in_the_body_only(
    gong: GongContractServer, gong_settings: GongSettings
) -> None:
    client = GongClient(gong_settings)
    body = {"filter": dict(WHOLE_RANGE), "contentSelector": {"exposedFields": {"parties": True}}}
    ids: list[str] = []
    with anyio.fail_after(20):
        async for page in client.pages("POST", "/v2/calls/extensive", "calls", body=body):
            ids += [c["metaData"]["id"] for c in page.items]
            assert all(c["parties"] for c in page.items)
    await client.aclose()
    assert ids == visible_calls(gong)
    log = gong.requests("/v2/calls/extensive")
    assert len(log) >= 3
    assert all(e.query == {} for e in log)
    assert "cursor" not in log[0].body
    assert all(isinstance(e.body["cursor"], str) for e in log[1:])
    assert all({k: v for k, v in e.body.items() if k != "cursor"} == body for e in log)


async def test_batches_never_exceed_100_ids_and_dedupe(gong: GongContractServer, gong_settings: GongSettings) -> None:
    client = GongClient(gong_settings)
    ids = visible_calls(gong)[:250]
    with anyio.fail_after(20):
        transcripts = await client.transcripts([*ids, *ids[:10]])
        users = await client.users_by_id([u["id"] for u in gong.dataset.users])
    await client.aclose()
    assert set(transcripts) == set(ids)
    assert len(users) == len(gong.dataset.users) > 100
    sizes = [len(e.body["filter"]["callIds"]) for e in gong.requests("/v2/calls/transcript")]
    assert sizes == [100, 100, 50]
    user_sizes = [len(e.body["filter"]["userIds"]) for e in gong.requests("/v2/users/extensive")]
    assert max(user_sizes) <= 100 and sum(user_sizes) == len(gong.dataset.users)
    assert list(chunked(["a", "b", "a", "c"], 2)) == [["a", "b"], ["c"]]


async def test_nothing_found_404_is_an_empty_page_but_other_404s_are_errors(
    gong: GongContractServer, gong_settings: GongSettings
) -> None:
    client = GongClient(gong_settings)
    with anyio.fail_after(10):
        quiet = await client.list_calls("2001-01-01T00:00:00Z", "2001-02-01T00:00:00Z")
        assert quiet.items == [] and quiet.cursor is None
        assert await client.transcripts(["1234567890123456789"]) == {}
        with pytest.raises(NotFound) as missing:
            await client.get_call("1234567890123456789")
        assert missing.value.data["request_id"]
    await client.aclose()
    assert [e.status for e in gong.requests()] == [404, 404, 404]

    # A 404 that is not Gong's "nothing matched" answer (wrong host path) stays an error.
    wrong = GongClient(gong_settings.model_copy(update={"base_url": gong.base_url + "/not-gong"}))
    with anyio.fail_after(10), pytest.raises(NotFound):
        await wrong.list_calls("2001-01-01T00:00:00Z", "2001-02-01T00:00:00Z")
    await wrong.aclose()


async def test_a_429_storm_is_waited_out_without_ever_exceeding_3_per_second(
    gong: GongContractServer, gong_settings: GongSettings
) -> None:
    gong.rate_limit = 3
    settings = gong_settings.model_copy(update={"rate_limit_per_second": 3.0})
    client = GongClient(settings)
    gong.fail_next(429, times=3, retry_after=1)
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            # Concurrent work shares the one limiter.
            tg.start_soon(client.transcripts, visible_calls(gong)[:200])
            tg.start_soon(client.list_users)
            tg.start_soon(client.list_calls, WHOLE_RANGE["fromDateTime"], WHOLE_RANGE["toDateTime"])
    await client.aclose()
    log = gong.requests()
    assert [e.status for e in log].count(429) == 3
    assert sum(1 for e in log if e.status == 200) == 4
    assert most_in_any_second(log) <= 3
    # Retry-After applies to everything: nothing arrives within 1 s of a 429.
    last_429 = max(e.t for e in log if e.status == 429)
    assert all(e.t >= last_429 + 1.0 for e in log if e.status == 200 and e.t > last_429)
    assert client.stats.retries == 3 and client.stats.throttled_429 == 3


async def test_server_errors_are_retried_with_backoff_then_reported_with_request_id(
    gong: GongContractServer, gong_settings: GongSettings
) -> None:
    client = GongClient(gong_settings.model_copy(update={"max_retries": 2}))
    gong.fail_next(503, times=2)
    with anyio.fail_after(10):
        page = await client.list_users()
    assert len(page.items) == 100 and page.cursor
    gong.fail_next(500, times=3)
    with anyio.fail_after(10), pytest.raises(Unavailable) as failed:
        await client.list_users()
    await client.aclose()
    assert failed.value.data["status"] == 500 and failed.value.data["request_id"]
    assert [e.status for e in gong.requests()] == [503, 503, 200, 500, 500, 500]


async def test_daily_budget_stops_before_sending_and_survives_a_restart(
    gong: GongContractServer, gong_settings: GongSettings, sophia_home: Path
) -> None:
    settings = gong_settings.model_copy(update={"daily_budget": 3})
    client = GongClient(settings)
    with anyio.fail_after(10):
        for _ in range(3):
            await client.list_users()
        with pytest.raises(BudgetExhausted) as spent:
            await client.list_users()
    await client.aclose()
    assert spent.value.data == {"used": 3, "limit": 3, "path": "/v2/users"}
    assert len(gong.requests()) == 3
    stored = json.loads((sophia_home / "gong" / "budget.json").read_text())
    assert stored == {"day": DailyBudget.today(), "used": 3}
    restarted = GongClient(settings)
    assert restarted.budget.remaining() == 0
    with anyio.fail_after(10), pytest.raises(BudgetExhausted):
        await restarted.list_users()
    assert len(gong.requests()) == 3


async def test_gong_daily_cap_is_reported_not_waited_for(gong: GongContractServer, gong_settings: GongSettings) -> None:
    gong.daily_cap = 1
    client = GongClient(gong_settings)
    with anyio.fail_after(10):
        await client.list_users()
        with pytest.raises(RateLimited) as capped:
            await client.list_users()
    await client.aclose()
    assert capped.value.data["retry_after_s"] > 60 and capped.value.data["request_id"]
    assert client.budget.remaining() == 0
    # Another process on the same SOPHIA_HOME stays away too, without sending anything.
    sibling = GongClient(gong_settings)
    with anyio.fail_after(10), pytest.raises(RateLimited):
        await sibling.list_users()
    assert [e.status for e in gong.requests()] == [200, 429]


async def test_bad_credentials_map_to_forbidden_with_scope_and_request_id(
    gong: GongContractServer, gong_settings: GongSettings
) -> None:
    client = GongClient(gong_settings.model_copy(update={"access_key_secret": SecretStr("wrong")}))
    with anyio.fail_after(10):
        with pytest.raises(Forbidden) as on_calls:
            await client.list_calls(WHOLE_RANGE["fromDateTime"], WHOLE_RANGE["toDateTime"])
        with pytest.raises(Forbidden) as on_users:
            await client.list_users()
    await client.aclose()
    assert on_calls.value.data["status"] == 401 and on_calls.value.data["request_id"]
    assert on_users.value.data["status"] == 403
    assert on_users.value.data["required_scope"] == "api:users:read"
    assert "SOPHIA_GONG_ACCESS_KEY" in on_calls.value.message


async def test_a_cursor_reused_with_another_filter_is_rejected(
    gong: GongContractServer, gong_settings: GongSettings
) -> None:
    client = GongClient(gong_settings)
    with anyio.fail_after(10):
        first = await client.list_calls(WHOLE_RANGE["fromDateTime"], WHOLE_RANGE["toDateTime"])
        assert first.cursor
        with pytest.raises(CursorRejected):
            await client.list_calls("2021-01-01T00:00:00Z", WHOLE_RANGE["toDateTime"], cursor=first.cursor)
    await client.aclose()


def oauth_settings(gong: GongContractServer, **extra: object) -> GongSettings:
    values: dict[str, object] = {
        "base_url": gong.base_url,
        "oauth_client_id": gong.oauth_client_id,
        "oauth_client_secret": gong.oauth_client_secret,
        "oauth_token_url": gong.token_url,
        "rate_limit_per_second": 500.0,
        **extra,
    }
    return GongSettings(**values)  # type: ignore[arg-type]


async def test_oauth_refresh_switches_to_the_customer_host_and_rotates_the_refresh_token(
    gong: GongContractServer, sophia_home: Path
) -> None:
    first_refresh = gong.issue_refresh_token()
    settings = oauth_settings(gong, oauth_refresh_token=first_refresh)
    client = GongClient(settings)
    with anyio.fail_after(10):
        page = await client.list_users()
    await client.aclose()
    assert page.items
    assert client.base_url == gong.regional_base_url
    assert [(e.path, e.region, e.auth) for e in gong.requests()] == [("/v2/users", "/eu", "bearer")]
    stored = json.loads((sophia_home / "gong" / "oauth.json").read_text())
    assert stored["refresh_token"] != first_refresh
    assert stored["api_base_url"] == gong.regional_base_url
    assert (sophia_home / "gong" / "oauth.json").stat().st_mode & 0o077 == 0

    # A restart with the same settings reuses the stored tokens: the spent refresh token is not sent again.
    token_requests = len([e for e in gong.log if e.path.startswith("/oauth2")])
    again = GongClient(settings)
    with anyio.fail_after(10):
        await again.list_users()
    await again.aclose()
    assert len([e for e in gong.log if e.path.startswith("/oauth2")]) == token_requests


async def test_a_regional_token_on_the_generic_host_is_refreshed_onto_the_customer_host(
    gong: GongContractServer,
) -> None:
    regional_token = gong.issue_access_token(region="/eu")
    settings = oauth_settings(gong, oauth_token=regional_token, oauth_refresh_token=gong.issue_refresh_token())
    client = GongClient(settings)
    with anyio.fail_after(10):
        page = await client.list_calls(WHOLE_RANGE["fromDateTime"], WHOLE_RANGE["toDateTime"])
    await client.aclose()
    assert page.items
    assert [(e.region, e.status) for e in gong.requests()] == [("", 401), ("/eu", 200)]


async def test_missing_scope_names_the_scope(gong: GongContractServer) -> None:
    token = gong.issue_access_token(frozenset({"api:calls:read:basic"}))
    client = GongClient(oauth_settings(gong, oauth_token=token))
    with anyio.fail_after(10), pytest.raises(Forbidden) as refused:
        await client.transcripts(visible_calls(gong)[:1])
    await client.aclose()
    assert refused.value.data["required_scope"] == "api:calls:read:transcript"
    assert "api:calls:read:transcript" in refused.value.message
