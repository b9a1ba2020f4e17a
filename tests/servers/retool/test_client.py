"""The Retool client against the local contract server (real httpx, real socket), and its limiter."""

from __future__ import annotations

import email.utils
import socket
import time
from collections import Counter
from collections.abc import Callable

import anyio
import pytest
from servers.retool.harness import READER_TOKEN, USERS_ONLY_TOKEN, Retool, VirtualClock
from sophia_retool.client import RetoolClient
from sophia_retool.settings import RetoolSettings
from sophia_shared.errors import (
    Conflict,
    Forbidden,
    InvalidArgument,
    LimitExceeded,
    NotConfigured,
    NotFound,
    Unavailable,
)
from sophia_shared.rest_limits import RateLimiter, retry_after_s

pytestmark = pytest.mark.anyio

MakeClient = Callable[[RetoolSettings], RetoolClient]
SettingsFor = Callable[..., RetoolSettings]


# -- the limiter on its own (virtual time, no network) ----------------------------------------


async def test_limiter_allows_a_window_then_waits_for_the_oldest_to_expire() -> None:
    clock = VirtualClock(start=0.0)
    limiter = RateLimiter(3, 60.0, clock)
    times = []
    with anyio.fail_after(5):
        for _ in range(7):
            await limiter.acquire()
            times.append(clock.now())
    assert times == [0.0, 0.0, 0.0, 60.0, 60.0, 60.0, 120.0]
    assert limiter.waited_s == 120.0


async def test_limiter_hold_off_delays_everyone_after_a_429() -> None:
    clock = VirtualClock(start=0.0)
    limiter = RateLimiter(100, 60.0, clock)
    limiter.hold_off(7.5)
    with anyio.fail_after(5):
        await limiter.acquire()
    assert clock.now() == 7.5


def test_retry_after_accepts_seconds_and_http_dates_and_ignores_garbage() -> None:
    assert retry_after_s("12") == 12.0
    assert retry_after_s(None) is None
    assert retry_after_s("soon") is None
    in_30s = email.utils.formatdate(time.time() + 30, usegmt=True)
    parsed = retry_after_s(in_30s)
    assert parsed is not None and 0 < parsed <= 31


# -- envelope, paging, lists -------------------------------------------------------------------


