"""The offline router's decisions: shape, abstention, destructive tools, bounded work on hostile input."""

from __future__ import annotations

import json
from pathlib import Path

import mcp.types as types
import pytest
from sophia_agent.router import RoutableTool, Router, RouterSettings, routable
from sophia_agent.router.text import identifier_words, terms
from sophia_shared.memory.embeddings import local_embedder

TOOLS = [
    RoutableTool("docker_container_logs", "Read a container's logs (stdout and stderr).",
                 {"properties": {"container": {"type": "string"}}, "required": ["container"]}),
    RoutableTool("docker_remove_container", "Remove a container. A running container needs force=true.",
                 {"properties": {"container": {"type": "string"}}, "required": ["container"]}, destructive=True),
    RoutableTool("memory_search", "Search stored notes and facts by meaning and keywords, best first.",
                 {"properties": {"query": {"type": "string"}}, "required": ["query"]}),
    RoutableTool("snowflake_list_tables", "List tables and views with their kind, row counts and bytes.", {}),
    RoutableTool("pulumi_preview", "Preview an update of a stack: what would be created, updated or deleted.",
                 {"properties": {"project": {"type": "string"}, "stack": {"type": "string"}},
                  "required": ["project", "stack"]}),
]


def keyword_router(**settings: float) -> Router:
    return Router(TOOLS, settings=RouterSettings.model_validate(settings), embedder=None)


def test_identifiers_are_split_and_words_stemmed() -> None:
    assert identifier_words("getUserByID snake_case ChaDri.change_drink") == [
        "get", "user", "by", "id", "snake", "case", "cha", "dri", "change", "drink"]
    assert terms("Listing the running containers") == ["list", "run", "container"]


def test_a_decision_serialises_to_exactly_the_documented_keys() -> None:
    decision = keyword_router().route("show the logs of container web-1")
    body = json.loads(decision.model_dump_json())
    assert list(body) == ["tool", "arguments", "missing", "confidence", "alternatives"]
    assert body["tool"] == "docker_container_logs" and body["arguments"] == {"container": "web-1"}
    assert body["missing"] == [] and 0.0 <= body["confidence"] <= 1.0
    assert all(set(a) == {"tool", "confidence"} for a in body["alternatives"])
    assert "docker_container_logs" not in [a["tool"] for a in body["alternatives"]]


def test_required_arguments_the_sentence_lacks_are_listed() -> None:
    decision = keyword_router().route("preview the stack update")
    assert decision.tool == "pulumi_preview"
    assert decision.missing == ["project", "stack"] and decision.arguments == {}


def test_unrelated_requests_get_no_tool(models_dir: Path) -> None:
    router = Router(TOOLS, embedder=lambda: local_embedder(models_dir))
    for sentence in ("book me a flight to Paris", "what's a good recipe for lasagna?", "tell me a joke"):
        decision = router.route(sentence)
        assert decision.tool is None, (sentence, decision)
        assert decision.arguments == {} and decision.missing == []
    assert router.route("search my notes about the launch plan").tool == "memory_search"


def test_a_destructive_tool_needs_the_higher_line_and_is_only_named() -> None:
    sentence = "remove the container web-1"
    named = keyword_router(abstain_below=0.0, destructive_abstain_below=0.0).route(sentence)
    assert named.tool == "docker_remove_container"
    refused = keyword_router(abstain_below=0.0, destructive_abstain_below=1.0).route(sentence)
    assert refused.tool is None
    assert refused.alternatives[0].tool == "docker_remove_container"
    # A tool with no annotations is taken as destructive (MCP's default for a tool that is not read-only).
    bare = routable(types.Tool(name="wipe_disk", description="Wipe the disk.", input_schema={"type": "object"}))
    assert bare.destructive
    hinted = types.Tool(name="read_disk", description="Read the disk.", input_schema={"type": "object"},
                        annotations=types.ToolAnnotations(read_only_hint=True))
    assert not Router.from_tools([hinted], embedder=None).is_destructive("read_disk")


def test_a_long_hostile_sentence_is_cut_to_the_setting() -> None:
    router = keyword_router(max_sentence_chars=100)
    tail = " container-logs-stdout" * 50_000
    decision = router.route("x" * 100 + tail)
    assert decision.tool is None  # nothing of the sentence within the cap names a tool
    assert router.route("show the logs of container web-1" + " zz" * 100_000).tool == "docker_container_logs"


@pytest.mark.parametrize("sentence", ["", "   ", "\x00\x01", "'" * 10_000, '"' + "a" * 5000])
def test_degenerate_sentences_are_answered(sentence: str) -> None:
    decision = keyword_router().route(sentence)
    assert decision.tool is None or decision.tool in {t.name for t in TOOLS}


def test_rank_bounds_k_and_an_empty_catalogue_ranks_nothing() -> None:
    router = keyword_router()
    assert len(router.rank("list the tables", 2)) == 2
    assert len(router.rank("list the tables", 10_000)) == len(TOOLS)
    assert router.rank("list the tables", 1)[0].tool == "snowflake_list_tables"
    assert Router([], embedder=None).route("anything").tool is None


def test_a_model_that_cannot_load_leaves_keyword_ranking() -> None:
    def broken() -> object:
        raise FileNotFoundError("no weights")

    router = Router(TOOLS, embedder=broken)  # type: ignore[arg-type]
    assert router.rank("list the tables", 1)[0].tool == "snowflake_list_tables"
    assert not router.semantic_ready
