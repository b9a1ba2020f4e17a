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
from sophia_shared.confirm import CONFIRMATION_TOKEN_ARG
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
            pairs.append((tool.name, _published_arguments(meta.arg_model.model_json_schema(by_alias=True),
                                                          tool.parameters), tool.parameters))
            if meta.output_model is not None and meta.output_schema is not None:
                fresh = type(meta)(arg_model=meta.arg_model, output_model=meta.output_model,
                                   wrap_output=meta.wrap_output)
                assert fresh.output_schema is not None
                pairs.append((f"{tool.name}->", fresh.output_schema, meta.output_schema))
    return pairs


def _published_arguments(original: dict[str, Any], published: dict[str, Any]) -> dict[str, Any]:
    """`original` without the arguments the server does not publish: only `confirmation_token`, outside
    token mode (these servers are built before the tests' fixtures set it). Passing it is still accepted."""
    unpublished = set(original.get("properties", {})) - set(published.get("properties", {}))
    assert unpublished <= {CONFIRMATION_TOKEN_ARG}, unpublished
    properties = {k: v for k, v in original.get("properties", {}).items() if k not in unpublished}
    return {**original, "properties": properties} if "properties" in original else original


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
            "refs": {"type": "array", "items": {"$ref": "#/$defs/Other"}},
            "again": {"$ref": "#/$defs/Other"},
        },
        "$defs": {"Thing": {"title": "Thing", "type": "object", "properties": {"x": {"type": "integer"}}},
                  "Other": {"type": "string", "description": "used twice"}},
    }
    assert compact(schema, output=False) == {
        "type": "object", "required": ["title"],
        "properties": {
            "title": {"type": "string", "minLength": 1, "description": "the call's title"},
            "limit": {"type": ["integer", "null"], "maximum": 5},
            "kind": {"enum": ["a", "b", None], "type": ["string", "null"]},
            # A def used once is inlined, and then its null branch merges like any other.
            "ref": {"type": ["object", "null"], "properties": {"x": {"type": "integer"}}},
            "refs": {"type": "array", "items": {"$ref": "#/$defs/Other"}},
            "again": {"$ref": "#/$defs/Other"},
        },
        "$defs": {"Other": {"type": "string", "description": "used twice"}},
    }
    # Output: annotations go too.
    assert compact(schema, output=True)["$defs"] == {"Other": {"type": "string"}}


@pytest.mark.parametrize(("before", "after"), [
    # Keywords that accept everything.
    ({"type": "array", "items": {}}, {"type": "array"}),
    ({"type": "object", "additionalProperties": True}, {"type": "object"}),
    # Branches whose keywords each constrain their own type only: one node, a list of types.
    ({"anyOf": [{"type": "string", "maxLength": 3}, {"type": "array", "items": {"type": "string"}}]},
     {"type": ["string", "array"], "maxLength": 3, "items": {"type": "string"}}),
    # An output string enum has no type left; its null branch joins the enum.
    ({"anyOf": [{"enum": ["a", "b"]}, {"type": "null"}]}, {"enum": ["a", "b", None]}),
    # A union of every JSON type constrains nothing.
    ({"anyOf": [{"type": t} for t in ("boolean", "integer", "number", "string", "array", "object", "null")]}, {}),
    # Lengths an anchored pattern of one-character atoms fixes already; `1.0` bounds as integers.
    ({"type": "string", "pattern": "^[a-z]{1,100}$", "minLength": 1, "maxLength": 100},
     {"type": "string", "pattern": "^[a-z]{1,100}$"}),
    ({"type": "string", "pattern": "^/?[a-z][a-z0-9]*$", "minLength": 1, "maxLength": 9},
     {"type": "string", "pattern": "^/?[a-z][a-z0-9]*$", "maxLength": 9}),
    ({"type": "number", "minimum": 0.0, "maximum": 1.5}, {"type": "number", "minimum": 0, "maximum": 1.5}),
])
def test_compact_drops_only_what_constrains_nothing(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert compact(before, output=True) == after


@pytest.mark.parametrize("kept", [
    # A bound in the integer branch would also bind the number branch's instances.
    {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "number"}]},
    # An enum in one branch only would reject the other branch's instances.
    {"anyOf": [{"type": "string", "enum": ["a"]}, {"type": "integer"}]},
    # A keyword that applies to every type (`not`) cannot move out of its branch.
    {"anyOf": [{"type": "string", "not": {"const": "x"}}, {"type": "null"}]},
    # A pattern with a bound looser than maxLength, a negated class, or more than one-character atoms.
    {"type": "string", "pattern": "^[a-z]{1,100}$", "maxLength": 50},
    {"type": "string", "pattern": "^[^/]{2,9}$", "minLength": 2},
    {"type": "string", "pattern": "^(ab|c)$", "maxLength": 2},
])
def test_compact_keeps_what_would_change_what_validates(kept: dict[str, Any]) -> None:
    assert compact(kept, output=False) == kept


def test_an_output_subschema_written_out_several_times_is_shared_when_that_is_shorter() -> None:
    words = {"type": "array", "items": {"type": "string"}}
    schema = {"type": "object", "properties": {name: dict(words) for name in ("a", "b", "c", "d")}}
    shared = compact(schema, output=True)
    assert shared["$defs"] == {"s1": words}
    assert all(prop == {"$ref": "#/$defs/s1"} for prop in shared["properties"].values())
    assert len(str(shared)) < len(str(schema))
    # Twice is not enough for a schema this small; inputs (read by models) are never rewritten so.
    assert "$defs" not in compact({"type": "object", "properties": {"a": words, "b": words}}, output=True)
    assert "$defs" not in compact(schema, output=False)
    for instance in ({"a": ["x"], "d": []}, {"a": [1]}, {"c": "x"}):
        assert _valid(schema, instance) == _valid(shared, instance)


@pytest.mark.anyio
async def test_tools_list_carries_the_compacted_schemas() -> None:
    importlib.import_module("sophia_memory.__main__")
    server = BUILDERS["memory"]()
    with anyio.fail_after(10):
        listed = {t.name: t for t in await server.list_tools()}
    published = {tool: schema for tool, _, schema in PAIRS}
    assert listed["memory_search"].input_schema == published["memory_search"]
    assert listed["memory_search"].output_schema == published["memory_search->"]
