"""How a batch of new memories is written: the dedupe and merge policy, once for both backends.

A backend supplies only its SQL, as a `BatchWriter` bound to its open transaction; which row merges
into which memory, and what the merged memory holds, is decided here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol, TypeVar

from . import Memory
from .core import NewRow, Written

K = TypeVar("K")


@dataclass(frozen=True)
class Existing:
    """What a merge keeps of the memory a new row duplicates."""

    tags: list[str]
    importance: float
    source: str | None
    source_ref: str | None


class BatchWriter(Protocol[K]):
    """One backend's statements for `write_batch`, inside one transaction; `K` is its key for a row."""

    def nearest(self, row: NewRow) -> tuple[K, float] | None:
        """The live memory of the row's namespace most similar to it (earlier rows of this batch
        included), and the cosine similarity; None in an empty namespace."""
        ...

    def existing(self, key: K) -> Existing: ...

    def overwrite(self, key: K, row: NewRow) -> Memory:
        """Write `row` (all but its id and namespace) over the memory at `key`; the memory as stored."""
        ...

    def insert(self, row: NewRow) -> None: ...


def merged(existing: Existing, row: NewRow) -> NewRow:
    """`row` as written over its duplicate: its own text, vector and expiry, the tags of both (the
    old first), the higher importance, and the old source and source_ref where it names none."""
    return replace(
        row,
        tags=list(dict.fromkeys([*existing.tags, *row.tags])),
        importance=max(existing.importance, row.importance),
        source=row.source if row.source is not None else existing.source,
        source_ref=row.source_ref if row.source_ref is not None else existing.source_ref,
    )


def created(row: NewRow, *, tenant: str, model: str, at: datetime) -> Memory:
    """The memory an inserted row is, without reading it back."""
    return Memory(
        id=row.id,
        tenant=tenant,
        namespace=row.namespace,
        text=row.text,
        tags=row.tags,
        source=row.source,
        source_ref=row.source_ref,
        importance=row.importance,
        created_at=at,
        updated_at=at,
        expires_at=row.expires_at,
        embedding_model=model,
    )


def write_batch(
    writer: BatchWriter[K],
    rows: Sequence[NewRow],
    *,
    tenant: str,
    model: str,
    at: datetime,
    dedupe_threshold: float | None,
) -> list[Written]:
    """Write rows in order: one at least `dedupe_threshold` similar to a live memory is merged into
    it, any other inserted (so a later row of the batch may merge into it)."""
    out: list[Written] = []
    for row in rows:
        near = writer.nearest(row) if dedupe_threshold is not None else None
        if near is not None and dedupe_threshold is not None and near[1] >= dedupe_threshold:
            key, similarity = near
            memory = writer.overwrite(key, merged(writer.existing(key), row))
            out.append(Written("updated", memory, memory.id, round(similarity, 6)))
        else:
            writer.insert(row)
            out.append(Written("created", created(row, tenant=tenant, model=model, at=at)))
    return out
