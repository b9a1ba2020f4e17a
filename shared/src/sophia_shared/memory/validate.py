"""Checks every store call makes before touching a backend, and the opaque list cursor."""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from . import NAMESPACE_PATTERN, TAG_PATTERN, MemoryFilter, MemoryInput, MemoryPatch
from .errors import InvalidMemory, MemoryLimitExceeded
from .settings import MemorySettings

_TENANT = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")
_NAMESPACE = re.compile(NAMESPACE_PATTERN)
_TAG = re.compile(TAG_PATTERN)


def tenant(value: str) -> str:
    """A tenant name: 1-200 printable characters."""
    if not isinstance(value, str) or not _TENANT.match(value) or not value.strip():
        raise InvalidMemory("tenant must be 1-200 printable characters")
    return value


def text(value: str, settings: MemorySettings) -> str:
    """Normalised (NFC) text within the configured length."""
    normalised = unicodedata.normalize("NFC", value)
    if not normalised.strip():
        raise InvalidMemory("text is empty: give the content to remember")
    if len(normalised) > settings.max_text_chars:
        raise MemoryLimitExceeded(
            f"text has {len(normalised)} characters; the limit is {settings.max_text_chars} "
            "(SOPHIA_MEMORY_MAX_TEXT_CHARS): split it into several memories",
            data={"length": len(normalised), "limit": settings.max_text_chars},
        )
    return normalised


def tags(values: Sequence[str], settings: MemorySettings) -> list[str]:
    """Distinct, stripped tags in first-seen order, within the configured count."""
    seen: dict[str, None] = {}
    for raw in values:
        tag = raw.strip()
        if not _TAG.match(tag):
            raise InvalidMemory(f"tag {raw[:70]!r} must be 1-64 characters without commas or control characters")
        seen.setdefault(tag, None)
    if len(seen) > settings.max_tags:
        raise MemoryLimitExceeded(f"{len(seen)} tags; the limit is {settings.max_tags} (SOPHIA_MEMORY_MAX_TAGS)")
    return list(seen)


def namespace(value: str) -> str:
    """A namespace: letters, digits and . _ : / - (1-64, starting with a letter or digit)."""
    if not _NAMESPACE.match(value):
        raise InvalidMemory(
            f"namespace {value[:70]!r} must be 1-64 characters of letters, digits and . _ : / - "
            "starting with a letter or digit"
        )
    return value


def utc(value: datetime | None) -> datetime | None:
    """Aware UTC datetimes; naive ones are taken as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def memory_input(item: MemoryInput, settings: MemorySettings) -> MemoryInput:
    """A normalised copy of a write, or InvalidMemory / MemoryLimitExceeded."""
    normalised = text(item.text, settings)
    embed_from = 0
    if item.embed_from:
        # Offsets are kept on the normalised text: the embedded part must still be its suffix.
        embedded = unicodedata.normalize("NFC", item.text[item.embed_from :])
        if not embedded.strip() or not normalised.endswith(embedded):
            raise InvalidMemory("embed_from must leave some text to embed (and not split a character)")
        embed_from = len(normalised) - len(embedded)
    return item.model_copy(
        update={
            "text": normalised,
            "embed_from": embed_from,
            "namespace": namespace(item.namespace),
            "tags": tags(item.tags, settings),
            "expires_at": utc(item.expires_at),
        }
    )


def patch(value: MemoryPatch, settings: MemorySettings) -> MemoryPatch:
    """A normalised copy of a patch; an empty patch is refused."""
    fields = value.model_dump(exclude_unset=True, exclude_none=True)
    fields.pop("clear_expiry", None)
    if not fields and not value.clear_expiry:
        raise InvalidMemory("nothing to update: give at least one of text, tags, importance, source, expires_at")
    if value.clear_expiry and value.expires_at is not None:
        raise InvalidMemory("give either expires_at or clear_expiry, not both")
    return value.model_copy(
        update={
            "text": text(value.text, settings) if value.text is not None else None,
            "tags": tags(value.tags, settings) if value.tags is not None else None,
            "expires_at": utc(value.expires_at),
        }
    )


def memory_filter(value: MemoryFilter | None, settings: MemorySettings) -> MemoryFilter:
    """A normalised filter (None: match everything); contradictory bounds are refused."""
    if value is None:
        return MemoryFilter()
    for ns in value.namespaces or []:
        namespace(ns)
    if value.namespaces is not None and not value.namespaces:
        raise InvalidMemory("namespaces is empty: omit it to search every namespace")
    after, before = utc(value.created_after), utc(value.created_before)
    if after and before and after >= before:
        raise InvalidMemory("created_after must be earlier than created_before")
    return value.model_copy(
        update={
            "tags_any": tags(value.tags_any, settings) if value.tags_any else None,
            "tags_all": tags(value.tags_all, settings) if value.tags_all else None,
            "created_after": after,
            "created_before": before,
        }
    )


def is_empty(value: MemoryFilter) -> bool:
    """True when the filter selects every memory (expiry aside)."""
    return not any(
        [
            value.namespaces,
            value.tags_any,
            value.tags_all,
            value.source,
            value.source_ref,
            value.created_after,
            value.created_before,
        ]
    )


def bounded(name: str, value: int, low: int, high: int, setting: str) -> int:
    """An integer argument within [low, high]."""
    if value < low:
        raise InvalidMemory(f"{name} must be at least {low}")
    if value > high:
        raise MemoryLimitExceeded(f"{name} is {value}; the limit is {high} ({setting})")
    return value


@dataclass(frozen=True)
class CursorKey:
    """Where a listing page ended: the last item's creation instant and id."""

    created_at: datetime
    memory_id: str


def encode_cursor(key: CursorKey) -> str:
    """An opaque, URL-safe cursor."""
    raw = json.dumps({"c": key.created_at.isoformat(), "i": key.memory_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> CursorKey:
    """The key inside a cursor, or InvalidMemory naming the fix."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        created = datetime.fromisoformat(data["c"])
        memory_id = data["i"]
        if not isinstance(memory_id, str) or created.tzinfo is None:
            raise ValueError("bad cursor fields")
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidMemory("cursor is not valid: pass next_cursor from the previous page unchanged") from exc
    return CursorKey(created, memory_id)
