"""Pending approvals (issue 15.6): the store on both backends, and the request path around it.

Through the in-memory SDK client (no elicitation), a destructive call answers `approval_required`
with a short id and a preview, and nothing the model could use to approve it; after the person's
decision (the store's `decide`, what `sophia approve` calls) the same principal's identical call
runs exactly once; another argument, plan or principal does not match; a denial is answered
`forbidden`; approvals expire; each step is an audit record with a stable outcome and code.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from shared.demo_server import STATE, DemoSettings, build_server
from sophia_shared.approvals import ApprovalStore, Binding, Status
from sophia_shared.audit import AuditLog
from sophia_shared.auth import Principal, Role
from sophia_shared.errors import Conflict, NotFound
from sophia_shared.server import SophiaServer
from sophia_shared.testing import connect, error_code, error_data, structured

ALICE = Principal("alice", Role.DEVOPS, kind="token", credential="laptop")
ALICE_CI = Principal("alice", Role.DEVOPS, kind="token", credential="ci")  # the same person, another token
BINDING = Binding("alice", "k-alice", "demo", "demo_drop", "d1")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, sophia_home: Path) -> Iterator[ApprovalStore]:
    if request.param == "sqlite":
        yield ApprovalStore(path=sophia_home / "approvals.db", ttl_s=60)
    else:
        factory: Callable[[str], str] = request.getfixturevalue("postgres_database_factory")
        yield ApprovalStore(dsn=factory(request.node.name), ttl_s=60)


def test_a_decided_approval_is_spent_by_one_call(store: ApprovalStore) -> None:
    first = store.request(BINDING, "drop orders", {"table": "orders"})
    again = store.request(BINDING, "drop orders", {"table": "orders"})
    assert first.id == again.id and len(first.id) == 8 and first.status is Status.PENDING
    assert store.settle(BINDING) is None  # nothing decided yet
    assert [a.id for a in store.list()] == [first.id]
    bob = Binding("bob", "k-bob", "demo", "demo_drop", "d1")
    for other in (Binding("alice", "k-alice", "demo", "demo_drop", "d2"), bob):
        assert store.request(other, "x", {}).id != first.id
    decided = store.decide(first.id.upper(), approve=True, by="ops")
    assert (decided.status, decided.decided_by) == (Status.APPROVED, "ops")
    with pytest.raises(Conflict):
        store.decide(first.id, approve=False, by="ops")
    assert store.settle(Binding("bob", "k-bob", "demo", "demo_drop", "d1")) is None  # not bob's approval
    spent = store.settle(BINDING)
    assert spent is not None and spent.status is Status.USED
    assert store.settle(BINDING) is None
    with pytest.raises(NotFound):
        store.get("nope")
    assert store.get(first.id).as_dict()["status"] == "used"


def test_a_denial_refuses_the_next_call_once(store: ApprovalStore) -> None:
    pending = store.request(BINDING, "drop orders", {})
    store.decide(pending.id, approve=False, by="ops")
    refused = store.settle(BINDING)
    assert refused is not None and refused.status is Status.REFUSED
    assert store.settle(BINDING) is None
    assert store.request(BINDING, "drop orders", {}).id != pending.id  # asking again is a new question


def test_approvals_expire(store: ApprovalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    late = store.request(BINDING, "drop orders", {})
    early = store.request(Binding("alice", "k-alice", "demo", "demo_drop", "d9"), "x", {})
    store.decide(early.id, approve=True, by="ops")
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 61)
    with pytest.raises(Conflict, match="expired"):
        store.decide(late.id, approve=True, by="ops")
    assert store.settle(Binding("alice", "k-alice", "demo", "demo_drop", "d9")) is None
    assert store.list() == []
    assert store.purge(older_than_s=0) == 2


def test_racing_repeats_run_once(store: ApprovalStore) -> None:
    store.decide(store.request(BINDING, "drop orders", {}).id, approve=True, by="ops")
    results: list[Any] = []
    barrier = threading.Barrier(4)

    def repeat() -> None:
        barrier.wait(timeout=10)
        results.append(store.settle(BINDING))

    threads = [threading.Thread(target=repeat) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(r is not None for r in results) == [False, False, False, True]


# -- the request path ------------------------------------------------------------------------------


@pytest.fixture
def server(approval_mode: None) -> SophiaServer:
    STATE["plan"] = 1
    built: SophiaServer = build_server(DemoSettings())
    return built


def _approve(approval_id: str, approve: bool = True) -> None:
    ApprovalStore.from_settings().decide(approval_id, approve=approve, by="the-person")


@pytest.mark.anyio
async def test_the_model_cannot_approve_its_own_call(server: SophiaServer) -> None:
    with anyio.fail_after(10):
        async with connect(server, principal=ALICE) as client:
            first = await client.call("demo_drop", {"table": "orders"})
            data = error_data(first)
            text = first.content[0].text  # type: ignore[union-attr]
            forged = await client.call("demo_drop", {"table": "orders", "confirmation_token": data["approval_id"]})
            # Approved out of band: the identical call runs once.
            _approve(data["approval_id"])
            other_args = await client.call("demo_drop", {"table": "customers"})
            other_token = await client.call("demo_drop", {"table": "orders"}, principal=ALICE_CI)
            done = await client.call("demo_drop", {"table": "orders"})
            again = await client.call("demo_drop", {"table": "orders"})
    assert error_code(first) == error_code(forged) == "approval_required"
    assert data["status"] == "pending" and data["preview"]["summary"].startswith("drop table orders")
    assert "confirmation_token" not in data and f"sophia approve {data['approval_id']}" in text
    assert error_data(forged)["approval_id"] == data["approval_id"]  # a made-up token changes nothing
    assert error_data(other_args)["approval_id"] != data["approval_id"]
    assert error_data(other_token)["approval_id"] != data["approval_id"]
    assert structured(done) == {"dropped": "orders"}
    assert error_code(again) == "approval_required" and error_data(again)["approval_id"] != data["approval_id"]
    outcomes = [(r["outcome"], r["error_code"]) for r in AuditLog().records() if r["tool"] == "demo_drop"]
    assert outcomes == [("pending", "approval_required")] * 4 + [("ok", None), ("pending", "approval_required")]


@pytest.mark.anyio
async def test_an_approval_is_bound_to_the_plan_and_a_denial_refuses(server: SophiaServer) -> None:
    with anyio.fail_after(10):
        async with connect(server, principal=ALICE) as client:
            asked = error_data(await client.call("demo_drop", {"table": "orders"}))["approval_id"]
            _approve(asked)
            STATE["plan"] = 2  # the system changed between the preview and the repeat
            stale = await client.call("demo_drop", {"table": "orders"})
            _approve(error_data(stale)["approval_id"], approve=False)
            denied = await client.call("demo_drop", {"table": "orders"})
            after = await client.call("demo_drop", {"table": "orders"})
    assert error_code(stale) == "approval_required" and "plan v2" in error_data(stale)["preview"]["summary"]
    assert error_code(denied) == "forbidden" and error_data(denied)["status"] == "denied"
    assert "the-person denied" in denied.content[0].text  # type: ignore[union-attr]
    assert error_code(after) == "approval_required"
    assert [r["outcome"] for r in AuditLog().records() if r["tool"] == "demo_drop"] == [
        "pending", "pending", "denied", "pending"]


@pytest.mark.anyio
async def test_elicitation_capable_clients_are_still_asked(server: SophiaServer) -> None:
    with anyio.fail_after(10):
        async with connect(server, principal=ALICE, elicitation="accept") as client:
            accepted = await client.call("demo_drop", {"table": "orders"})
    assert structured(accepted) == {"dropped": "orders"}
    assert ApprovalStore.from_settings().list(everything=True) == []
