"""Hostile input for the fuzz suites: malformed JSON-RPC frames, and argument sets from a tool's schema.

A generated frame knows whether it must be answered: it is a request whose id (ours, unique) is
its first member, so any edge that promises "every frame with a usable id gets an answer" must
answer it — even when the frame is truncated after that id, nested 5,000 deep or holds a lone
surrogate. Frames without a readable id (random bytes, notifications, responses) must get no
crash and no traceback; whether they are answered (with id null) is up to the edge.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

# Methods a client may send, plus nonsense. notifications/cancelled is left out: a cancelled
# request is (rightly) never answered, and the suites count answers.
METHODS = [
    "tools/call", "tools/list", "ping", "resources/list", "resources/read", "prompts/list", "prompts/get",
    "completion/complete", "logging/setLevel", "initialize", "notifications/initialized",
    "notifications/progress", "resources/subscribe", "foo/bar", "", "tools/call\u0000",
]

CONTROL = "".join(chr(c) for c in range(32)) + "\u007f\u0085\u200b\u200e\u202e\u2028\ufeff"

_TEXT = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(CONTROL), max_size=40)
_HUGE_TEXT = st.integers(10_000, 60_000).map(lambda n: "A" * n)
_SCALAR = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT
)


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if depth % 2 else {"k": value}
    return value


_ORDINARY = st.recursive(
    _SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4), max_leaves=8)
# Huge and deep values are a small share by count (they would be most of the bytes otherwise).
_RARE: list[st.SearchStrategy[Any]] = [
    st.integers(30, 300).map(nested),
    _HUGE_TEXT,
    st.builds(lambda n: {"k" * n: 1}, st.integers(5_000, 60_000)),
]
JSON_VALUES: st.SearchStrategy[Any] = st.integers(0, 39).flatmap(lambda r: _RARE[r] if r < len(_RARE) else _ORDINARY)


@dataclass(frozen=True)
class FrameShape:
    """A frame before its id is known: the object (its id will be the first member), or raw bytes."""

    body: dict[str, Any] | bytes
    has_id: bool
    cut: float = 0.5


# What is done to each generated object's bytes: sent whole, then cut short after its id, with
# 5,000-deep raw nesting, a lone surrogate escape, bytes that are not UTF-8, and a NaN added.
MUTATIONS = ("none", "truncate", "deep", "surrogate", "not_utf8", "nan")


def _params(tool_names: list[str]) -> st.SearchStrategy[Any]:
    call = st.fixed_dictionaries(
        {"name": st.sampled_from(tool_names) | _TEXT | _HUGE_TEXT},
        optional={
            "arguments": st.dictionaries(_TEXT, JSON_VALUES, max_size=4) | JSON_VALUES,
            "_meta": JSON_VALUES | st.fixed_dictionaries({"progressToken": JSON_VALUES}),
        },
    )
    return call | JSON_VALUES | st.dictionaries(_TEXT, JSON_VALUES, max_size=3)


def frame_shapes(tool_names: list[str]) -> st.SearchStrategy[FrameShape]:
    """Malformed (and some well-formed) frames: bad envelopes, bad params, huge and deep values.

    Weighted towards what gets furthest into an edge: most frames are `jsonrpc: "2.0"` tools/call
    requests naming a real tool, with one part (arguments, `_meta`, the name) hostile."""
    envelope = st.fixed_dictionaries(
        {},
        optional={
            "jsonrpc": st.sampled_from(["2.0"] * 6 + ["1.0", 2, None, ""]),
            "method": st.sampled_from(["tools/call"] * len(METHODS) + METHODS) | JSON_VALUES,
            "params": _params(tool_names),
        },
    )
    call = st.fixed_dictionaries({
        "jsonrpc": st.just("2.0"),
        "method": st.just("tools/call"),
        "params": st.fixed_dictionaries(
            {"name": st.sampled_from(tool_names)},
            optional={
                "arguments": st.dictionaries(_TEXT, JSON_VALUES, max_size=4),
                "_meta": JSON_VALUES | st.dictionaries(st.sampled_from(["progressToken", "sophia/principal",
                                                                        "sophia/correlation_id"]), JSON_VALUES),
            },
        ),
    })
    with_id = st.builds(
        FrameShape,
        body=(call | envelope).filter(lambda e: "method" in e or ("result" not in e and "error" not in e)),
        has_id=st.just(True),
        cut=st.floats(0.0, 1.0),
    )
    no_id = st.builds(FrameShape, body=envelope, has_id=st.just(False))
    raw = st.builds(FrameShape, body=st.binary(max_size=200).map(lambda b: b.replace(b"\n", b" ")),
                    has_id=st.just(False))
    kinds = [with_id] * 6 + [no_id, raw]
    return st.integers(0, len(kinds) - 1).flatmap(lambda r: kinds[r])


def render_all(shape: FrameShape, next_id: Callable[[], str]) -> list[tuple[bytes, str | None]]:
    """Every frame made from `shape` (its bytes, no newline) with the id it must be answered with, if any."""
    if isinstance(shape.body, bytes):
        return [(shape.body, None)]
    mutations = MUTATIONS if shape.has_id else ("none", "deep")
    frames = []
    for mutation in mutations:
        request_id = next_id()
        frames.append((render(shape, request_id, mutation), request_id if shape.has_id else None))
    return frames


def render(shape: FrameShape, request_id: str, mutation: str) -> bytes:
    assert isinstance(shape.body, dict)
    body = {"id": request_id, **shape.body} if shape.has_id else dict(shape.body)
    text = json.dumps(body, ensure_ascii=mutation != "not_utf8")
    head = len(json.dumps({"id": request_id})) - 1  # where the id member ends
    if mutation == "truncate":
        text = text[: head + int((len(text) - head) * shape.cut)]
    elif mutation != "none":
        extra = {"deep": "[" * 5000 + "]" * 5000, "surrogate": '"\\ud800"', "nan": "NaN", "not_utf8": '"~"'}
        text = text[:-1] + (", " if body else "") + '"zz": ' + extra[mutation] + "}"
    data = text.encode("utf-8", "surrogatepass")
    if mutation == "not_utf8":
        data = data.replace(b'"~"}', b'"\xff\xfe"}')
    # A frame never holds a raw newline (json.dumps escapes them); the wire splits on them.
    return data.replace(b"\n", b" ")


# -- argument sets from a tool's input schema ------------------------------------------------


def from_schema(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values that follow `schema` (as far as this small reader of JSON Schema goes)."""
    if "$ref" in schema:
        return from_schema(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([from_schema(s, defs) for s in schema[key]])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**schema, "type": k}, defs) for k in kind])
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(
                lambda s: len(s) <= int(schema.get("maxLength", 10**6)))
        return st.text(min_size=int(schema.get("minLength", 0)), max_size=min(int(schema.get("maxLength", 60)), 60))
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), defs), max_size=min(int(schema.get("maxItems", 5)), 5))
    if kind == "object" or "properties" in schema:
        return object_from_schema(schema, defs)
    return JSON_VALUES


