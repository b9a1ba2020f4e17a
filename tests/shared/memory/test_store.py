"""The store's whole interface, on both real backends (SQLite + sqlite-vec file, PostgreSQL + pgvector)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from sophia_shared.errors import ErrorCode, SophiaError
from sophia_shared.memory import (
    MemoryFilter,
    MemoryInput,
    MemoryLimitExceeded,
    MemoryNotFound,
    MemoryPatch,
    MemorySettings,
    MemoryStore,
    open_store,
)
from sophia_shared.memory import postgres as postgres_backend
from sophia_shared.memory import sqlite as sqlite_backend
from sophia_shared.memory.errors import InvalidMemory

pytestmark = pytest.mark.anyio

FACTS = [
    ("Alice prefers dark mode in every editor she uses.", "prefs", ["ui"]),
    ("The Friday deployment failed because a database migration timed out.", "ops", ["incident"]),
    ("Acme Corp asked for annual pricing with a 15% discount.", "sales", ["acme", "pricing"]),
    ("Our on-call rotation changes every Monday at 9am.", "ops", ["oncall"]),
    ("Bob's favourite food is spicy ramen.", "prefs", ["food"]),
]


async def _seed(store: MemoryStore, tenant: str = "alice") -> list[str]:
    results = await store.put_many(
        tenant, [MemoryInput(text=t, namespace=ns, tags=tags, source="test") for t, ns, tags in FACTS]
    )
    return [r.memory.id for r in results]


async def test_put_get_update_delete_round_trip(store: MemoryStore) -> None:
    with anyio.fail_after(30):
        put = await store.put("alice", MemoryInput(text="Remember the milk", tags=["todo"], importance=0.7))
        assert put.action == "created" and put.duplicate_of is None
        got = await store.get("alice", put.memory.id)
        assert got.text == "Remember the milk" and got.tags == ["todo"] and got.tenant == "alice"
        assert got.embedding_model == store.embedder.model_id
        assert got.created_at == put.memory.created_at
        changed = await store.update("alice", got.id, MemoryPatch(text="Remember the oat milk", tags=["shopping"]))
        assert changed.text == "Remember the oat milk" and changed.tags == ["shopping"]
        assert changed.importance == pytest.approx(0.7) and changed.updated_at > got.updated_at
        # The new text is what search finds now.
        hits = await store.search("alice", "oat milk", k=1)
        assert hits[0].memory.id == got.id
        await store.delete("alice", got.id)
        with pytest.raises(MemoryNotFound):
            await store.get("alice", got.id)
        with pytest.raises(MemoryNotFound):
            await store.delete("alice", got.id)


async def test_near_duplicate_updates_instead_of_copying(store: MemoryStore) -> None:
    with anyio.fail_after(30):
        first = await store.put("alice", MemoryInput(text="Alice prefers dark mode in her editor", tags=["ui"]))
        again = await store.put(
            "alice", MemoryInput(text="Alice prefers dark mode in her editor.", tags=["prefs"], importance=0.9)
        )
        assert again.action == "updated"
        assert again.duplicate_of == first.memory.id and again.memory.id == first.memory.id
        assert again.similarity is not None and again.similarity >= 0.95
        assert again.memory.tags == ["ui", "prefs"] and again.memory.importance == pytest.approx(0.9)
        # Another namespace, or dedupe off, or a different fact: a new memory.
        other_ns = await store.put("alice", MemoryInput(text="Alice prefers dark mode in her editor", namespace="x"))
        forced = await store.put("alice", MemoryInput(text="Alice prefers dark mode in her editor"), dedupe=False)
        different = await store.put("alice", MemoryInput(text="Alice drinks her coffee black"))
        assert {other_ns.action, forced.action, different.action} == {"created"}
        assert (await store.stats("alice")).total == 4


async def test_a_merge_keeps_the_old_source_where_the_new_row_names_none(store: MemoryStore) -> None:
    with anyio.fail_after(30):
        text = "Carol's team ships on Thursdays after the design review"
        first = await store.put("alice", MemoryInput(text=text, source="gong", source_ref="call-1"))
        again = await store.put("alice", MemoryInput(text=text + ".", source_ref="call-2"))
        assert again.action == "updated" and again.duplicate_of == first.memory.id
        assert (again.memory.source, again.memory.source_ref) == ("gong", "call-2")
        assert (await store.get("alice", first.memory.id)).source == "gong"


async def test_a_batch_row_merges_into_an_earlier_row_of_the_same_batch(store: MemoryStore) -> None:
    with anyio.fail_after(30):
        text = "Dave rotates the staging credentials every quarter"
        results = await store.put_many(
            "alice", [MemoryInput(text=text, tags=["a"]), MemoryInput(text=text + ".", tags=["b"])], dedupe=True
        )
        assert [r.action for r in results] == ["created", "updated"]
        assert results[1].duplicate_of == results[0].memory.id and results[1].memory.tags == ["a", "b"]
        assert (await store.stats("alice")).total == 1


async def test_hybrid_search_ranks_by_meaning_and_keywords(store: MemoryStore) -> None:
    with anyio.fail_after(30):
        ids = await _seed(store)
        semantic = await store.search("alice", "which colour theme does she like for coding?", k=3)
        assert semantic[0].memory.id == ids[0] and semantic[0].vector_rank == 1
        keyword = await store.search("alice", "Acme", k=3, mode="text")
        assert [h.memory.id for h in keyword] == [ids[2]] and keyword[0].text_rank == 1
        # The order, not the floor, is under test: "broken release" is a loose paraphrase.
        vector_only = await store.search("alice", "broken release", k=2, mode="vector", min_relevance=0.0)
        assert vector_only[0].memory.id == ids[1] and all(h.text_rank is None for h in vector_only)
        hybrid = await store.search("alice", "migration outage", k=5)
        assert hybrid[0].memory.id == ids[1]
        assert hybrid[0].vector_rank is not None and hybrid[0].text_rank is not None
        assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)


async def test_search_filters(store: MemoryStore) -> None:
    with anyio.fail_after(30):
        ids = await _seed(store)
        # Filters, not relevance, are under test here: no floor.
        ops = await store.search(
            "alice", "anything about work", MemoryFilter(namespaces=["ops"]), k=10, min_relevance=0.0
        )
        assert {h.memory.id for h in ops} == {ids[1], ids[3]}
        tagged = await store.search(
            "alice", "pricing", MemoryFilter(tags_all=["acme", "pricing"]), k=10, min_relevance=0.0
        )
        assert [h.memory.id for h in tagged] == [ids[2]]
        any_tag = await store.search("alice", "stuff", MemoryFilter(tags_any=["food", "ui"]), k=10, min_relevance=0.0)
        assert {h.memory.id for h in any_tag} == {ids[0], ids[4]}
        assert await store.search("alice", "stuff", MemoryFilter(source="elsewhere"), k=10, min_relevance=0.0) == []
        later = datetime.now(UTC) + timedelta(hours=1)
        assert await store.search("alice", "stuff", MemoryFilter(created_after=later), k=10, min_relevance=0.0) == []
        before = await store.search("alice", "stuff", MemoryFilter(created_before=later), k=10, min_relevance=0.0)
        unfiltered = await store.search("alice", "stuff", k=10, min_relevance=0.0)
        assert len(before) >= 4 and [h.memory.id for h in before] == [h.memory.id for h in unfiltered]


async def test_list_pages_with_a_cursor(store: MemoryStore) -> None:
    with anyio.fail_after(60):
        for batch in range(3):
            await store.put_many(
                "alice", [MemoryInput(text=f"note {batch}-{i} about topic {i * 7 + batch}") for i in range(9)]
            )
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = await store.list("alice", limit=10, cursor=cursor)
            pages += 1
            seen.extend(m.id for m in page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert pages == 3 and len(seen) == 27 and len(set(seen)) == 27
        listed = [(m.created_at, m.id) for m in (await store.list("alice", limit=27)).items]
        assert listed == sorted(listed, reverse=True)
        ns = await store.list("alice", MemoryFilter(namespaces=["default"]), limit=5)
        assert len(ns.items) == 5
        for bad in ("not-a-cursor", "eyJ4IjoxfQ"):
            with pytest.raises(InvalidMemory, match="cursor"):
                await store.list("alice", cursor=bad)


async def test_expired_memories_are_hidden_unless_asked(store: MemoryStore) -> None:
    with anyio.fail_after(30):
        past = datetime.now(UTC) - timedelta(seconds=1)
        gone = await store.put("alice", MemoryInput(text="temporary door code 4512", expires_at=past))
        kept = await store.put("alice", MemoryInput(text="permanent door code 9981"))
        listed = await store.list("alice")
        assert [m.id for m in listed.items] == [kept.memory.id]
        hits = await store.search("alice", "door code", k=5)
        assert [h.memory.id for h in hits] == [kept.memory.id]
        everything = await store.search("alice", "door code", MemoryFilter(include_expired=True), k=5)
        assert {h.memory.id for h in everything} == {gone.memory.id, kept.memory.id}
        assert (await store.get("alice", gone.memory.id)).id == gone.memory.id
        stats = await store.stats("alice")
        assert stats.total == 2 and stats.expired == 1


async def test_forget_by_namespace_source_ref_and_everything(store: MemoryStore) -> None:
    with anyio.fail_after(30):
        await _seed(store)
        await _seed(store, "bob")
        assert await store.forget("alice", MemoryFilter(namespaces=["ops"])) == 2
        assert (await store.stats("alice")).by_namespace == {"prefs": 2, "sales": 1}
        await store.put_many(
            "alice",
            [
                MemoryInput(text="call 42: customer asked about SSO", namespace="gong", source="gong", source_ref="42"),
                MemoryInput(text="call 42: rep promised a demo", namespace="gong", source="gong", source_ref="42"),
                MemoryInput(text="call 43: pricing objection", namespace="gong", source="gong", source_ref="43"),
            ],
        )
        assert await store.forget("alice", MemoryFilter(source_ref="42")) == 2
        assert await store.forget("alice") == 4
        assert (await store.stats("alice")).total == 0
        assert (await store.stats("bob")).total == 5  # other tenants untouched


async def test_put_many_replaces_a_source_ref_on_resync(store: MemoryStore) -> None:
    with anyio.fail_after(30):
        first = [MemoryInput(text=f"turn {i} of call 7", namespace="gong", source_ref="7") for i in range(3)]
        await store.put_many("alice", first)
        second = [MemoryInput(text=f"revised turn {i} of call 7", namespace="gong", source_ref="7") for i in range(2)]
        results = await store.put_many("alice", second, replace_source_ref=True)
        assert [r.action for r in results] == ["created", "created"]
        page = await store.list("alice", MemoryFilter(source_ref="7"))
        assert sorted(m.text for m in page.items) == ["revised turn 0 of call 7", "revised turn 1 of call 7"]


async def test_bad_input_is_refused_and_nothing_is_written(store: MemoryStore) -> None:
    with anyio.fail_after(30):
        await store.put("alice", MemoryInput(text="the only memory"))
        cases: list[tuple[object, ErrorCode]] = []

        async def expect(code: ErrorCode, call: object) -> None:
            with pytest.raises(SophiaError) as info:
                await call  # type: ignore[misc]
            assert info.value.code == code, info.value.message
            cases.append((call, code))

        await expect(ErrorCode.INVALID_ARGUMENT, store.put("alice", MemoryInput(text="   ")))
        await expect(ErrorCode.LIMIT_EXCEEDED, store.put("alice", MemoryInput(text="x" * 8_001)))
        many_tags = [f"t{i}" for i in range(33)]
        await expect(ErrorCode.LIMIT_EXCEEDED, store.put("alice", MemoryInput(text="t", tags=many_tags)))
        await expect(ErrorCode.INVALID_ARGUMENT, store.put("alice", MemoryInput(text="t", tags=["a,b"])))
        # One bad item refuses the whole batch.
        await expect(
            ErrorCode.LIMIT_EXCEEDED, store.put_many("alice", [MemoryInput(text="fine"), MemoryInput(text="y" * 9_000)])
        )
        await expect(ErrorCode.INVALID_ARGUMENT, store.put("", MemoryInput(text="no tenant")))
        await expect(ErrorCode.NOT_FOUND, store.update("alice", "missing", MemoryPatch(text="x")))
        await expect(ErrorCode.INVALID_ARGUMENT, store.update("alice", "missing", MemoryPatch()))
        await expect(ErrorCode.LIMIT_EXCEEDED, store.search("alice", "q", k=51))
        await expect(ErrorCode.INVALID_ARGUMENT, store.search("alice", "q", k=0))
        await expect(ErrorCode.INVALID_ARGUMENT, store.search("alice", "   "))
        await expect(ErrorCode.INVALID_ARGUMENT, store.search("alice", "q", query_embedding=[0.1] * 17))
        await expect(ErrorCode.INVALID_ARGUMENT, store.search("alice", "q", query_embedding=[0.0] * 384))
        await expect(
            ErrorCode.INVALID_ARGUMENT,
            store.search(
                "alice",
                "q",
                MemoryFilter(
                    created_after=datetime(2030, 1, 1, tzinfo=UTC), created_before=datetime(2020, 1, 1, tzinfo=UTC)
                ),
            ),
        )
        await expect(ErrorCode.INVALID_ARGUMENT, store.list("alice", MemoryFilter(namespaces=["bad ns!"])))
        await expect(ErrorCode.LIMIT_EXCEEDED, store.list("alice", limit=100_000))
        assert (await store.stats("alice")).total == 1
        assert len(cases) == 16


async def test_query_embedding_skips_the_model(store: MemoryStore) -> None:
    with anyio.fail_after(30):
        ids = await _seed(store)
        vector = store.embedder.embed(["ramen noodles"])[0]
        hits = await store.search("alice", "", k=1, mode="vector", query_embedding=vector)
        assert hits[0].memory.id == ids[4]
        assert hits[0].similarity == pytest.approx(float(vector @ store.embedder.embed([FACTS[4][0]])[0]), abs=1e-4)


async def test_stats_and_tenants(store: MemoryStore) -> None:
    with anyio.fail_after(30):
        assert (await store.stats("nobody")).total == 0
        await _seed(store)
        await store.put("carol", MemoryInput(text="carol's note"))
        stats = await store.stats("alice")
        assert stats.total == 5 and stats.by_namespace == {"prefs": 2, "ops": 2, "sales": 1}
        assert stats.by_source == {"test": 5} and stats.dimensions == 384
        assert stats.backend == store.backend and stats.oldest is not None
        assert await store.tenants() == ["alice", "carol"]


async def test_memory_limits_are_the_configured_ones(store: MemoryStore) -> None:
    with anyio.fail_after(30), pytest.raises(MemoryLimitExceeded) as info:
        await store.put_many("alice", [MemoryInput(text=f"n{i}") for i in range(1_001)])
    assert "SOPHIA_MEMORY_MAX_BATCH" in info.value.message


async def test_keyword_search_survives_common_words(
    store: MemoryStore, memory_settings: MemorySettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Scaled down: a word is "common" here past 10 memories (200 in production).
    monkeypatch.setattr(sqlite_backend, "MIN_COMMON_DOCS", 10)
    monkeypatch.setattr(postgres_backend, "MIN_COMMON_DOCS", 10)
    with anyio.fail_after(60):
        filler = [MemoryInput(text=f"Someone said the weekly report {i} was fine") for i in range(60)]
        await store.put_many("alice", filler)
        target = await store.put("alice", MemoryInput(text="Someone said the Zanzibar office report was late"))
        if store.backend == "postgres":
            # PostgreSQL knows word frequencies from ANALYZE (autovacuum runs it in production).
            import psycopg

            assert memory_settings.dsn is not None
            async with await psycopg.AsyncConnection.connect(memory_settings.dsn.get_secret_value()) as conn:
                await conn.execute("ANALYZE memories")
        hits = await store.search("alice", "someone said the report zanzibar", k=3, mode="text")
        assert hits[0].memory.id == target.memory.id
        # Only common words: hybrid skips the text ranking, text mode still answers with the rarest.
        common = await store.search("alice", "someone said the weekly report", k=5)
        assert len(common) == 5 and all(h.text_rank is None for h in common)
        assert len(await store.search("alice", "someone said the weekly report", k=5, mode="text")) == 5


async def test_a_damaged_sqlite_file_is_reported_not_crashed(tmp_path: Path, models_dir: Path) -> None:
    damaged = tmp_path / "memory.db"
    damaged.write_bytes(b"this is not a database" * 100)
    with anyio.fail_after(30), pytest.raises(SophiaError) as info:
        await open_store(MemorySettings(dsn=f"sqlite://{damaged}", models_dir=models_dir))
    assert info.value.code == ErrorCode.UNAVAILABLE and str(damaged) in info.value.message
