"""postgres backend of the memory store (in progress)."""

from __future__ import annotations

from . import Embedder, MemoryStore
from .settings import MemorySettings


class PostgresStore:
    @classmethod
    async def open(cls, settings: MemorySettings, embedder: Embedder, *, migrate: bool = True) -> MemoryStore:
        raise NotImplementedError("in progress")
