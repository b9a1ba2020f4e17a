"""Evidence-based scoring (similarity, keyword coverage, floor, boosts) as a pure function, plus query words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sophia_shared.memory import Memory, SearchHit
from sophia_shared.memory.retrieval import KEYWORD_WEIGHT, coverage, fts5_query, fuse, query_terms, relevance, stem

NOW = datetime(2026, 11, 21, tzinfo=UTC)


def _memory(memory_id: str, *, importance: float = 0.5, age_days: float = 0.0, text: str = "") -> Memory:
    when = NOW - timedelta(days=age_days)
    return Memory(
        id=memory_id,
        tenant="t",
        namespace="default",
        text=text or memory_id,
        tags=[],
        source=None,
        source_ref=None,
        importance=importance,
        created_at=when,
        updated_at=when,
        expires_at=None,
        embedding_model="m",
    )


def _fuse(
    similarities: dict[str, float] | None,
    terms: list[str] | None,
    memories: dict[str, Memory],
    *,
    recency_weight: float = 0.0,
    importance_weight: float = 0.0,
) -> list[SearchHit]:
    return fuse(
        list(memories),
        similarities,
        terms,
        memories,
        k=10,
        now=NOW,
        min_relevance=0.3,
        recency_weight=recency_weight,
        importance_weight=importance_weight,
    )


def test_a_strong_semantic_match_beats_a_weak_keyword_one() -> None:
    memories = {
        "strong": _memory("strong", text="nightly copy of the prod database"),
        "weak": _memory("weak", text="db"),
    }
    hits = _fuse({"strong": 0.62, "weak": 0.31}, ["db"], memories)
    assert [h.memory.id for h in hits] == ["strong", "weak"]
    assert hits[0].score == relevance(0.62, 0.0) == 0.62 and hits[0].matched_by == ["vector"]
    assert hits[1].keyword == 1.0 and hits[1].matched_by == ["vector", "text"]
    assert hits[1].score == round(0.31 + KEYWORD_WEIGHT * 0.69, 6)


def test_the_floor_drops_weak_hits_and_keyword_evidence_can_lift_one_over_it() -> None:
    memories = {"noise": _memory("noise", text="lunch menu"), "term": _memory("term", text="ANALYTICS_WH size")}
    hits = _fuse({"noise": 0.2, "term": 0.2}, ["analytics_wh"], memories)
    assert [h.memory.id for h in hits] == ["term"]
    assert hits[0].matched_by == ["text"] and 0.3 <= hits[0].score <= 1.0
    assert _fuse({"noise": 0.2}, None, {"noise": memories["noise"]}) == []


def test_text_mode_scores_by_coverage_without_a_floor() -> None:
    memories = {"a": _memory("a", text="backups run nightly"), "b": _memory("b", text="the backup")}
    hits = _fuse(None, ["backups", "nightly"], memories)
    assert [(h.memory.id, h.score, h.similarity) for h in hits] == [("a", 1.0, None), ("b", 0.5, None)]


def test_importance_and_recency_boosts_reorder_equal_scores() -> None:
    memories = {"old": _memory("old", age_days=300), "new": _memory("new", age_days=0)}
    plain = _fuse({"old": 0.5, "new": 0.5}, None, memories)
    assert plain[0].score == plain[1].score == 0.5
    assert _fuse({"old": 0.5, "new": 0.5}, None, memories, recency_weight=1.0)[0].memory.id == "new"
    memories["old"] = _memory("old", importance=1.0, age_days=300)
    important = _fuse({"old": 0.5, "new": 0.5}, None, memories, importance_weight=1.0)
    assert important[0].memory.id == "old" and important[0].score == 0.5  # the score stays the relevance


def test_deleted_between_ranking_and_fetch_is_skipped_and_k_caps() -> None:
    memories = {i: _memory(i) for i in "abcde"}
    hits = fuse(
        list("abcdez"),
        {i: 0.5 for i in "abcdez"},
        None,
        memories,
        k=3,
        now=NOW,
        min_relevance=0.3,
        recency_weight=0.0,
        importance_weight=0.0,
    )
    assert [h.memory.id for h in hits] == ["a", "b", "c"]


def test_stems_and_coverage() -> None:
    assert [stem(w) for w in ("backups", "happened", "policies", "address", "running")] == [
        "backup",
        "happen",
        "policy",
        "address",
        "runn",
    ]
    assert coverage(["backups", "prod"], "Prod backup ran") == 1.0
    assert coverage(["backups", "prod"], "nothing here") == 0.0


def test_query_words_are_deduplicated_stop_words_dropped_and_quoted_for_fts5() -> None:
    assert query_terms('Deploy "failed"; deploy AND the failed OR x*') == ["deploy", "failed", "x"]
    assert fts5_query(["a", 'b"c']) == '"a" OR "b""c"'
