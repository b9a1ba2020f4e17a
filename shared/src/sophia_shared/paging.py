"""One cursor codec for every list tool: cursors are opaque to the model (it passes `next_cursor`
back unchanged, or omits it to start over).

- A cursor that holds only a position (`encode_offset`): base64url of "o:<offset>", not signed: a
  forged one can only skip to rows the same call would list anyway.
- A cursor that carries state the server must trust (a statement, a principal): `SignedCursors`,
  HMAC-SHA256 over compact JSON with a per-process key, so it cannot be forged or moved to another
  statement or caller (and a restart invalidates it, which the error says).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from typing import Any, TypedDict, TypeVar

from pydantic import BaseModel, Field

from .errors import InvalidArgument

T = TypeVar("T")

# More digits than any list holds; bounds the work a hostile cursor can cause.
_MAX_OFFSET_DIGITS = 12
_TAG_BYTES = 16
NOT_OURS = "cursor is not one this tool returned: pass next_cursor unchanged, or omit it to start over"


def encode_offset(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def decode_offset(cursor: str | None) -> int:
    """The offset in a cursor from `encode_offset` (0 when there is none), else invalid_argument."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    digits = text[2:]
    if not text.startswith("o:") or not digits.isdigit() or len(digits) > _MAX_OFFSET_DIGITS:
        raise InvalidArgument(NOT_OURS)
    return int(digits)


def offset_page(items: Sequence[T], cursor: str | None, limit: int) -> tuple[list[T], str | None]:
    """The page of `items` the cursor points at, and the cursor of the next page (None: the last)."""
    start = decode_offset(cursor)
    end = start + limit
    return list(items[start:end]), (encode_offset(end) if end < len(items) else None)


class PageFields(TypedDict):
    """`Page`'s three fields, for a list tool's output model as `**fields`."""

    total: int | None
    truncated: bool
    next_cursor: str | None


def envelope(total: int | None, next_cursor: str | None) -> PageFields:
    """The envelope's fields of a page that `next_cursor` continues (None: the last page)."""
    return PageFields(total=total, truncated=next_cursor is not None, next_cursor=next_cursor)


def paged(items: Sequence[T], cursor: str | None, limit: int) -> tuple[list[T], PageFields]:
    """`offset_page`, with the envelope's fields: the whole list's total and whether more follow."""
    chunk, next_cursor = offset_page(items, cursor, limit)
    return chunk, envelope(len(items), next_cursor)


class SignedCursors:
    """Cursors carrying state, signed with a key of this process."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def _tag(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_TAG_BYTES]

    def issue(self, state: dict[str, Any]) -> str:
        body = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
        return base64.urlsafe_b64encode(body + self._tag(body)).decode("ascii").rstrip("=")

    def redeem(self, cursor: str) -> dict[str, Any] | None:
        """The state a cursor of this process carries, or None (forged, damaged, or from before a restart)."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            return None
        body, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
        if len(raw) <= _TAG_BYTES or not hmac.compare_digest(self._tag(body), tag):
            return None
        try:
            state = json.loads(body)
        except ValueError:
            return None
        return state if isinstance(state, dict) else None


class Page(BaseModel):
    """The page envelope of every list tool: the items under their plural name (`calls`, `users`, …)
    in the subclass, and these three fields, named and meant the same in every server (all three
    always present)."""

    total: int | None = Field(description="items matching the request over all pages (null: the system does not say)")
    truncated: bool = Field(description="true when more items follow: pass next_cursor to get them")
    next_cursor: str | None = Field(description="pass back as cursor for the next page; null on the last page")
