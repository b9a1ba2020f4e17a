"""Tool schemas as published in tools/list: what a client validates against, without pydantic's noise.

Pydantic's JSON schemas carry a `title` on every property and model, an `anyOf` with a null branch
for every optional field and `"default": null` beside it. None of these change what validates, yet
they were a quarter of the suite's tools/list bytes. `compact` keeps every keyword a validator reads
(`type`, `required`, `enum`, bounds, `pattern`, `format`, `$ref`/`$defs`, `additionalProperties` …)
and, for input schemas, the `description`s and non-null `default`s a model reads. An output schema is
read by validators, not models (clients hand models the input schema), so its annotations go too. A
`$def` used once is inlined. Beyond that it drops only what constrains nothing: `items: {}`,
`additionalProperties: true`, a union of every JSON type, string lengths an anchored `pattern` already
fixes; and writes an `anyOf` of single-type branches as one node with a list of types.

The arguments are still validated by the tool's pydantic model, and its result by the output model:
the published schema is for the client only, so compacting it cannot loosen the server's checks.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["compact"]

# Keywords whose value maps names (property names, def names) to schemas, never schema keywords.
_SCHEMA_MAPS = frozenset({"properties", "$defs", "definitions", "patternProperties", "dependentSchemas"})
# Keywords whose value is data (an instance), not a schema: never walked.
_DATA = frozenset({"default", "const", "enum", "examples"})
# Annotations a validator ignores; kept in input schemas (the model reads them), dropped from outputs.
_OUTPUT_NOTES = frozenset({"description", "default", "examples"})
# Annotations a branch of an `anyOf` may carry into a merged node.
_NOTES = frozenset({"description", "default", "examples", "deprecated", "readOnly", "writeOnly"})
_DEF_PREFIX = "#/$defs/"
_NULL = {"type": "null"}
# Keywords that constrain instances of one JSON type only (integer shares number's).
_TYPE_KEYWORDS = {
    "string": frozenset({"minLength", "maxLength", "pattern", "format", "contentEncoding", "contentMediaType"}),
    "number": frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}),
    "array": frozenset({"items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains", "minContains",
                        "maxContains"}),
    "object": frozenset({"properties", "required", "additionalProperties", "patternProperties", "minProperties",
                         "maxProperties", "propertyNames", "dependentRequired", "dependentSchemas"}),
}
_EVERY_TYPE = frozenset({"null", "boolean", "number", "string", "array", "object"})
_BOUNDS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"})
# One character of an anchored pattern (a class `[...]`, an escape such as `\d`, or a plain character)
# and how many times: `{m}`, `{m,n}`, `?`, `*`, `+` or once.
_PATTERN_ATOM = re.compile(
    r"(?:\[(?:[^\]\\]|\\.)+\]|\\[dDwWsS.\-/:@_]|[A-Za-z0-9_:/@-])(?:\{(\d+)(?:,(\d+))?\}|([?*+]))?"
)
_COUNTS = {"?": (0, 1), "*": (0, None), "+": (1, None)}


def compact(schema: dict[str, Any], *, output: bool) -> dict[str, Any]:
    """`schema` without titles, with `anyOf [X, null]` as `type: [X, "null"]`, no null defaults and
    single-use `$defs` inlined; for an output schema also without annotations."""
    # Inlining puts a def's `type` where a `$ref` stood, so its `anyOf [.., null]` can merge only then.
    walked = _walk(_inline_single_use(_walk(schema, output)), output)
    return _share_repeats(walked) if output else walked


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
    _drop_no_ops(out)
    if output:
        _drop_implied_type(out)
    return _merge_branches(out)


def _drop_no_ops(node: dict[str, Any]) -> None:
    """Keywords that accept every instance, string lengths the pattern fixes, `1.0` bounds as `1`."""
    if node.get("items") == {}:
        del node["items"]
    if node.get("additionalProperties") is True:
        del node["additionalProperties"]
    for key in _BOUNDS & node.keys():
        value = node[key]
        if isinstance(value, float) and value.is_integer():
            node[key] = int(value)
    lengths = _pattern_lengths(node.get("pattern"))
    if lengths is not None:
        shortest, longest = lengths
        # Without ECMA's u flag a negated class matches half an astral character: no minimum from it.
        broad = "[^" in node["pattern"] or re.search(r"\\[DWS]", node["pattern"]) is not None
        if isinstance(node.get("minLength"), int) and node["minLength"] <= shortest and not broad:
            del node["minLength"]
        if isinstance(node.get("maxLength"), int) and longest is not None and longest <= node["maxLength"]:
            del node["maxLength"]


def _pattern_lengths(pattern: Any) -> tuple[int, int | None] | None:
    """(shortest, longest or None: unbounded) match of `^…$` made of one-character atoms; else None."""
    if not (isinstance(pattern, str) and pattern.startswith("^") and pattern.endswith("$")
            and not pattern.endswith("\\$")):
        return None
    body, at, shortest, longest = pattern[1:-1], 0, 0, 0
    unbounded = False
    while at < len(body):
        atom = _PATTERN_ATOM.match(body, at)
        if atom is None:
            return None
        low, high = _COUNTS.get(atom.group(3) or "", (1, 1))
        if atom.group(1) is not None:
            low = int(atom.group(1))
            high = int(atom.group(2)) if atom.group(2) is not None else low
        shortest, at = shortest + low, atom.end()
        if high is None:
            unbounded = True
        else:
            longest += high
    return shortest, None if unbounded else longest


def _drop_implied_type(node: dict[str, Any]) -> None:
    """An output `enum` of strings says the type already; `format` is only an annotation in 2020-12."""
    node.pop("format", None)
    values = node.get("enum")
    if node.get("type") == "string" and isinstance(values, list) and all(isinstance(v, str) for v in values):
        del node["type"]


def _merge_branches(node: dict[str, Any]) -> dict[str, Any]:
    """`{"anyOf": [{"type": T1, …}, {"type": T2, …}]}` → `{"type": [T1, T2], …}` when each branch's
    other keywords constrain instances of its own type only, so they cannot touch another branch's;
    `enum`s are joined (a null branch adds null). A union of every type constrains nothing."""
    branches = node.get("anyOf")
    if not (isinstance(branches, list) and len(branches) >= 2 and all(isinstance(b, dict) for b in branches)):
        return node
    rest = {key: value for key, value in node.items() if key != "anyOf"}
    if "enum" in rest or "type" in rest:
        return node
    enums = [b.get("enum", [None] if b == _NULL else None) for b in branches]
    if all(set(b) == {"enum"} or b == _NULL for b in branches):
        return {**rest, "enum": [value for values in enums for value in values or []]}
    types: list[str] = []
    merged: dict[str, Any] = {}
    for branch in branches:
        kind = branch.get("type")
        if not isinstance(kind, str) or kind in types:
            return node
        for key in set(branch) - {"type", "enum"}:
            if key in merged or key in rest or not (key in _NOTES or key in _TYPE_KEYWORDS.get(_family(kind), ())):
                return node
            merged[key] = branch[key]
        types.append(kind)
    families = [_family(kind) for kind in types]
    if any(key in _TYPE_KEYWORDS.get(family, ()) for family in families if families.count(family) > 1
           for key in merged):
        return node
    if any("enum" in branch for branch in branches):
        if not all(isinstance(values, list) for values in enums):
            return node
        merged["enum"] = [value for values in enums for value in values or []]
    if set(families) >= _EVERY_TYPE and not merged:
        return rest
    return {**rest, **merged, "type": types}


def _family(kind: str) -> str:
    return "number" if kind == "integer" else kind


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


def _share_repeats(schema: dict[str, Any]) -> dict[str, Any]:
    """A subschema written out several times, once in `$defs` and a `$ref` at each place, while that is
    shorter. Only for output schemas: validators resolve a `$ref`; a model reading arguments may not."""
    defs: dict[str, Any] = dict(schema.get("$defs") or {})
    body = {key: value for key, value in schema.items() if key != "$defs"}
    while True:
        seen: dict[str, tuple[int, Any]] = {}
        _subschemas(body, seen, top=True)
        for sub in defs.values():
            _subschemas(sub, seen, top=True)
        name = next(f"s{n}" for n in range(1, len(defs) + 2) if f"s{n}" not in defs)
        best, best_saving = None, 0
        for text, (count, node) in seen.items():
            ref = len(_DEF_PREFIX) + len(name) + 12  # {"$ref":"…"}
            saving = count * (len(text) - ref) - (len(text) + len(name) + 4) - (0 if defs else 11)
            if count > 1 and saving > best_saving:
                best, best_saving = node, saving
        if best is None:
            return {**body, "$defs": defs} if defs else body
        key = _canonical(best)
        body = _replace(body, key, name)
        defs = {def_name: _replace(sub, key, name) for def_name, sub in defs.items()}
        defs[name] = best


def _canonical(node: Any) -> str:
    return json.dumps(node, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _schema_children(node: dict[str, Any]) -> list[Any]:
    """The subschemas directly under `node` (the values of a name map, not the map itself)."""
    children: list[Any] = []
    for key, value in node.items():
        if key in _DATA or key == "$defs":
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            children += value.values()
        elif isinstance(value, dict):
            children.append(value)
        elif isinstance(value, list):
            children += [item for item in value if isinstance(item, dict)]
    return children


def _subschemas(node: Any, seen: dict[str, tuple[int, Any]], *, top: bool = False) -> None:
    if not isinstance(node, dict):
        return
    if not top and "$ref" not in node:
        text = _canonical(node)
        count, _ = seen.get(text, (0, node))
        seen[text] = (count + 1, node)
    for child in _schema_children(node):
        _subschemas(child, seen)


def _replace(node: Any, key: str, name: str) -> Any:
    if not isinstance(node, dict):
        return node
    if _canonical(node) == key:
        return {"$ref": _DEF_PREFIX + name}
    out: dict[str, Any] = {}
    for field, value in node.items():
        if field in _DATA or field == "$defs":
            out[field] = value
        elif field in _SCHEMA_MAPS and isinstance(value, dict):
            out[field] = {sub_name: _replace(sub, key, name) for sub_name, sub in value.items()}
        elif isinstance(value, list):
            out[field] = [_replace(item, key, name) for item in value]
        else:
            out[field] = _replace(value, key, name)
    return out
