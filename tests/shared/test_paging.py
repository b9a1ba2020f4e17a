"""The one cursor codec: offset cursors round-trip and refuse what they did not issue; signed
cursors refuse forgery, damage and another process's key."""

from __future__ import annotations

import base64

import pytest
from sophia_shared.errors import InvalidArgument
from sophia_shared.paging import SignedCursors, decode_offset, encode_offset, envelope, offset_page, paged


def test_offset_pages_walk_a_list_to_its_end() -> None:
    items = list(range(7))
    seen, cursor, pages = [], None, 0
    while True:
        chunk, cursor = offset_page(items, cursor, 3)
        seen += chunk
        pages += 1
        if cursor is None:
            break
    assert seen == items and pages == 3
    assert decode_offset(None) == 0 and decode_offset(encode_offset(42)) == 42


def test_paged_gives_the_envelope_fields_every_list_tool_returns() -> None:
    first, fields = paged(list(range(5)), None, 3)
    assert first == [0, 1, 2] and fields["total"] == 5 and fields["truncated"] is True
    last, fields = paged(list(range(5)), fields["next_cursor"], 3)
    assert last == [3, 4] and fields == {"total": 5, "truncated": False, "next_cursor": None}
    assert envelope(None, "next") == {"total": None, "truncated": True, "next_cursor": "next"}


@pytest.mark.parametrize("cursor", ["abc", "42", "o:5", base64.urlsafe_b64encode(b"o:-1").decode(),
                                    base64.urlsafe_b64encode(b"o:" + b"9" * 13).decode(), "\u00e9\u00e9\u00e9\u00e9"])
def test_an_offset_cursor_not_issued_here_is_an_invalid_argument(cursor: str) -> None:
    with pytest.raises(InvalidArgument):
        decode_offset(cursor)


def test_signed_cursors_carry_state_and_refuse_tampering() -> None:
    cursors = SignedCursors()
    cursor = cursors.issue({"o": 10, "p": "ada"})
    assert cursors.redeem(cursor) == {"o": 10, "p": "ada"}
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[3] ^= 1
    forged = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    for bad in (forged, cursor[:-2], "", "!!", "a" * 30):
        assert cursors.redeem(bad) is None
    assert SignedCursors().redeem(cursor) is None  # another process (or a restart): another key
