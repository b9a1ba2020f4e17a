"""The request path of SophiaServer, step by step, through the in-memory SDK client."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import anyio
import pytest
from shared.demo_server import STATE, DemoSettings, build_server
from sophia_shared.auth import Principal, Role
from sophia_shared.confirm import TOKEN_TTL_S
from sophia_shared.server import SophiaServer
from sophia_shared.testing import connect, error_code, error_data, structured

pytestmark = pytest.mark.anyio

ALICE = Principal("alice", Role.DEVOPS)
VIEWER = Principal("vera", Role.VIEWER)
ADMIN = Principal("ada", Role.ADMIN)


@pytest.fixture
def server() -> SophiaServer:
    STATE["plan"] = 1
    built: SophiaServer = build_server(DemoSettings())
    return built


async def test_text_content_is_the_structured_content_as_compact_json(server: SophiaServer) -> None:
    with anyio.fail_after(5):
        async with connect(server, principal=VIEWER) as client:
            result = await client.call("demo_echo", {"text": "wörld"})
    body = structured(result)
    [block] = result.content
    assert block.type == "text"
    assert json.loads(block.text) == body
    assert block.text == json.dumps(body, ensure_ascii=False, separators=(",", ":"))


async def test_allowed_call_sees_its_principal_and_a_correlation_id(server: SophiaServer) -> None:
    with anyio.fail_after(5):
        async with connect(server, principal=VIEWER) as client:
            result = await client.call("demo_echo", {"text": "world"})
    body = structured(result)
    assert body["text"] == "hello world"
    assert (body["principal"], body["role"]) == ("vera", "viewer")
    assert len(body["correlation_id"]) == 16


@pytest.mark.parametrize(
    ("who", "tool", "args", "allowed"),
    [
        (VIEWER, "demo_echo", {"text": "a"}, True),
        (VIEWER, "demo_write", {"value": 1}, False),
        (Principal("dev", Role.DEVELOPER), "demo_write", {"value": 1}, True),
        (Principal("dev", Role.DEVELOPER), "demo_drop", {"table": "orders"}, False),
        (ALICE, "demo_admin", {"login_password": "x"}, False),
        (ADMIN, "demo_admin", {"login_password": "x"}, True),
    ],
)
async def test_role_check(server: SophiaServer, who: Principal, tool: str, args: dict[str, Any], allowed: bool) -> None:
    with anyio.fail_after(5):
        async with connect(server, principal=who) as client:
            result = await client.call(tool, args)
    if allowed:
        assert error_code(result) is None
    else:
        assert error_code(result) == "forbidden"
        assert "needs role" in result.content[0].text  # type: ignore[union-attr]


async def test_read_only_mode_hides_and_refuses_every_write() -> None:
    server = build_server(DemoSettings(read_only=True))
    with anyio.fail_after(5):
        async with connect(server, principal=ADMIN) as client:
            names = {t.name for t in await client.list_tools()}
            refused = await client.call("demo_write", {"value": 1})
    assert names == {"demo_echo", "demo_big", "demo_fail"}
    assert error_code(refused) == "forbidden"
    assert "read-only" in refused.content[0].text  # type: ignore[union-attr]


async def test_bad_arguments_are_invalid_argument_and_nothing_runs(server: SophiaServer) -> None:
    with anyio.fail_after(5):
        async with connect(server, principal=ALICE) as client:
            too_long = await client.call("demo_echo", {"text": "x" * 51})
            missing = await client.call("demo_echo", {})
            wrong_type = await client.call("demo_write", {"value": "many"})
            unknown = await client.call("no_such_tool", {})
    assert [error_code(r) for r in (too_long, missing, wrong_type)] == ["invalid_argument"] * 3
    assert "text" in too_long.content[0].text  # type: ignore[union-attr]
    assert error_code(unknown) == "not_found"


async def test_errors_carry_codes_and_internal_text_never_leaks(
    server: SophiaServer, caplog: pytest.LogCaptureFixture
) -> None:
    with anyio.fail_after(5), caplog.at_level(logging.ERROR, logger="sophia"):
        async with connect(server, principal=ALICE) as client:
            crash = await client.call("demo_fail", {"kind": "crash"})
            upstream = await client.call("demo_fail", {"kind": "upstream"})
            config = await client.call("demo_fail", {"kind": "config"})
            missing = await client.call("demo_fail", {"kind": "missing"})
    assert error_code(crash) == "internal"
    assert "sekrit" not in str(crash.content) and "internal detail" not in str(crash.content)
    assert any("demo_fail crashed" in r.getMessage() for r in caplog.records)  # logged on the server
    assert error_code(upstream) == "upstream_error"
    assert "hunter2" not in str(upstream.content)  # upstream detail masked when not verbose
    assert error_code(config) == "not_configured"
    assert error_code(missing) == "not_found"


async def test_verbose_errors_show_upstream_detail_but_still_redact_secrets() -> None:
    server = build_server(DemoSettings(verbose_errors=True))
    with anyio.fail_after(5):
        async with connect(server, principal=ALICE) as client:
            upstream = await client.call("demo_fail", {"kind": "upstream"})
    text = upstream.content[0].text  # type: ignore[union-attr]
    assert "upstream said" in text
    assert "hunter2" not in text


async def test_result_cap(server: SophiaServer) -> None:
    with anyio.fail_after(10):
        async with connect(server, principal=ALICE) as client:
            small = await client.call("demo_big", {"size": 100})
            big = await client.call("demo_big", {"size": 300_000})
    assert error_code(small) is None
    assert error_code(big) == "limit_exceeded"
    assert "MAX_RESULT_CHARS" in big.content[0].text  # type: ignore[union-attr]


async def test_progress_is_reported(server: SophiaServer) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    with anyio.fail_after(5):
        async with connect(server, principal=ALICE) as client:
            result = await client.call("demo_write", {"value": 3}, progress_callback=on_progress)
    assert error_code(result) is None
    assert seen == [(1, 2, "half way"), (2, 2, "done")]


# -- confirmation ------------------------------------------------------------------------------


async def _ask(client: Any, table: str = "orders") -> str:
    first = await client.call("demo_drop", {"table": table})
    assert error_code(first) == "confirmation_required"
    data = error_data(first)
    assert data["preview"]["summary"].startswith(f"drop table {table}")
    return str(data["confirmation_token"])


async def test_confirmation_by_token_runs_once(server: SophiaServer) -> None:
    with anyio.fail_after(5):
        async with connect(server, principal=ALICE) as client:
            token = await _ask(client)
            done = await client.call("demo_drop", {"table": "orders", "confirmation_token": token})
            again = await client.call("demo_drop", {"table": "orders", "confirmation_token": token})
    assert structured(done) == {"dropped": "orders"}
    assert error_code(again) == "confirmation_required"
    assert "already used" in error_data(again)["refused"]


async def test_token_with_changed_arguments_is_refused(server: SophiaServer) -> None:
    with anyio.fail_after(5):
        async with connect(server, principal=ALICE) as client:
            token = await _ask(client, "orders")
            other = await client.call("demo_drop", {"table": "customers", "confirmation_token": token})
            listing = await client.call("demo_echo", {"text": "still here"})
    assert error_code(other) == "confirmation_required"
    assert "changed" in error_data(other)["refused"]
    assert error_code(listing) is None


async def test_token_from_another_principal_is_refused(server: SophiaServer) -> None:
    with anyio.fail_after(5):
        async with connect(server, principal=ALICE) as client:
            token = await _ask(client)
            mallory = Principal("mallory", Role.ADMIN)
            stolen = await client.call("demo_drop", {"table": "orders", "confirmation_token": token}, principal=mallory)
            still_good = await client.call("demo_drop", {"table": "orders", "confirmation_token": token})
    assert "another principal" in error_data(stolen)["refused"]
    assert structured(still_good) == {"dropped": "orders"}


async def test_expired_token_is_refused(server: SophiaServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with anyio.fail_after(5):
        async with connect(server, principal=ALICE) as client:
            token = await _ask(client)
            real_time = time.time
            monkeypatch.setattr(time, "time", lambda: real_time() + TOKEN_TTL_S + 1)
            late = await client.call("demo_drop", {"table": "orders", "confirmation_token": token})
    assert "expired" in error_data(late)["refused"]


async def test_unknown_token_is_refused(server: SophiaServer) -> None:
    with anyio.fail_after(5):
        async with connect(server, principal=ALICE) as client:
            forged = await client.call("demo_drop", {"table": "orders", "confirmation_token": "made-up"})
    assert "unknown token" in error_data(forged)["refused"]


async def test_token_is_bound_to_the_plan(server: SophiaServer) -> None:
    with anyio.fail_after(5):
        async with connect(server, principal=ALICE) as client:
            token = await _ask(client)
            STATE["plan"] = 2  # the system changed between preview and apply
            stale = await client.call("demo_drop", {"table": "orders", "confirmation_token": token})
    assert "changed" in error_data(stale)["refused"]
    assert "plan v2" in error_data(stale)["preview"]["summary"]


async def test_confirmation_by_elicitation(server: SophiaServer) -> None:
    with anyio.fail_after(5):
        async with connect(server, principal=ALICE, elicitation="accept") as client:
            accepted = await client.call("demo_drop", {"table": "orders"})
        async with connect(server, principal=ALICE, elicitation="decline") as client:
            declined = await client.call("demo_drop", {"table": "customers"})
            after = await client.call("demo_echo", {"text": "x"})
    assert structured(accepted) == {"dropped": "orders"}
    assert error_code(declined) == "forbidden"
    assert "declined" in declined.content[0].text  # type: ignore[union-attr]
    assert error_code(after) is None


async def test_conditional_confirmation(server: SophiaServer) -> None:
    with anyio.fail_after(5):
        async with connect(server, principal=ALICE) as client:
            dev = await client.call("demo_deploy", {"target": "dev"})
            prod = await client.call("demo_deploy", {"target": "prod"})
    assert error_code(dev) is None
    assert error_code(prod) == "confirmation_required"


# -- audit -------------------------------------------------------------------------------------


async def test_every_call_is_audited_with_argument_shapes_only(server: SophiaServer) -> None:
    with anyio.fail_after(5):
        async with connect(server, principal=ADMIN) as client:
            await client.call("demo_echo", {"text": "hello"})
            await client.call("demo_admin", {"login_password": "hunter2-secret"})
            await client.call("demo_fail", {"kind": "config"})
            await client.call("demo_drop", {"table": "orders"}, principal=VIEWER)
    records = server.audit.records()
    assert [(r["tool"], r["outcome"], r["error_code"]) for r in records] == [
        ("demo_echo", "ok", None),
        ("demo_admin", "ok", None),
        ("demo_fail", "error", "not_configured"),
        ("demo_drop", "denied", "forbidden"),
    ]
    assert records[0]["arguments"] == '{"text":"string"}'
    assert records[3]["principal"] == "vera"
    assert all(r["server"] == "demo" and r["correlation_id"] for r in records)
    dump = repr(records)
    assert "hunter2" not in dump and "hello" not in dump
    assert server.audit.verify().intact


async def test_audit_values_when_allowed_but_never_secrets() -> None:
    server = build_server(DemoSettings(audit_values=True))
    with anyio.fail_after(5):
        async with connect(server, principal=ADMIN) as client:
            await client.call("demo_echo", {"text": "visible"})
            await client.call("demo_admin", {"login_password": "hunter2-secret"})
    dump = repr(server.audit.records())
    assert "visible" in dump
    assert "hunter2" not in dump


async def test_secrets_never_reach_the_logs(server: SophiaServer, caplog: pytest.LogCaptureFixture) -> None:
    with anyio.fail_after(5), caplog.at_level(logging.DEBUG):
        async with connect(server, principal=ADMIN) as client:
            await client.call("demo_admin", {"login_password": "hunter2-secret"})
            await client.call("demo_fail", {"kind": "crash"})
    assert "hunter2" not in caplog.text
    assert "sekrit" not in caplog.text
    assert "demo_fail crashed" in caplog.text


async def test_resource_reads_know_the_principal_and_are_audited(server: SophiaServer) -> None:
    with anyio.fail_after(5):
        async with connect(server, principal=VIEWER) as client:
            read = await client.read_resource("demo://bob")
    assert read.contents[0].text == "hello bob, read by vera"  # type: ignore[union-attr]
    record = server.audit.records()[-1]
    assert (record["tool"], record["principal"], record["outcome"]) == ("resources/read", "vera", "ok")
