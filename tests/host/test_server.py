"""The host's request path and forwarding, through the SDK client in memory to the host, which
talks to real child server processes over stdio."""

from __future__ import annotations

import json
from typing import Any, cast

import anyio
import pytest
from mcp.client import Client
from mcp.types import ElicitResult, RequestParamsMeta
from sophia_host.children import State
from sophia_host.fastpath import StdioEdge
from sophia_shared.approvals import ApprovalStore
from sophia_shared.audit import AuditLog, AuditUnavailable, AuditWriter
from sophia_shared.server import PRINCIPAL_META_KEY, Principal, Role
from sophia_shared.testing import connect, error_code, error_data, error_of, structured

from .conftest import child_entry, ready, running_host, settle

pytestmark = pytest.mark.anyio

ALICE = Principal("alice", Role.DEVELOPER, kind="token")
MODERN_ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


async def test_union_forwarding_principal_errors_and_audit() -> None:
    async with running_host([child_entry("alpha"), child_entry("beta")]) as host, \
            connect(host, principal=ALICE) as client:
        names = {t.name for t in await client.list_tools()}
        assert {"sophia_find_tools", "alpha_echo", "beta_echo", "alpha_delete", "beta_slow"} <= names
        listed = {t.name: t for t in await client.list_tools()}
        # The child's schema, annotations and role travel unchanged.
        assert listed["alpha_delete"].annotations is not None
        assert listed["alpha_delete"].annotations.destructive_hint is True
        assert (listed["alpha_echo"].meta or {})["sophia"]["role"] == "viewer"
        assert listed["alpha_echo"].output_schema is not None

        result = await client.call("alpha_echo", {"text": "hi"})
        echoed = structured(result)
        # The child saw the caller, not the host's local user: its audit names the real user.
        assert (echoed["text"], echoed["principal"], echoed["role"]) == ("hi", "alice", "developer")
        assert echoed["pid"] == host.children[0].process.pid  # type: ignore[union-attr]

        missing = await client.call("beta_echo", {"text": "missing"})
        assert error_code(missing) == "not_found"
        bad = await client.call("alpha_echo", {"text": 5})
        assert error_code(bad) == "invalid_argument"
        unknown = await client.call("gamma_echo", {"text": "x"})
        assert error_code(unknown) == "not_found"

    records = list(AuditLog().records())
    by_server = {(r["server"], r["tool"], r["principal"]) for r in records}
    assert ("sophia", "alpha_echo", "alice") in by_server
    assert ("alpha", "alpha_echo", "alice") in by_server
    correlation = {r["server"]: r["correlation_id"] for r in records
                   if r["tool"] == "alpha_echo" and r["outcome"] == "ok"}
    assert correlation["sophia"] == correlation["alpha"] == echoed["correlation_id"]
    assert AuditLog().verify().intact


async def test_roles_and_read_only_apply_at_the_edge() -> None:
    async with running_host([child_entry("alpha")]) as host:
        viewer = Principal("val", Role.VIEWER, kind="token")
        async with connect(host, principal=viewer) as client:
            denied = await client.call("alpha_delete", {"item": "x"})
            assert error_code(denied) == "forbidden"
            assert "developer" in error_of(denied)["message"]
        host.read_only = True
        async with connect(host, principal=ALICE) as client:
            names = {t.name for t in await client.list_tools()}
            assert "alpha_echo" in names and "alpha_delete" not in names
            hidden = await client.call("alpha_delete", {"item": "x"})
            assert error_code(hidden) == "forbidden"
    # The refused calls never reached the child: only the host recorded them.
    records = [r for r in AuditLog().records() if r["tool"] == "alpha_delete"]
    assert {r["server"] for r in records} == {"sophia"}
    assert all(r["outcome"] == "denied" for r in records)


async def test_the_host_lists_a_role_only_the_arguments_it_may_pass() -> None:
    async with running_host([child_entry("alpha")]) as host:
        shown = {}
        for who in (ALICE, Principal("ada", Role.ADMIN, kind="token")):
            async with connect(host, principal=who) as client:
                echo = next(t for t in await client.list_tools() if t.name == "alpha_echo")
                shown[who.role] = set(echo.input_schema["properties"])
                assert "args" not in (echo.meta or {})["sophia"]
                tagged = await client.call("alpha_echo", {"text": "hi", "tag": "t"})
                assert (error_code(tagged) is None) is (who.role is Role.ADMIN)
    assert shown == {Role.DEVELOPER: {"text"}, Role.ADMIN: {"text", "tag"}}


