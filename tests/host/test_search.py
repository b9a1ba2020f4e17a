"""Tool search ranking (the agent's router over the host's entries): keywords, and the shared MiniLM model."""

from __future__ import annotations

from pathlib import Path

from sophia_host.search import Entry, ToolIndex
from sophia_shared.memory.embeddings import local_embedder

ENTRIES = [
    Entry("snowflake_query", "snowflake", "snowflake",
          "Run one read-only SQL statement against the data warehouse and return a page of rows."),
    Entry("docker_ps", "docker", "containers", "List the containers running on the Docker engine."),
    Entry("docker_logs", "docker", "containers", "Read the last lines a container wrote to stdout and stderr."),
    Entry("memory_search", "memory", "memory", "Search the long-term memory for notes similar to a query."),
    Entry("pulumi_preview", "pulumi", "pulumi",
          "Preview the changes a stack update would make to cloud infrastructure."),
    Entry("gong_calls", "gong", "gong", "List recorded sales calls with their participants."),
]


def keyword_index() -> ToolIndex:
    index = ToolIndex()
    index.rebuild(ENTRIES)
    return index


def test_keyword_ranking_prefers_names_over_descriptions() -> None:
    hits, semantic = keyword_index().search("docker containers", 3, semantic=False)
    assert not semantic
    assert {h.entry.name for h in hits[:2]} == {"docker_logs", "docker_ps"}
    top, _ = keyword_index().search("sql warehouse rows", 2, semantic=False)
    assert top[0].entry.name == "snowflake_query"
    assert 0.0 < top[0].score <= 1.0
    assert top[0].score > top[1].score


def test_k_bounds_the_answer_and_an_unrelated_query_scores_low() -> None:
    index = keyword_index()
    assert len(index.search("list", 1, semantic=False)[0]) == 1
    unrelated, _ = index.search("zzzz qqqq", 5, semantic=False)
    related, _ = index.search("preview the stack update", 1, semantic=False)
    assert max(h.score for h in unrelated) < related[0].score


def test_a_missing_model_falls_back_to_keywords() -> None:
    def no_model() -> ToolIndex:
        raise FileNotFoundError("no weights here")

    index = ToolIndex(embedder_factory=no_model)  # type: ignore[arg-type]
    index.rebuild(ENTRIES)
    hits, semantic = index.search("sql rows", 3, semantic=True)
    assert not semantic
    assert hits[0].entry.name == "snowflake_query"


def test_a_rebuild_replaces_the_tools_searched() -> None:
    index = keyword_index()
    index.search("docker containers", 3, semantic=False)
    index.rebuild(ENTRIES[:1])
    hits, _ = index.search("docker containers", 3, semantic=False)
    assert [h.entry.name for h in hits] == ["snowflake_query"]


def test_semantic_ranking_finds_tools_that_share_no_word_with_the_query(models_dir: Path) -> None:
    index = ToolIndex(embedder_factory=lambda: local_embedder(models_dir))
    index.rebuild(ENTRIES)
    query = "recall what we decided yesterday"
    hits, semantic = index.search(query, 3, semantic=True)
    assert semantic
    assert hits[0].entry.name == "memory_search"
    sales, _ = index.search("customer conversations with prospects", 2, semantic=True)
    assert sales[0].entry.name == "gong_calls"
