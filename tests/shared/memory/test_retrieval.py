"""Reciprocal-rank fusion and its boosts, as a pure function, plus query-word extraction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sophia_shared.memory import Memory
from sophia_shared.memory.retrieval import RRF_K, VectorHit, fts5_query, fuse, query_terms

NOW = datetime(2026, 11, 21, tzinfo=UTC)


def _memory(memory_id: str, *, importance: float = 0.5, age_days: float = 0.0) -> Memory:
    when = NOW - timedelta(days=age_days)
    return Memory(
        id=memory_id,
        tenant="t",
        namespace="default",
        text=memory_id,
        tags=[],
        source=None,
        source_ref=None,
        importance=importance,
        created_at=when,
        updated_at=when,
        expires_at=None,
        embedding_model="m",
    )


def test_found_by_both_rankings_beats_found_by_one() -> None:
    memories = {i: _memory(i) for i in ("a", "b", "c")}
    hits = fuse(
        [VectorHit("a", 0.9), VectorHit("b", 0.8)],
        ["b", "c"],
        memories,
        k=3,
        now=NOW,
        recency_weight=0.0,
        importance_weight=0.0,
    )
    assert [h.memory.id for h in hits] == ["b", "a", "c"]
    assert hits[0].score == round(1 / (RRF_K + 2) + 1 / (RRF_K + 1), 6)
    assert (hits[0].vector_rank, hits[0].text_rank, hits[0].similarity) == (2, 1, 0.8)
    assert hits[2].similarity is None and hits[2].vector_rank is None


def test_importance_and_recency_boosts_reorder_ties() -> None:
    memories = {
        "old": _memory("old", age_days=300),
        "new": _memory("new", age_days=0),
        "key": _memory("key", importance=1.0, age_days=300),
    }
    # Equal base scores: each memory is first in one of the two rankings.
    base = dict(vector_hits=[VectorHit("old", 0.5)], text_ids=["new"], memories=memories, k=3, now=NOW)
    plain = fuse(**base, recency_weight=0.0, importance_weight=0.0)  # type: ignore[arg-type]
    assert plain[0].score == plain[1].score
    recent = fuse(**base, recency_weight=1.0, importance_weight=0.0)  # type: ignore[arg-type]
    assert recent[0].memory.id == "new"
    important = fuse(
        [VectorHit("old", 0.5)], ["key"], memories, k=3, now=NOW, recency_weight=0.0, importance_weight=1.0
    )
    assert important[0].memory.id == "key"


def test_deleted_between_ranking_and_fetch_is_skipped_and_k_caps() -> None:
    memories = {i: _memory(i) for i in "abcde"}
    hits = fuse(
        [VectorHit(i, 0.5) for i in "abcdez"], [], memories, k=3, now=NOW, recency_weight=0.0, importance_weight=0.0
    )
    assert [h.memory.id for h in hits] == ["a", "b", "c"]


def test_query_words_are_deduplicated_and_quoted_for_fts5() -> None:
    assert query_terms('Deploy "failed"; deploy AND failed OR x*') == ["deploy", "failed", "and", "or", "x"]
    assert fts5_query(["a", 'b"c']) == '"a" OR "b""c"'