async def test_confirmation_by_token_passes_through() -> None:
    async with running_host([child_entry("alpha")]) as host, connect(host, principal=ALICE) as client:
        first = await client.call("alpha_delete", {"item": "db"})
        assert error_code(first) == "confirmation_required"
        token = error_data(first)["confirmation_token"]
        assert "alpha_delete" in error_data(first)["preview"]["summary"]
        changed = await client.call("alpha_delete", {"item": "other", "confirmation_token": token})
        assert error_code(changed) == "confirmation_required"
        assert "changed" in error_data(changed)["refused"]
        first = await client.call("alpha_delete", {"item": "db"})
        token = error_data(first)["confirmation_token"]
        done = await client.call("alpha_delete", {"item": "db", "confirmation_token": token})
        assert not done.is_error
        assert structured(done)["result"] == "deleted db for alice"
        again = await client.call("alpha_delete", {"item": "db", "confirmation_token": token})
        assert "already used" in error_data(again)["refused"]


@pytest.mark.usefixtures("approval_mode")
async def test_a_pending_approval_passes_through_and_a_prompt_still_asks() -> None:
    other_token = Principal("alice", Role.DEVELOPER, kind="token", credential="ci")
    async with running_host([child_entry("alpha")]) as host:
        async with connect(host, principal=ALICE) as client:
            first = await client.call("alpha_delete", {"item": "db"})
            approval = error_data(first)["approval_id"]
            ApprovalStore.from_settings().decide(approval, approve=True, by="the-person")
            elsewhere = await client.call("alpha_delete", {"item": "db"}, principal=other_token)
            done = await client.call("alpha_delete", {"item": "db"})
            again = await client.call("alpha_delete", {"item": "db"})
        async with connect(host, principal=ALICE, elicitation="accept") as client:
            prompted = await client.call("alpha_delete", {"item": "t"})
    assert error_code(first) == error_code(elsewhere) == error_code(again) == "approval_required"
    assert "confirmation_token" not in json.dumps(error_of(first))
    assert structured(done)["result"] == "deleted db for alice"
    assert structured(prompted)["result"] == "deleted t for alice"
    outcomes = [(r["server"], r["outcome"]) for r in AuditLog().records() if r["tool"] == "alpha_delete"]
    assert outcomes.count(("sophia", "pending")) == outcomes.count(("alpha", "pending")) == 3
    assert outcomes.count(("sophia", "ok")) == 2


@pytest.mark.parametrize("answer", ["accept", "decline"])
async def test_confirmation_by_elicitation_at_the_host_edge(answer: str) -> None:
    async with running_host([child_entry("alpha")]) as host, connect(host, principal=ALICE,
                                                                     elicitation=answer) as client:  # type: ignore[arg-type]
        result = await client.call("alpha_delete", {"item": "db"})
        if answer == "accept":
            assert not result.is_error
            assert structured(result)["result"] == "deleted db for alice"
        else:
            assert error_code(result) == "forbidden"
            assert "declined" in error_of(result)["message"]


async def test_confirmation_by_elicitation_over_a_handshake_era_session() -> None:
    asked: list[str] = []

    async def answer(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"confirm": True})

    async with running_host([child_entry("alpha")]) as host:
        host.trust_meta_principal = True
        async with Client(host, mode="legacy", elicitation_callback=answer) as client:
            meta = cast(RequestParamsMeta, {PRINCIPAL_META_KEY: ALICE.as_meta()})
            result = await client.call_tool("alpha_delete", {"item": "db"}, meta=meta)
            assert not result.is_error, result
            assert asked and "alpha_delete" in asked[0]


async def test_progress_is_forwarded() -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, total, message))

    async with running_host([child_entry("alpha")]) as host, connect(host, principal=ALICE) as client:
        result = await client.call("alpha_slow", {"steps": 3}, progress_callback=progress)
        assert structured(result)["result"] == "3 steps"
    assert seen == [(1.0, 3.0, "step 1"), (2.0, 3.0, "step 2"), (3.0, 3.0, "step 3")]


async def test_a_hung_call_ends_with_timeout_and_the_child_keeps_serving() -> None:
    async with running_host([child_entry("alpha")], call_timeout_s=2.0) as host, connect(host, principal=ALICE) as c:
        hung = await c.call("alpha_hang", {})
        assert error_code(hung) == "timeout"
        assert not (await c.call("alpha_echo", {"text": "after"})).is_error
        assert host.children[0].restarts == 0
        # The timed-out call was cancelled in the child too, not left running there.
        counts = [structured(await c.call("alpha_cancelled", {}))["result"] for _ in range(1)]
        for _ in range(200):
            if counts[-1] == 1:
                break
            counts.append(structured(await c.call("alpha_cancelled", {}))["result"])
        assert counts[-1] == 1


