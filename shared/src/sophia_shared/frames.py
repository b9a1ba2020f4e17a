"""Frames from the wire, checked before anything else reads them. `check_frame` never raises.

A frame (one stdio line, one HTTP POST body) becomes either a checked JSON-RPC message (a dict) or
a `Rejected` that carries the JSON-RPC error to write back: -32700 when it is not JSON (or not
UTF-8, or too large to read), -32600 when it is JSON but not an MCP message. The error carries the
frame's id whenever one can be read, even from a frame that does not parse (its top-level members
are read one by one up to the broken one), so a client is answered instead of waiting for its own
timeout. Requests are answered; notifications and responses never are (JSON-RPC gives them no
answer), they are only dropped.

Limits are explicit (SuiteSettings.frame_max_bytes, frame_max_depth):
- a frame over `max_bytes` is refused unread;
- nesting deeper than `max_depth` (counting the envelope: `params.arguments.x` is depth 3) is
  refused; the SDK's own parser silently drops anything past ~197 levels, and Python's json
  raises RecursionError near 1,000, both caught here;
- strings holding a lone surrogate (`"\\ud800"` without its pair) are refused, not replaced: the
  SDK cannot parse or serialize them, and a tool must never run on arguments other than the ones
  sent (a path or a SQL text silently changed by a replacement character);
- NaN and Infinity are refused (not JSON; the SDK would accept them);
- the envelope: `jsonrpc` is "2.0", `method` a string, `params` an object when present, `id` a
  string or an integer (not a boolean, not null).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600

RequestId = str | int

# The SDK's parser (pydantic-core) gives up at about 197 levels and the frame is then never
# answered; any limit must stay below that so every frame the SDK sees is one it can read.
SDK_MAX_DEPTH: Final = 190


@dataclass(frozen=True, slots=True)
class FrameLimits:
    """How large and how deep a frame may be."""

    max_bytes: int = 16 * 1024 * 1024
    max_depth: int = 64
    # How long a stdio edge keeps answering requests it already read once its input has ended.
    drain_s: float = 30.0

    @classmethod
    def from_settings(cls, suite: Any) -> FrameLimits:
        """The limits in `suite` (a SuiteSettings)."""
        return cls(max_bytes=int(suite.frame_max_bytes), max_depth=int(suite.frame_max_depth),
                   drain_s=float(suite.stdio_drain_s))


DEFAULT_LIMITS: Final = FrameLimits()


@dataclass(frozen=True, slots=True)
class Rejected:
    """A frame that is not a usable message, and what to answer (if anything)."""

    code: int
    reason: str
    request_id: RequestId | None
    answer: bool

    def response(self) -> dict[str, Any] | None:
        """The JSON-RPC error to write back, or None when the frame gets no answer."""
        if not self.answer:
            return None
        return error_response(self.request_id, self.code, self.reason)

    def response_line(self) -> bytes | None:
        """`response()` as one compact JSON line without its newline, or None."""
        response = self.response()
        return None if response is None else json.dumps(response, separators=(",", ":")).encode()


def error_response(request_id: RequestId | None, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def usable_id(value: Any) -> bool:
    """True for an id a response can carry back (a string or an integer; bool is not an int here)."""
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def check_frame(data: bytes | bytearray | str, limits: FrameLimits = DEFAULT_LIMITS) -> dict[str, Any] | Rejected:
    """The checked JSON-RPC message in `data`, or why it is refused (never raises)."""
    if len(data) > limits.max_bytes:
        head = data[:_ID_SCAN_CHARS]
        text = head.decode("utf-8", "replace") if isinstance(head, bytes | bytearray) else head
        return Rejected(PARSE_ERROR, f"frame of {len(data)} bytes is over the limit of {limits.max_bytes} "
                        "(SOPHIA_FRAME_MAX_BYTES)", _recover_id(text), True)
    if isinstance(data, bytes | bytearray):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return Rejected(PARSE_ERROR, "frame is not valid UTF-8", _recover_id(data.decode("utf-8", "replace")), True)
    else:
        text = data
    try:
        message = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        return Rejected(INVALID_REQUEST, _too_deep(limits), _recover_id(text), True)
    except ValueError:  # JSONDecodeError, NaN/Infinity, an integer over Python's digit limit
        return Rejected(PARSE_ERROR, "frame is not valid JSON", _recover_id(text), True)
    if not isinstance(message, dict):
        return Rejected(INVALID_REQUEST, "a frame must be one JSON-RPC object (batches are not part of MCP)",
                        None, True)
    problem = _envelope_problem(message)
    if problem is None and (text.count("[") + text.count("{") > limits.max_depth or _SURROGATE_ESCAPE.search(text)):
        problem = _content_problem(message, limits)
    if problem is None:
        return message
    request_id = message.get("id")
    return Rejected(INVALID_REQUEST, problem, request_id if usable_id(request_id) else None, _is_request(message))


def _is_request(message: dict[str, Any]) -> bool:
    """Whether a refused object gets an answer: anything but a notification or a response."""
    if "method" in message:
        return "id" in message
    return not ("result" in message or "error" in message)


def _envelope_problem(message: dict[str, Any]) -> str | None:
    if message.get("jsonrpc") != "2.0":
        return 'jsonrpc must be "2.0"'
    if "method" not in message:
        if "result" not in message and "error" not in message:
            return "a request needs a method"
        if not usable_id(message.get("id")):
            return "a response needs a string or integer id"
        if "result" in message and "error" in message:
            return "a response has a result or an error, not both"
        if "result" in message:
            return None if isinstance(message["result"], dict) else "a response's result must be an object"
        error = message["error"]
        code = error.get("code") if isinstance(error, dict) else None
        if not (isinstance(code, int) and not isinstance(code, bool) and isinstance(error.get("message"), str)):
            return "a response's error must be an object with an integer code and a string message"
        return None
    if not isinstance(message["method"], str):
        return "method must be a string"
    if "id" in message and not usable_id(message["id"]):
        return "id must be a string or an integer"
    if "params" in message and not isinstance(message["params"], dict):
        return "params must be an object"
    return None


def _content_problem(message: dict[str, Any], limits: FrameLimits) -> str | None:
    """Depth and lone surrogates, walked without recursion (only for frames that may have either)."""
    stack: list[tuple[Any, int]] = [(message, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            if depth > limits.max_depth:
                return _too_deep(limits)
            for key, item in value.items():
                if _has_lone_surrogate(key):
                    return _SURROGATE_REASON
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            if depth > limits.max_depth:
                return _too_deep(limits)
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str) and _has_lone_surrogate(value):
            return _SURROGATE_REASON
    return None


def _has_lone_surrogate(text: str) -> bool:
    # json.loads joins a valid escaped pair into one character, so any surrogate left is lone.
    return not text.isascii() and _SURROGATE.search(text) is not None


def _too_deep(limits: FrameLimits) -> str:
    return f"frame is nested deeper than {limits.max_depth} levels (SOPHIA_FRAME_MAX_DEPTH)"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_SURROGATE_REASON = "frame holds a lone surrogate (\\ud800-\\udfff without its pair); send valid Unicode"

# Reading the id of a frame that does not parse: its top-level members in order, each value parsed
# alone, stopping at the first that fails. Clients write the id before params, so the id of a frame
# broken (or too deep) inside its params is still found.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
_SPACE = re.compile(r"[ \t\n\r]*")
_ID_SCAN_CHARS = 64 * 1024
_ID_SCAN_MEMBERS = 16


def _recover_id(text: str) -> RequestId | None:
    try:
        return _scan_for_id(text)
    except (ValueError, RecursionError, IndexError):
        return None


def _skip_space(text: str, at: int) -> int:
    match = _SPACE.match(text, at)
    return match.end() if match is not None else at


def _scan_for_id(text: str) -> RequestId | None:
    at = _skip_space(text, 0)
    if text[at:at + 1] != "{":
        return None
    at += 1
    for _ in range(_ID_SCAN_MEMBERS):
        at = _skip_space(text, at)
        key, at = _DECODER.raw_decode(text, at)
        at = _skip_space(text, at)
        if not isinstance(key, str) or text[at:at + 1] != ":":
            return None
        at = _skip_space(text, at + 1)
        value, at = _DECODER.raw_decode(text, at)
        if key == "id":
            return value if usable_id(value) else None
        at = _skip_space(text, at)
        if text[at:at + 1] != ",":
            return None
        at += 1
    return None