async def test_paging_follows_next_token_to_the_end(
    retool: Retool, settings_for: SettingsFor, make_client: MakeClient
) -> None:
    client = make_client(settings_for())
    seen: list[str] = []
    token: str | None = None
    with anyio.fail_after(10):
        while True:
            page = await client.list_users(email=None, first_name=None, last_name=None, limit=7, next_token=token)
            assert page.total_count == len(retool.org.users)
            seen.extend(u["id"] for u in page.items)
            token = page.next_token
            if token is None:
                break
    assert seen == list(retool.org.users)
    log = retool.server.records("/api/v2/users")
    assert len(log) == -(-len(retool.org.users) // 7)
    assert all(r.query["limit"] == "7" for r in log)
    assert "next_token" not in log[0].query and all("next_token" in r.query for r in log[1:])


async def test_whole_lists_are_asked_for_without_paging_parameters(
    retool: Retool, settings_for: SettingsFor, make_client: MakeClient
) -> None:
    client = make_client(settings_for())
    with anyio.fail_after(10):
        assert len(await client.list_apps()) == len(retool.org.apps)
        assert len(await client.list_folders()) == len(retool.org.folders)
        assert len(await client.list_groups()) == len(retool.org.groups)
        assert len(await client.list_workflows()) == len(retool.org.workflows)
        assert len(await client.list_environments()) == len(retool.org.environments)
    assert [r.query for r in retool.server.log] == [{}] * 5


# -- errors --------------------------------------------------------------------------------------


async def test_upstream_statuses_map_to_sophia_codes(
    retool: Retool, settings_for: SettingsFor, make_client: MakeClient
) -> None:
    admin = make_client(settings_for())
    with anyio.fail_after(10):
        with pytest.raises(NotConfigured) as bad_token:
            await make_client(settings_for(api_token="retool_01wrong")).list_apps()
        assert "SOPHIA_RETOOL_API_TOKEN" in bad_token.value.message

        with pytest.raises(Forbidden) as no_scope:
            await make_client(settings_for(api_token=USERS_ONLY_TOKEN)).list_apps()
        assert no_scope.value.data == {"scope": "apps:read"}
        assert "Apps > Read" in no_scope.value.message

        with pytest.raises(NotFound):
            await admin.get_user("user_doesnotexist")
        with pytest.raises(InvalidArgument):
            await admin.get_app("not-a-uuid")
        with pytest.raises(Conflict):
            await admin.create_folder("Finance", "app", "app_1")
    # Nothing was created by the refused folder.
    assert sum(f["name"] == "Finance" for f in retool.org.folders.values()) == 1


async def test_read_scope_token_cannot_write(
    retool: Retool, settings_for: SettingsFor, make_client: MakeClient
) -> None:
    reader = make_client(settings_for(api_token=READER_TOKEN))
    uid = retool.user(5)
    with anyio.fail_after(10), pytest.raises(Forbidden) as refused:
        await reader.disable_user(uid)
    assert refused.value.data == {"scope": "users:write"}
    assert retool.org.users[uid]["active"] is True


async def test_not_configured_names_the_settings_and_sends_nothing(retool: Retool, make_client: MakeClient) -> None:
    client = make_client(RetoolSettings(base_url=None, api_token=None))
    with pytest.raises(NotConfigured) as missing:
        await client.list_apps()
    assert missing.value.data["settings"] == ["SOPHIA_RETOOL_BASE_URL", "SOPHIA_RETOOL_API_TOKEN"]
    assert retool.server.log == []


async def test_unreachable_instance_is_unavailable_naming_the_address(make_client: MakeClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The port is closed now: connections are refused at once.
    client = make_client(RetoolSettings(base_url=f"http://127.0.0.1:{port}", api_token="x", max_retries=1))
    with anyio.fail_after(10), pytest.raises(Unavailable) as down:
        await client.list_apps()
    assert f"127.0.0.1:{port}" in down.value.message


# -- retries and throttling ----------------------------------------------------------------------


async def test_5xx_on_a_read_is_retried_with_backoff(
    retool: Retool, settings_for: SettingsFor, make_client: MakeClient
) -> None:
    retool.server.fail_next.extend([503, 500])
    client = make_client(settings_for())
    app_id = retool.app("Refund desk")
    with anyio.fail_after(10):
        app = await client.get_app(app_id)
    assert app["name"] == "Refund desk"
    assert [r.status for r in retool.server.log] == [503, 500, 200]
    assert len(retool.clock.slept) == 2 and retool.clock.slept[1] > retool.clock.slept[0] / 2


async def test_5xx_on_a_write_is_not_repeated(
    retool: Retool, settings_for: SettingsFor, make_client: MakeClient
) -> None:
    retool.server.fail_next.append(500)
    client = make_client(settings_for())
    with anyio.fail_after(10), pytest.raises(Unavailable):
        await client.grant({"type": "group", "id": 5}, {"type": "app", "id": retool.app("Refund desk")}, "use")
    assert [r.status for r in retool.server.log] == [500]


async def test_5xx_that_persists_ends_unavailable(
    retool: Retool, settings_for: SettingsFor, make_client: MakeClient
) -> None:
    retool.server.fail_next.extend([502] * 3)
    client = make_client(settings_for(max_retries=2))
    with anyio.fail_after(10), pytest.raises(Unavailable):
        await client.list_apps()
    assert len(retool.server.log) == 3


async def test_burst_at_the_default_rate_never_trips_the_server_limit(
    retool: Retool, settings_for: SettingsFor, make_client: MakeClient
) -> None:
    """120 concurrent calls with the default 45/min against a server allowing 50/min (virtual time)."""
    retool.server.rate_limit = 50
    client = make_client(settings_for(rate_limit_per_minute=45))
    uid = retool.user(1)
    results: list[str] = []

    async def one() -> None:
        results.append((await client.get_user(uid))["id"])

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(120):
                tg.start_soon(one)
    assert results == [uid] * 120
    log = retool.server.records("/api/v2/users")
    assert [r.status for r in log] == [200] * 120
    # Sent in three waves, a minute apart: 45, 45, 30.
    per_instant = Counter(r.at for r in log)
    start = min(per_instant)
    assert sorted(per_instant.items()) == [(start, 45), (start + 60, 45), (start + 120, 30)]


async def test_429s_are_retried_honouring_retry_after_when_present(
    retool: Retool, settings_for: SettingsFor, make_client: MakeClient
) -> None:
    """No client throttle to speak of (6000/min) against a server allowing 10/min: it must back off."""
    retool.server.rate_limit = 10
    client = make_client(settings_for(max_retries=6))
    with anyio.fail_after(30):
        for _ in range(25):
            await client.list_environments()
    log = retool.server.log
    limited = [r for r in log if r.status == 429]
    assert sum(r.status == 200 for r in log) == 25
    assert limited, "the server limit was never reached"
    # Retool does not promise Retry-After; the server sends it on every other 429.
    assert any(r.retry_after for r in limited) and any(r.retry_after is None for r in limited)
    for waited, header in zip(retool.clock.slept, [r.retry_after for r in limited], strict=False):
        if header is not None:
            assert waited == float(header)


async def test_429_that_persists_ends_limit_exceeded(
    retool: Retool, settings_for: SettingsFor, make_client: MakeClient
) -> None:
    retool.server.rate_limit = 1
    client = make_client(settings_for(max_retries=0))
    with anyio.fail_after(10):
        await client.list_environments()
        with pytest.raises(LimitExceeded):
            await client.list_environments()


async def test_revoking_a_missing_grant_is_reported_not_raised(
    retool: Retool, settings_for: SettingsFor, make_client: MakeClient
) -> None:
    client = make_client(settings_for())
    subject, obj = {"type": "group", "id": 3}, {"type": "app", "id": retool.app("Payroll export")}
    with anyio.fail_after(10):
        assert await client.revoke(subject, obj) is False
        await client.grant(subject, obj, "edit")
        assert await client.revoke(subject, obj) is True
    assert [r.status for r in retool.server.records("/api/v2/permissions")] == [404, 200, 200]