async def test_cancellation_reaches_the_child() -> None:
    async with running_host([child_entry("alpha")]) as host, connect(host, principal=ALICE) as client:
        with anyio.move_on_after(0.5):
            await client.call("alpha_hang", {})
        # The caller gave up; the host cancels its call to the child, whose tool sees the cancellation.
        # Asked a bounded number of times: the cancel notification and this call race on the pipe.
        counts = []
        for _ in range(200):
            counts.append(structured(await client.call("alpha_cancelled", {}))["result"])
            if counts[-1] == 1:
                break
        assert counts[-1] == 1
        assert host.children[0].restarts == 0


async def test_tools_list_changed_is_forwarded() -> None:
    async with running_host([child_entry("alpha")]) as host, Client(host) as client:
        async with client.listen(tools_list_changed=True) as subscription:
            grow = await client.call_tool("alpha_grow", {})
            assert not grow.is_error
            with anyio.fail_after(30):
                async for _event in subscription:
                    break
        names = {t.name for t in (await client.list_tools(cache_mode="bypass")).tools}
        assert "alpha_grown" in names
        assert not (await client.call_tool("alpha_grown", {})).is_error


async def test_name_collision_refuses_naming_both() -> None:
    async with running_host([child_entry("one", server="alpha"), child_entry("two", server="alpha")]) as host:
        with anyio.fail_after(60):
            await host.fatal_event.wait()
        assert host.fatal is not None
        assert "one" in host.fatal and "two" in host.fatal
        await settle(host, lambda: any(c.state is State.failed for c in host.children))
        assert sum(ready(c) for c in host.children) == 1


async def test_exposed_toolsets_and_find_tools() -> None:
    async with running_host([child_entry("alpha"), child_entry("beta")], toolsets=["alpha"]) as host:
        async with connect(host, principal=ALICE) as client:
            names = {t.name for t in await client.list_tools()}
            assert "alpha_echo" in names and "sophia_find_tools" in names
            assert not any(n.startswith("beta_") for n in names)
            # Unlisted tools are still callable, and search finds them.
            assert not (await client.call("beta_echo", {"text": "x"})).is_error
            found = structured(await client.call("sophia_find_tools", {"query": "delete an item", "k": 3}))
            assert found["ranking"] == "keyword"
            top = {t["name"]: t for t in found["tools"]}
            assert {"alpha_delete", "beta_delete"} <= set(top)
            assert top["alpha_delete"]["listed"] and not top["beta_delete"]["listed"]
        viewer = Principal("val", Role.VIEWER, kind="token")
        async with connect(host, principal=viewer) as client:
            found = structured(await client.call("sophia_find_tools", {"query": "delete an item"}))
            # A viewer is not shown tools it may not call.
            assert not any(t["name"].endswith("_delete") for t in found["tools"])


async def test_unknown_principal_meta_is_ignored_without_trust() -> None:
    async with running_host([child_entry("alpha")]) as host:
        assert not host.trust_meta_principal
        async with Client(host) as client:
            meta = cast(RequestParamsMeta, {PRINCIPAL_META_KEY: {"name": "mallory", "role": "admin"}})
            result = await client.call_tool("alpha_echo", {"text": "x"}, meta=meta)
            assert structured(result)["principal"] != "mallory"
        assert all(ready(c) for c in host.children)


async def test_the_host_forwards_nothing_while_its_audit_cannot_be_written(monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_host([child_entry("alpha")]) as host:
        # A stand-in for a writer whose last commit failed (its ready() is AuditWriter's own health check).
        def unwritable(self: AuditWriter) -> None:
            raise AuditUnavailable("the last commit failed (stand-in)")

        monkeypatch.setattr(AuditWriter, "ready", unwritable)
        async with connect(host, principal=ALICE) as client:
            refused = await client.call("alpha_echo", {"text": "x"})
        assert error_code(refused) == "unavailable"
        assert error_of(refused)["message"].startswith("audit unavailable")
        lines: list[bytes] = []
        edge = StdioEdge(host.fast, lines.append)
        edge.modern = True
        request = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": "alpha_echo", "arguments": {"text": "x"}, "_meta": MODERN_ENVELOPE}}
        assert edge.take(json.dumps(request).encode())
        with anyio.fail_after(30):
            while not lines:
                await anyio.sleep(0.01)
        answer = json.loads(lines[0])["result"]
        assert answer["_meta"]["sophia/error"]["code"] == "unavailable" and host.fast.calls == 1
    # Neither lane reached the child: it has no record of either call.
    # (The host's own reads of the child's health are not calls: they are left out.)
    assert not [r for r in AuditLog().records() if r["server"] == "alpha" and r["tool"] != "resources/read"]
