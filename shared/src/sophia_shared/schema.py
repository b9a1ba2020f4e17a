"""Tool schemas as published in tools/list: what a client validates against, without pydantic's noise.

Pydantic's JSON schemas carry a `title` on every property and model, an `anyOf` with a null branch
for every optional field and `"default": null` beside it. None of these change what validates, yet
they were a quarter of the suite's tools/list bytes. `compact` keeps every keyword a validator reads
(`type`, `required`, `enum`, bounds, `pattern`, `format`, `$ref`/`$defs`, `additionalProperties` …)
and, for input schemas, the `description`s and non-null `default`s a model reads. An output schema is
read by validators, not models (clients hand models the input schema), so its annotations go too and
a `$def` used once is inlined.

The arguments are still validated by the tool's pydantic model, and its result by the output model:
the published schema is for the client only, so compacting it cannot loosen the server's checks.
"""

from __future__ import annotations

from typing import Any

__all__ = ["compact"]

# Keywords whose value maps names (property names, def names) to schemas, never schema keywords.
_SCHEMA_MAPS = frozenset({"properties", "$defs", "definitions", "patternProperties", "dependentSchemas"})
# Keywords whose value is data (an instance), not a schema: never walked.
_DATA = frozenset({"default", "const", "enum", "examples"})
# Annotations a validator ignores; kept in input schemas (the model reads them), dropped from outputs.
_OUTPUT_NOTES = frozenset({"description", "default", "examples"})
_DEF_PREFIX = "#/$defs/"
_NULL = {"type": "null"}


def compact(schema: dict[str, Any], *, output: bool) -> dict[str, Any]:
    """`schema` without titles, with `anyOf [X, null]` as `type: [X, "null"]` and no null defaults;
    for an output schema also without annotations, single-use `$defs` inlined."""
    walked = _walk(schema, output)
    return _inline_single_use(walked) if output else walked


def _walk(node: Any, output: bool) -> Any:
    if isinstance(node, list):
        return [_walk(item, output) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if output and key in _OUTPUT_NOTES:
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _walk(sub, output) for name, sub in value.items()}
        elif key in _DATA:
            out[key] = value
        else:
            out[key] = _walk(value, output)
    if "default" in out and out["default"] is None:
        del out["default"]
    if output:
        _drop_implied_type(out)
    return _merge_null_branch(out)


def _drop_implied_type(node: dict[str, Any]) -> None:
    """An output `enum` of strings says the type already; `format` is only an annotation in 2020-12."""
    node.pop("format", None)
    values = node.get("enum")
    if node.get("type") == "string" and isinstance(values, list) and all(isinstance(v, str) for v in values):
        del node["type"]


def _merge_null_branch(node: dict[str, Any]) -> dict[str, Any]:
    """`{"anyOf": [{"type": T, …}, {"type": "null"}], …}` → `{"type": [T, "null"], …}`: the same
    instances validate, since every other keyword of the branch applies to type T only."""
    branches = node.get("anyOf")
    if not (isinstance(branches, list) and len(branches) == 2 and _NULL in branches):
        return node
    other = branches[0] if branches[1] == _NULL else branches[1]
    if not isinstance(other, dict) or not isinstance(other.get("type"), str):
        return node
    if set(other) & (set(node) - {"anyOf"}):
        return node
    merged = {key: value for key, value in node.items() if key != "anyOf"}
    merged.update(other)
    merged["type"] = [other["type"], "null"]
    if isinstance(other.get("enum"), list):
        merged["enum"] = [*other["enum"], None]
    return merged


def _count_refs(node: Any, counts: dict[str, int]) -> dict[str, int]:
    if isinstance(node, list):
        for item in node:
            _count_refs(item, counts)
    elif isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_DEF_PREFIX):
            name = ref[len(_DEF_PREFIX):]
            counts[name] = counts.get(name, 0) + 1
        for key, value in node.items():
            if key not in _DATA:
                _count_refs(value, counts)
    return counts


def _inline_single_use(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace a `$ref` to a def used exactly once (and not recursive) by the def itself."""
    defs = schema.get("$defs")
    if not isinstance(defs, dict):
        return schema
    counts = _count_refs(schema, {})
    single = {name for name in defs if counts.get(name) == 1 and name not in _count_refs(defs[name], {})}
    if not single:
        return schema

    def substitute(node: Any) -> Any:
        if isinstance(node, list):
            return [substitute(item) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_DEF_PREFIX) and len(node) == 1 and ref[len(_DEF_PREFIX):] in single:
            return substitute(defs[ref[len(_DEF_PREFIX):]])
        return {key: value if key in _DATA else substitute(value) for key, value in node.items()}

    body = substitute({key: value for key, value in schema.items() if key != "$defs"})
    kept = {name: substitute(sub) for name, sub in defs.items() if name not in single}
    return {**body, "$defs": kept} if kept else body
