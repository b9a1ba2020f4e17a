"""Compacted tool schemas accept exactly what pydantic's own schemas accept (schema.py).

For every tool of the six servers, the schema the SDK would publish is rebuilt from the tool's own
models and compared with the compacted one that tools/list carries: the same JSON instances must
pass or fail both, checked with the `jsonschema` validator (draft 2020-12) on generated instances.
"""

from __future__ import annotations

import importlib
from typing import Any

import anyio
import jsonschema  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sophia_shared.cli import BUILDERS
from sophia_shared.schema import compact
from sophia_shared.server import SophiaServer

SERVERS = ["memory", "snowflake", "docker", "pulumi", "gong", "retool"]

_scalars = st.none() | st.booleans() | st.integers(-5, 10**7) | st.floats(-1e3, 1e3) | st.text(max_size=8)
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                             max_size=3), max_leaves=6)


def _pairs() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(tool, pydantic's schema, published schema) for every input and output schema of the suite."""
    pairs = []
    for name in SERVERS:
        importlib.import_module(f"sophia_{name}.__main__")
        server = BUILDERS[name]()
        assert isinstance(server, SophiaServer)
        for tool in server._tool_manager.list_tools():
            meta = tool.fn_metadata
            pairs.append((tool.name, meta.arg_model.model_json_schema(by_alias=True), tool.parameters))
            if meta.output_model is not None and meta.output_schema is not None:
                fresh = type(meta)(arg_model=meta.arg_model, output_model=meta.output_model,
                                   wrap_output=meta.wrap_output)
                assert fresh.output_schema is not None
                pairs.append((f"{tool.name}->", fresh.output_schema, meta.output_schema))
    return pairs


PAIRS = _pairs()


def _valid(schema: dict[str, Any], instance: Any) -> bool:
    return bool(jsonschema.Draft202012Validator(schema).is_valid(instance))


def test_the_suite_has_schemas_to_compare() -> None:
    assert len(PAIRS) > 100
    assert any("anyOf" in str(original) and "anyOf" not in str(published) for _, original, published in PAIRS)


@pytest.mark.parametrize(("tool", "original", "published"), PAIRS, ids=[p[0] for p in PAIRS])
def test_published_schema_is_smaller_and_still_a_valid_schema(tool: str, original: dict[str, Any],
                                                              published: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(published)
    assert len(str(published)) < len(str(original)) or "title" not in str(original)
    assert published.get("required") == original.get("required")
    assert set(published.get("properties", {})) == set(original.get("properties", {}))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_published_schemas_accept_exactly_what_pydantic_schemas_accept(data: st.DataObject) -> None:
    tool, original, published = data.draw(st.sampled_from(PAIRS))
    names = sorted(original.get("properties", {}))
    instance = data.draw(st.dictionaries(st.sampled_from(names), _json, max_size=len(names)) if names else _json)
    assert _valid(original, instance) == _valid(published, instance), (tool, instance)


def test_compact_keeps_every_validating_keyword_and_property_named_title() -> None:
    schema = {
        "title": "Args", "type": "object", "required": ["title"],
        "properties": {
            "title": {"title": "Title", "type": "string", "minLength": 1, "description": "the call's title"},
            "limit": {"anyOf": [{"type": "integer", "maximum": 5}, {"type": "null"}], "default": None, "title": "L"},
            "kind": {"anyOf": [{"enum": ["a", "b"], "type": "string"}, {"type": "null"}], "default": None},
            "ref": {"anyOf": [{"$ref": "#/$defs/Thing"}, {"type": "null"}], "default": None},
        },
        "$defs": {"Thing": {"title": "Thing", "type": "object", "properties": {"x": {"type": "integer"}}}},
    }
    assert compact(schema, output=False) == {
        "type": "object", "required": ["title"],
        "properties": {
            "title": {"type": "string", "minLength": 1, "description": "the call's title"},
            "limit": {"type": ["integer", "null"], "maximum": 5},
            "kind": {"enum": ["a", "b", None], "type": ["string", "null"]},
            "ref": {"anyOf": [{"$ref": "#/$defs/Thing"}, {"type": "null"}]},
        },
        "$defs": {"Thing": {"type": "object", "properties": {"x": {"type": "integer"}}}},
    }
    # Output: annotations go and the def used once is inlined.
    assert compact(schema, output=True)["properties"]["ref"] == {
        "anyOf": [{"type": "object", "properties": {"x": {"type": "integer"}}}, {"type": "null"}]
    }
    assert "$defs" not in compact(schema, output=True)


@pytest.mark.anyio
async def test_tools_list_carries_the_compacted_schemas() -> None:
    importlib.import_module("sophia_memory.__main__")
    server = BUILDERS["memory"]()
    with anyio.fail_after(10):
        listed = {t.name: t for t in await server.list_tools()}
    published = {tool: schema for tool, _, schema in PAIRS}
    assert listed["memory_search"].input_schema == published["memory_search"]
    assert listed["memory_search"].output_schema == published["memory_search->"]
