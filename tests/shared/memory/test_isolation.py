"""Isolation property: random interleaved operations of several tenants never cross tenants.

Tenants share texts on purpose, so a near-duplicate merge into another tenant's memory, a search
hit from another tenant, or a get/update/delete of another tenant's id would all show up.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sophia_shared.memory import MemoryFilter, MemoryInput, MemoryNotFound, MemoryPatch, MemorySettings, open_store

TEXTS = [
    "The quarterly report is due on Friday.",
    "The quarterly report is due on Friday!",
    "Production database password rotation happens monthly.",
    "Customer Globex wants SSO before signing.",
    "Lunch order: two veggie burritos.",
]
TENANTS = ["t0", "t1", "t2"]
_examples = itertools.count()

# Every operation is (name, tenant, number, word): what number and word mean depends on the name.
Op = tuple[str, str, int, str]
op = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(TENANTS), st.integers(0, len(TEXTS) - 1), st.sampled_from(["a", "b"])),
    st.tuples(
        st.just("search"), st.sampled_from(TENANTS), st.integers(0, len(TEXTS) - 1), st.sampled_from(["hybrid", "text"])
    ),
    st.tuples(st.just("list"), st.sampled_from(TENANTS), st.integers(1, 4), st.just("")),
    st.tuples(st.sampled_from(["get", "update", "delete"]), st.sampled_from(TENANTS), st.integers(0, 50), st.just("")),
    st.tuples(st.just("forget"), st.sampled_from(TENANTS), st.just(0), st.sampled_from(["a", "b"])),
)


@dataclass
class Model:
    owner: dict[str, str] = field(default_factory=dict)  # memory id -> tenant, for live memories
    namespace: dict[str, str] = field(default_factory=dict)
    known: list[str] = field(default_factory=list)  # every id ever created, live or not

    def of(self, tenant: str) -> set[str]:
        return {i for i, t in self.owner.items() if t == tenant}


async def _run(memory_settings: MemorySettings, ops: list[Op]) -> None:
    prefix = f"x{next(_examples)}-"
    model = Model()
    store = await open_store(memory_settings)
    try:
        for name, tenant_key, number, word in ops:
            tenant = prefix + tenant_key
            if name == "put":
                result = await store.put(tenant, MemoryInput(text=TEXTS[number], namespace=word))
                if result.action == "updated":
                    assert model.owner.get(result.memory.id) == tenant, "merged into another tenant's memory"
                model.owner[result.memory.id] = tenant
                model.namespace[result.memory.id] = result.memory.namespace
                model.known.append(result.memory.id)
                assert result.memory.tenant == tenant
            elif name == "search":
                hits = await store.search(tenant, TEXTS[number], k=10, mode="hybrid" if word == "hybrid" else "text")
                assert {h.memory.id for h in hits} <= model.of(tenant)
                assert all(h.memory.tenant == tenant for h in hits)
            elif name == "list":
                page = await store.list(tenant, limit=number)
                seen = [m.id for m in page.items]
                while page.next_cursor is not None:
                    page = await store.list(tenant, limit=number, cursor=page.next_cursor)
                    seen += [m.id for m in page.items]
                assert sorted(seen) == sorted(model.of(tenant))
            elif name in ("get", "update", "delete") and model.known:
                target = model.known[number % len(model.known)]
                mine = model.owner.get(target) == tenant
                try:
                    if name == "get":
                        assert (await store.get(tenant, target)).tenant == tenant
                    elif name == "update":
                        updated = await store.update(tenant, target, MemoryPatch(importance=0.9 if number % 2 else 0.1))
                        assert updated.tenant == tenant
                    else:
                        await store.delete(tenant, target)
                        del model.owner[target]
                    assert mine, f"{name} reached another tenant's memory"
                except MemoryNotFound:
                    assert not mine, f"{name} missed the tenant's own memory"
            elif name == "forget":
                count = await store.forget(tenant, MemoryFilter(namespaces=[word]))
                doomed = {i for i in model.of(tenant) if model.namespace[i] == word}
                assert count == len(doomed)
                for i in doomed:
                    del model.owner[i]
        for key in TENANTS:
            assert (await store.stats(prefix + key)).total == len(model.of(prefix + key))
    finally:
        await store.close()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def test_tenants_never_see_each_other(backend: str, request: pytest.FixtureRequest) -> None:
    memory_settings: MemorySettings = request.getfixturevalue("memory_settings_for")(backend)

    @settings(
        max_examples=12, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(st.lists(op, min_size=4, max_size=24))
    def check(ops: list[Op]) -> None:
        anyio.run(_bounded, memory_settings, ops)

    check()


async def _bounded(memory_settings: MemorySettings, ops: list[Op]) -> None:
    with anyio.fail_after(120):
        await _run(memory_settings, ops)
