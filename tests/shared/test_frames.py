"""The frame check every edge runs first: each kind of bad frame, the id read back, the limits."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sophia_shared.frames import DEFAULT_LIMITS, INVALID_REQUEST, PARSE_ERROR, FrameLimits, Rejected, check_frame
from sophia_shared.settings import SuiteSettings


def _call(**params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _rejected(data: bytes | str, limits: FrameLimits = DEFAULT_LIMITS) -> Rejected:
    result = check_frame(data, limits)
    assert isinstance(result, Rejected), result
    return result


def test_a_good_request_is_returned_as_its_message() -> None:
    message = _call(name="memory_search", arguments={"query": "é ☃ 😀", "limit": 3})
    assert check_frame(json.dumps(message).encode()) == message
    assert check_frame(json.dumps(message, ensure_ascii=False)) == message


@pytest.mark.parametrize(
    ("frame", "code", "request_id"),
    [
        (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"t":"\\ud800"}}}',
         INVALID_REQUEST, 1),
        (b'{"jsonrpc":"2.0","id":"k","method":"tools/call","params":{"name":"x","arguments":{"\\udfff":1}}}',
         INVALID_REQUEST, "k"),
        (b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":[1]}', INVALID_REQUEST, 3),
        (b'{"jsonrpc":"2.0","id":3,"method":"tools/list","params":"x"}', INVALID_REQUEST, 3),
        (b'{"jsonrpc":"1.0","id":4,"method":"tools/list"}', INVALID_REQUEST, 4),
        (b'{"id":4,"method":"tools/list"}', INVALID_REQUEST, 4),
        (b'{"jsonrpc":"2.0","id":5,"method":5}', INVALID_REQUEST, 5),
        (b'{"jsonrpc":"2.0","id":1.5,"method":"tools/list"}', INVALID_REQUEST, None),
        (b'{"jsonrpc":"2.0","id":true,"method":"tools/list"}', INVALID_REQUEST, None),
        (b'{"jsonrpc":"2.0","id":null,"method":"tools/list"}', INVALID_REQUEST, None),
        (b'{"jsonrpc":"2.0","id":6}', INVALID_REQUEST, 6),
        (b'{"jsonrpc":"2.0","id":9,', PARSE_ERROR, 9),
        (b'{"jsonrpc":"2.0","id":"a b","method":"tools/call","params":{"name":', PARSE_ERROR, "a b"),
        (b'{"jsonrpc":"2.0","id":10,"method":"x","params":{"a":NaN}}', PARSE_ERROR, 10),
        (b'{"jsonrpc":"2.0","id":11,"method":"x","params":{"a":"\xff"}}', PARSE_ERROR, 11),
        (b"not json at all", PARSE_ERROR, None),
        (b"[1, 2]", INVALID_REQUEST, None),
        (b"null", INVALID_REQUEST, None),
        (b"", PARSE_ERROR, None),
    ],
)
def test_bad_requests_get_an_error_with_their_id(frame: bytes, code: int, request_id: Any) -> None:
    rejected = _rejected(frame)
    response = rejected.response()
    assert response is not None
    assert response["id"] == request_id
    assert response["error"]["code"] == code
    assert "Traceback" not in response["error"]["message"]
    assert json.loads(rejected.response_line() or b"") == response


@pytest.mark.parametrize("depth", [63, 64, 150, 250, 1_500, 100_000])
def test_depth_is_checked_at_any_depth_without_recursion_errors(depth: int) -> None:
    limits = FrameLimits(max_depth=64)
    frame = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call"})[:-1] + ', "params": {"a": '
    frame += "[" * depth + "]" * depth + "}}"
    result = check_frame(frame, limits)
    if depth + 2 <= 64:  # the envelope and params are two levels
        assert isinstance(result, dict)
    else:
        assert isinstance(result, Rejected)
        assert (result.request_id, result.code, result.answer) == (1, INVALID_REQUEST, True)
        assert "SOPHIA_FRAME_MAX_DEPTH" in result.reason


def test_an_oversized_frame_is_refused_unread_but_answered() -> None:
    frame = json.dumps(_call(name="x", arguments={"blob": "a" * 5000})).encode()
    rejected = _rejected(frame, FrameLimits(max_bytes=4096))
    assert (rejected.request_id, rejected.code) == (7, PARSE_ERROR)
    assert "SOPHIA_FRAME_MAX_BYTES" in rejected.reason


def test_a_valid_surrogate_pair_is_one_character_and_accepted() -> None:
    result = check_frame(b'{"jsonrpc":"2.0","id":1,"method":"x","params":{"t":"\\ud83d\\ude00","u":"\\\\ud800"}}')
    assert isinstance(result, dict)
    assert result["params"] == {"t": "😀", "u": "\\ud800"}


@pytest.mark.parametrize(
    "frame",
    [
        b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":[1]}',
        b'{"jsonrpc":"2.0","method":7}',
        b'{"jsonrpc":"2.0","id":1,"result":5}',
        b'{"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"m"}}',
        b'{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"m"}}',
        b'{"jsonrpc":"2.0","result":{}}',
    ],
)
def test_bad_notifications_and_responses_are_dropped_unanswered(frame: bytes) -> None:
    rejected = _rejected(frame)
    assert rejected.response() is None
    assert rejected.response_line() is None


def test_the_limits_are_settings() -> None:
    suite = SuiteSettings(frame_max_bytes=2048, frame_max_depth=8)
    assert FrameLimits.from_settings(suite) == FrameLimits(max_bytes=2048, max_depth=8)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=2000, deadline=None, derandomize=True)
@given(st.binary(max_size=300) | _JSON.map(lambda v: json.dumps(v).encode()) | st.text(max_size=200))
def test_never_raises_and_always_says_what_to_answer(data: bytes | str) -> None:
    result = check_frame(data)
    if isinstance(result, Rejected):
        response = result.response()
        assert response is None or set(response) == {"jsonrpc", "id", "error"}
    else:
        assert result["jsonrpc"] == "2.0"
