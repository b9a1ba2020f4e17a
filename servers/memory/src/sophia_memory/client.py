"""The memory server's only door to the store: opened on first use, so start-up stays fast."""

from __future__ import annotations

import anyio
from sophia_shared.memory import MemoryStore

from .settings import MemoryServerSettings


class MemoryClient:
    """Opens the shared memory store lazily (on the first tool call) and closes it at shutdown."""

    def __init__(self, settings: MemoryServerSettings):
        self.settings = settings
        self._store: MemoryStore | None = None
        self._lock = anyio.Lock()

    async def store(self) -> MemoryStore:
        """The open store (opening and migrating it on first use)."""
        if self._store is None:
            async with self._lock:
                if self._store is None:
                    from sophia_shared.memory import open_store

                    self._store = await open_store(self.settings)
        return self._store

    async def aclose(self) -> None:
        if self._store is not None:
            store, self._store = self._store, None
            await store.close()