def object_from_schema(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    return st.fixed_dictionaries(
        {k: from_schema(v, defs) for k, v in properties.items() if k in required},
        optional={k: from_schema(v, defs) for k, v in properties.items() if k not in required},
    )


def argument_sets(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Arguments that follow a tool's schema (the base that `variants` turns hostile)."""
    return object_from_schema(schema, schema.get("$defs", {}))


# Swapped in for each parameter in turn: wrong types, edge numbers, control and bidi characters,
# a 100,000-character string, values nested 150 deep, a long list.
HOSTILE_VALUES: list[Any] = [
    None, True, -1, 2**64, -1.5e308, "", "\x00\x1b[31m\u202e\u200b\ufeff", "A" * 100_000, nested(150),
    [], {"k": [1, {"k": None}]}, ["x"] * 1_000,
]


def variants(arguments: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """`arguments`, then each parameter given each hostile value, each present key dropped, and
    unknown keys added: many argument sets from one generated set, cheaply."""
    out = [arguments]
    for key in schema.get("properties", {}):
        out.extend({**arguments, key: value} for value in HOSTILE_VALUES)
    out.extend({k: v for k, v in arguments.items() if k != key} for key in arguments)
    out.append({**arguments, "zz_unknown": 1, "\u0000": "x", "k" * 5_000: None})
    return out
