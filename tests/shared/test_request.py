"""The one request path (request.py): its trust rule for `_meta`, one reading of results in both forms,
and an audit that fails closed. The lanes themselves are compared in tests/host/test_lanes.py."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.types import CallToolResult, TextContent
from shared.demo_server import DemoSettings, build_server
from sophia_shared.audit import AuditLog
from sophia_shared.auth import Principal, Role
from sophia_shared.errors import ErrorCode, LimitExceeded, Unavailable, error_code
from sophia_shared.request import (
    CORRELATION_META_KEY,
    PRINCIPAL_META_KEY,
    error_result,
    identify,
    text_chars,
)
from sophia_shared.server import SophiaServer
from sophia_shared.settings import ServerSettings
from sophia_shared.testing import connect, error_of, structured

pytestmark = pytest.mark.anyio

LOCAL = Principal("me", Role.DEVELOPER)
TOKEN = Principal("tina", Role.VIEWER, kind="token")
FORWARDED = {PRINCIPAL_META_KEY: {"name": "ada", "role": "admin", "kind": "host"}, CORRELATION_META_KEY: "0123abcd"}


def test_meta_counts_only_from_a_trusted_parent() -> None:
    principal, correlation = identify(FORWARDED, trusted=True, authenticated=None, local=LOCAL)
    assert (principal.name, principal.role, correlation) == ("ada", Role.ADMIN, "0123abcd")
    principal, correlation = identify(FORWARDED, trusted=False, authenticated=None, local=LOCAL)
    assert principal == LOCAL and correlation != "0123abcd" and len(correlation) == 16
    # A verified token names the caller even under a trusting parent; the parent's correlation id stays.
    principal, correlation = identify(FORWARDED, trusted=True, authenticated=TOKEN, local=LOCAL)
    assert (principal, correlation) == (TOKEN, "0123abcd")


@pytest.mark.parametrize("meta", [
    None, [FORWARDED], "sophia/principal", 7, 1.5, True, {"a": [[{"b": None}]]},
    {PRINCIPAL_META_KEY: ["ada", "admin"], CORRELATION_META_KEY: ["x"]},
    {PRINCIPAL_META_KEY: {"name": "", "role": "admin"}, CORRELATION_META_KEY: ""},
    {PRINCIPAL_META_KEY: {"name": "ada", "role": "emperor"}, CORRELATION_META_KEY: "x" * 65},
])
def test_any_meta_shape_is_absent_when_it_is_not_a_forward(meta: Any) -> None:
    principal, correlation = identify(meta, trusted=True, authenticated=None, local=LOCAL)
    assert principal == LOCAL
    assert len(correlation) == 16 and correlation not in {"x" * 65, ""}


def test_both_result_forms_read_alike() -> None:
    error = error_result(LimitExceeded("too big", data={"limit": 3}), verbose=False)
    model = CallToolResult.model_validate(error)
    assert error_code(error) == error_code(model) == "limit_exceeded"
    assert error_of(model)["data"] == {"limit": 3}
    ok = CallToolResult(content=[TextContent(type="text", text="abc"), TextContent(type="text", text="de")])
    as_json = ok.model_dump(by_alias=True, mode="json", exclude_none=True)
    assert error_code(ok) is error_code(as_json) is None
    assert text_chars(ok) == text_chars(as_json) == 5
    # A failed result without Sophia's error block is `internal`, on both forms.
    bare = CallToolResult(content=[TextContent(type="text", text="boom")], is_error=True)
    assert error_code(bare) == error_code(bare.model_dump(by_alias=True, mode="json")) == ErrorCode.INTERNAL
    assert text_chars({"content": "junk"}) == text_chars({"content": [{"text": 5}, 7]}) == 0


def _counting_server(audit: AuditLog) -> tuple[SophiaServer, dict[str, int]]:
    server = SophiaServer("counting", settings=ServerSettings(), audit=audit)
    runs = {"count": 0}

    @server.tool(role=Role.VIEWER, read_only=False, destructive=False, idempotent=False, open_world=False)
    async def counting_bump() -> int:
        """Count one run."""
        runs["count"] += 1
        return runs["count"]

    return server, runs


async def test_a_call_whose_record_cannot_be_written_answers_unavailable(
    sophia_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    audit = AuditLog(home=sophia_home)
    server, runs = _counting_server(audit)
    # The head file cannot be written (as on a full disk): every append fails and rolls back.
    (sophia_home / "audit.head").mkdir()
    with anyio.fail_after(10), caplog.at_level(logging.ERROR):
        async with connect(server) as client:
            refused = await client.call("counting_bump")
    error = error_of(refused)
    assert error["code"] == "unavailable" and error["message"].startswith("audit unavailable")
    if runs["count"]:
        # It ran before the append failed (an audit log without a probe): the answer is withheld, and said so.
        assert "audit append failed for counting.counting_bump" in caplog.text
    assert audit.records() == []
    # Once the log can be written again, calls answer and are recorded.
    (sophia_home / "audit.head").rmdir()
    with anyio.fail_after(10):
        async with connect(server) as client:
            assert structured(await client.call("counting_bump"))["result"] == runs["count"]
    assert [r["outcome"] for r in audit.records()] == ["ok"]


class _UnwritableAudit(AuditLog):
    """A stand-in for an audit log that knows, before a call, that it cannot take a record."""

    def __init__(self, home: Path, failure: Exception):
        super().__init__(home=home)
        self.failure = failure

    def ready(self) -> None:
        raise self.failure


@pytest.mark.parametrize("failure", [
    Unavailable("audit unavailable: the disk is full"), OSError(28, "No space left on device"),
])
async def test_nothing_runs_while_the_audit_cannot_be_written(sophia_home: Path, failure: Exception) -> None:
    audit = _UnwritableAudit(sophia_home, failure)
    server, runs = _counting_server(audit)
    with anyio.fail_after(10):
        async with connect(server) as client:
            refused = await client.call("counting_bump")
    error = error_of(refused)
    assert error["code"] == "unavailable" and error["message"].startswith("audit unavailable")
    assert runs["count"] == 0


async def test_a_denied_call_is_checked_before_the_audit(sophia_home: Path) -> None:
    server = build_server(DemoSettings())
    with anyio.fail_after(10):
        async with connect(server, principal=Principal("vera", Role.VIEWER)) as client:
            denied = await client.call("demo_write", {"value": 1})
    assert error_of(denied)["code"] == "forbidden"
    assert [(r["outcome"], r["error_code"]) for r in server.audit.records()] == [("denied", "forbidden")]
