"""The merge policy over a fake backend: which row merges into which memory, and what it keeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from sophia_shared.memory import Memory
from sophia_shared.memory.core import NewRow
from sophia_shared.memory.merge import Existing, created, write_batch

AT = datetime(2026, 1, 2, tzinfo=UTC)


def _row(id: str, *, similarity_key: float, tags: list[str], source: str | None = None) -> NewRow:
    # The fake's "vector" is one number; rows with the same number are the same fact.
    return NewRow(id, "ns", f"text {id}", tags, source, None, 0.5, None, np.array([similarity_key], np.float32))


@dataclass
class FakeWriter:
    """Memories keyed by position; a row is as similar to a memory as their one-number vectors agree."""

    rows: list[NewRow] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def nearest(self, row: NewRow) -> tuple[int, float] | None:
        if not self.rows:
            return None
        scores = [1.0 - abs(float(r.embedding[0] - row.embedding[0])) for r in self.rows]
        best = max(range(len(scores)), key=scores.__getitem__)
        return best, scores[best]

    def existing(self, key: int) -> Existing:
        row = self.rows[key]
        return Existing(row.tags, row.importance, row.source, row.source_ref)

    def overwrite(self, key: int, row: NewRow) -> Memory:
        self.rows[key] = row
        return created(row, tenant="t", model="m", at=AT).model_copy(update={"id": self.ids[key]})

    def insert(self, row: NewRow) -> None:
        self.rows.append(row)
        self.ids.append(row.id)


def test_rows_at_the_threshold_merge_and_keep_old_tags_first_and_old_source() -> None:
    writer = FakeWriter()
    rows = [
        _row("a", similarity_key=0.0, tags=["x"], source="gong"),
        _row("b", similarity_key=0.25, tags=["y", "x"]),
        _row("c", similarity_key=1.0, tags=["z"]),
    ]
    out = write_batch(writer, rows, tenant="t", model="m", at=AT, dedupe_threshold=0.75)
    assert [w.action for w in out] == ["created", "updated", "created"]
    assert out[1].duplicate_of == "a" and out[1].similarity == 0.75
    assert out[1].memory.tags == ["x", "y"] and out[1].memory.source == "gong"
    assert [r.text for r in writer.rows] == ["text b", "text c"]


def test_without_a_threshold_every_row_is_inserted_unsearched() -> None:
    writer = FakeWriter()
    rows = [_row("a", similarity_key=0.0, tags=[]), _row("b", similarity_key=0.0, tags=[])]
    out = write_batch(writer, rows, tenant="t", model="m", at=AT, dedupe_threshold=None)
    assert [(w.action, w.memory.id, w.memory.created_at) for w in out] == [("created", "a", AT), ("created", "b", AT)]
    assert writer.ids == ["a", "b"]
