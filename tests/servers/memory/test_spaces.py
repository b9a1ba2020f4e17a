"""Memory spaces (issue 15.3): one person's memory is theirs alone; shared spaces follow their rules.

A property test drives random sequences of stores and reads by several users (of every role, as
local and token principals) over personal and shared spaces, through the in-memory SDK client on
both store backends, against a model of who stored what where. It checks: no read ever returns
another person's personal memory (by id, list or search); a shared-space read is allowed exactly
when the rule allows it and then sees exactly that space; a write the rules refuse answers
`forbidden` and stores nothing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sophia_memory.settings import MemoryServerSettings
from sophia_memory.spaces import SpaceRule
from sophia_memory.tools import build_server
from sophia_shared.server import Principal, Role
from sophia_shared.testing import SophiaTestClient, connect, error_code, structured

pytestmark = pytest.mark.usefixtures("list_every_tool")

USERS = [
    Principal("alice", Role.DEVELOPER, kind="local"),
    Principal("alice", Role.DEVELOPER, kind="token", credential="laptop"),  # the same person over HTTP
    Principal("bob", Role.DEVELOPER, kind="token", credential="bob-ci"),
    Principal("vera", Role.VIEWER, kind="token", credential="vera"),
    Principal("dave", Role.DEVOPS, kind="local"),
    Principal("ann", Role.ADMIN, kind="token", credential="ann"),
]
# team: the default rule; ops: a stricter one from settings.
SPACES = {"team": SpaceRule(), "ops": SpaceRule(read="devops", write="admin")}
SPACE_NAMES = ["personal", *SPACES]
WRITE_ROLE = Role.DEVELOPER  # memory_store's own minimum role


@dataclass
class Model:
    """What the store must hold: id → (owner's user name, space), per space the ids in it."""

    where: dict[str, tuple[str, str]] = field(default_factory=dict)
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def tenant_ids(self, user: str, space: str) -> set[str]:
        return {i for i, (owner, s) in self.where.items() if s == space and (space != "personal" or owner == user)}


def may_read(who: Principal, space: str) -> bool:
    return space == "personal" or who.role >= Role.parse(SPACES[space].read)


def may_write(who: Principal, space: str) -> bool:
    needed = WRITE_ROLE if space == "personal" else max(WRITE_ROLE, Role.parse(SPACES[space].write))
    return who.role >= needed


Step = tuple[int, str, str, int]  # (user index, operation, space, pick of a stored id)
STEPS = st.lists(
    st.tuples(
        st.integers(0, len(USERS) - 1),
        st.sampled_from(["store", "get", "list", "search"]),
        st.sampled_from(SPACE_NAMES),
        st.integers(0, 1_000),
    ),
    min_size=1,
    max_size=10,
)


async def _step(client: SophiaTestClient, model: Model, step: Step) -> None:
    who, op, space, pick = USERS[step[0]], step[1], step[2], step[3]
    if op == "store":
        n = next(model.counter)
        text = f"note {n} by {who.name} in {space}"
        result = await client.call("memory_store", {"text": text, "space": space, "dedupe": False}, principal=who)
        if may_write(who, space):
            memory = structured(result)["memory"]
            assert (memory["space"], result.is_error) == (space, False)
            model.where[memory["id"]] = (who.name, space)
        else:
            assert error_code(result) == "forbidden", result.content
        return
    if not may_read(who, space):
        args: dict[str, Any] = {"space": space, **({"query": "note"} if op == "search" else {})}
        tool = {"get": "memory_get", "list": "memory_list", "search": "memory_search"}[op]
        if op == "get":
            args["id"] = next(iter(model.where), "m-none")
        assert error_code(await client.call(tool, args, principal=who)) == "forbidden"
        return
    visible = model.tenant_ids(who.name, space)
    if op == "get" and model.where:
        ids = sorted(model.where)
        target = ids[pick % len(ids)]
        result = await client.call("memory_get", {"id": target, "space": space}, principal=who)
        if target in visible:
            assert structured(result)["memory"]["id"] == target
        else:
            assert error_code(result) == "not_found", result.content  # another person's: not even its existence
    elif op == "list":
        result = await client.call("memory_list", {"space": space, "limit": 200}, principal=who)
        assert {m["id"] for m in structured(result)["items"]} == visible
    elif op == "search":
        result = await client.call(
            "memory_search", {"query": f"note by {who.name}", "space": space, "mode": "text", "k": 50}, principal=who
        )
        assert {h["memory"]["id"] for h in structured(result)["hits"]} <= visible


@pytest.mark.anyio
async def test_spaces_hold_for_every_user_and_rule(server_settings: MemoryServerSettings) -> None:
    server = build_server(server_settings.model_copy(update={"spaces": SPACES}))
    model = Model()
    async with connect(server, principal=USERS[0]) as client:

        @settings(max_examples=30, deadline=None, database=None)
        @given(steps=STEPS)
        def run(steps: list[Step]) -> None:
            async def steps_in_order() -> None:
                with anyio.fail_after(60):
                    for step in steps:
                        await _step(client, model, step)

            portal.call(steps_in_order)

        # Hypothesis drives the examples synchronously; each one runs on this test's event loop.
        async with anyio.from_thread.BlockingPortal() as portal:
            await anyio.to_thread.run_sync(run)
    # Every person's memory was only ever read back by that person (the model checks each read).
    assert {owner for owner, space in model.where.values() if space == "personal"} <= {u.name for u in USERS}


@pytest.mark.anyio
async def test_viewer_reads_own_and_shared_but_writes_neither(server_settings: MemoryServerSettings) -> None:
    server = build_server(server_settings)
    vera = Principal("vera", Role.VIEWER, kind="token", credential="vera")
    with anyio.fail_after(60):
        async with connect(server, principal=USERS[0]) as client:
            shared = structured(await client.call("memory_store", {"text": "deploys freeze on Fridays",
                                                                   "space": "team"}))["memory"]
            found = structured(await client.call("memory_search", {"query": "deploy freeze", "space": "team"},
                                                 principal=vera))["hits"]
            own = await client.call("memory_list", {}, principal=vera)
            write = await client.call("memory_store", {"text": "x", "space": "team"}, principal=vera)
            unknown = await client.call("memory_list", {"space": "nope"}, principal=vera)
            mixed = await client.call("memory_list", {"space": "team", "tenant": "bob"}, principal=USERS[5])
    assert shared["tenant"] == "space:team" and [h["memory"]["id"] for h in found] == [shared["id"]]
    assert structured(own)["items"] == []
    assert error_code(write) == "forbidden"
    assert error_code(unknown) == error_code(mixed) == "invalid_argument"


@pytest.mark.anyio
async def test_a_principal_named_like_a_space_has_no_personal_space(server_settings: MemoryServerSettings) -> None:
    server = build_server(server_settings)
    squatter = Principal("space:team", Role.ADMIN, kind="jwt")  # a JWT subject: not checked as a user name
    with anyio.fail_after(60):
        async with connect(server, principal=USERS[0]) as client:
            await client.call("memory_store", {"text": "team note", "space": "team"})
            listed = await client.call("memory_list", {}, principal=squatter)
            named = await client.call("memory_list", {"tenant": "space:team"}, principal=USERS[5])
    assert error_code(listed) == "forbidden"
    assert error_code(named) == "invalid_argument"


def test_space_settings_are_checked_at_start() -> None:
    with pytest.raises(ValueError, match="write role"):
        SpaceRule(write="viewer")
    with pytest.raises(ValueError, match="bad space name"):
        MemoryServerSettings(spaces={"personal": SpaceRule()})
