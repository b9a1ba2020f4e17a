"""`sophia_ask` on the host: the agent runs as the caller, through the host's request path, over real
child processes. The offline router is the agent's brain here (deterministic); the model-driven loop
has its own tests (tests/agent) and its real-model test (test_local_llm)."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sophia_host.ask_tool import ASK_TOOL, AgentRuns, AskResult, AskStep, HostToolSession
from sophia_host.dashboard.api import runs
from sophia_host.dashboard.core import Dashboard
from sophia_shared.approvals import ApprovalStore
from sophia_shared.audit import AuditLog
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect, structured

from .conftest import child_entry, running_host

pytestmark = pytest.mark.anyio

ALICE = Principal("alice", Role.DEVELOPER, kind="token")
VIC = Principal("vic", Role.VIEWER, kind="token")


@pytest.fixture(autouse=True)
def keyword_router(monkeypatch: pytest.MonkeyPatch) -> None:
    """The router without the MiniLM: these tests are about the path of the calls, not the ranking."""
    monkeypatch.setenv("SOPHIA_ROUTER_SEMANTIC", "false")


def ask(request: str) -> dict[str, Any]:
    return {"request": request, "offline": True}


def records(tool: str) -> list[dict[str, Any]]:
    return [r for r in AuditLog().records() if r["tool"] == tool]


async def test_the_agent_calls_as_the_caller_under_the_asks_correlation_id() -> None:
    async with running_host([child_entry("alpha")]) as host, connect(host, principal=ALICE) as client:
        assert ASK_TOOL in {t.name for t in await client.list_tools()}
        done = structured(await client.call(ASK_TOOL, ask('Echo the text "hello"')))
        [run] = host.agent_runs.recent(10)  # what the dashboard's agent-runs panel shows
    assert done["end_reason"] == "answered", done
    assert done["steps"] == [{"tool": "alpha_echo", "ok": True, "error_code": None}]
    assert '"principal": "alice"' in done["answer"] and '"text": "hello"' in done["answer"]
    [asked] = records(ASK_TOOL)
    echoed = records("alpha_echo")
    # The host's record and the child's, both the caller's, both tied to the ask.
    assert {(r["server"], r["principal"], r["outcome"]) for r in echoed} == {("sophia", "alice", "ok"),
                                                                          ("alpha", "alice", "ok")}
    assert {r["correlation_id"] for r in echoed} == {asked["correlation_id"]}
    assert asked["principal"] == "alice" and asked["outcome"] == "ok"
    assert (run["principal"], run["status"], run["question"], run["correlation_id"]) == (
        "alice", "answered", 'Echo the text "hello"', asked["correlation_id"])
    assert run["steps"] == [{"tool": "alpha_echo", "outcome": "ok"}]


async def test_a_viewer_asking_for_a_developer_tool_gets_no_call_of_it() -> None:
    async with running_host([child_entry("alpha")]) as host, connect(host, principal=VIC) as client:
        done = structured(await client.call(ASK_TOOL, ask('Delete the item "db"')))
    assert "alpha_delete" not in {s["tool"] for s in done["steps"]}
    assert records("alpha_delete") == []


@pytest.mark.usefixtures("approval_mode")
async def test_a_destructive_step_waits_for_the_person_and_then_runs_once() -> None:
    async with running_host([child_entry("alpha")]) as host, connect(host, principal=ALICE) as client:
        first = structured(await client.call(ASK_TOOL, ask('Delete the item "db"')))
        assert first["end_reason"] == "approval_needed", first
        assert first["steps"] == [{"tool": "alpha_delete", "ok": False, "error_code": "approval_required"}]
        [approval] = first["approvals"]
        ApprovalStore.from_settings().decide(approval, approve=True, by="the-person")
        second = structured(await client.call(ASK_TOOL, ask('Delete the item "db"')))
        third = structured(await client.call(ASK_TOOL, ask('Delete the item "db"')))
    assert second["answer"] == '{"result": "deleted db for alice"}'
    assert third["end_reason"] == "approval_needed"  # the approval was for one run
    ran = [r for r in records("alpha_delete") if r["server"] == "alpha" and r["outcome"] == "ok"]
    assert len(ran) == 1


async def test_the_agent_neither_sees_nor_calls_sophia_ask() -> None:
    async with running_host([child_entry("alpha")]) as host:
        session = HostToolSession(host, ALICE)
        names = {t.tool.name for t in await session.list_tools()}
        refused = await session.call_tool(ASK_TOOL, ask("anything"))
    assert "alpha_echo" in names and ASK_TOOL not in names
    assert refused.is_error and refused.error_code == "forbidden"
    assert records(ASK_TOOL) == []


def _result(*steps: AskStep) -> AskResult:
    return AskResult(answer="done", end_reason="answered", steps=list(steps), approvals=[],
                     usage={"provider": None, "tokens_in": 0, "tokens_out": 0, "cost_usd": "0"})


async def test_the_runs_panel_shows_a_non_admin_only_their_own_runs_newest_first_and_bounded() -> None:
    kept = AgentRuns(keep=3)
    for who, question in ((VIC, "old"), (ALICE, "mine"), (VIC, "his"), (VIC, "key sk-live-0123456789abcdefABCDEF")):
        kept.add(who, question, _result(AskStep(tool="alpha_echo", ok=True)), time.time())

    async def shown(principal: Principal) -> list[str]:
        async def admit(_request: object) -> Principal:
            return principal

        dash = SimpleNamespace(host=SimpleNamespace(agent_runs=kept), admit=admit)
        response = await runs(cast(Dashboard, dash), cast(Any, None))
        return [r["question"] for r in json.loads(bytes(response.body))["runs"]]

    newest, *_ = await shown(Principal("ada", Role.ADMIN, kind="token"))
    assert newest == "key [REDACTED]"  # the question is redacted before it is kept
    assert len(await shown(Principal("ada", Role.ADMIN, kind="token"))) == 3  # "old" fell out
    assert await shown(ALICE) == ["mine"]
    assert len(await shown(VIC)) == 2 and "mine" not in await shown(VIC)

