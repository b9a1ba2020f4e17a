"""Tool search for `sophia_find_tools`: the agent's offline router ranks the composed tools.

One ranking for the whole suite (sophia_agent.router: BM25F over names, parameters and
descriptions fused with the shared local MiniLM, and a calibrated confidence), so the tool search
and `sophia route` agree. The model is loaded on the first search, never at start-up, and only when
semantic search is on; without it the ranking is keyword-only and says so. The router itself (and
numpy under it) is imported on the first search too: a host starts without it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sophia_agent.router import RoutableTool, Router
    from sophia_agent.router.semantic import Embedder


@dataclass(frozen=True)
class Entry:
    name: str
    server: str
    toolset: str
    description: str
    title: str | None = None
    input_schema: Mapping[str, Any] = field(default_factory=dict)
    destructive: bool = False

    def routable(self) -> RoutableTool:
        from sophia_agent.router import RoutableTool

        return RoutableTool(self.name, self.description, self.input_schema, self.destructive)


@dataclass(frozen=True)
class Hit:
    entry: Entry
    score: float  # the router's confidence that this is the tool asked for, 0..1


class ToolIndex:
    """An index over the composed tools; rebuilt when the tool list changes."""

    def __init__(self, embedder_factory: Callable[[], Embedder] | None = None):
        self._embedder_factory = embedder_factory or _shared_embedder
        self._lock = threading.Lock()
        self.entries: list[Entry] = []
        self._routers: dict[bool, Router] = {}

    def rebuild(self, entries: Sequence[Entry]) -> None:
        with self._lock:
            self.entries = list(entries)
            self._routers = {}

    def search(self, query: str, k: int, *, semantic: bool) -> tuple[list[Hit], bool]:
        """The top `k` tools for `query`, and whether the semantic model took part (blocking)."""
        with self._lock:
            router = self._router(semantic)
            ranked = router.rank(query, k)
            used = semantic and router.semantic_ready
        by_name = {e.name: e for e in self.entries}
        return [Hit(by_name[r.tool], r.confidence) for r in ranked], used

    def _router(self, semantic: bool) -> Router:
        from sophia_agent.router import Router, RouterSettings

        if semantic not in self._routers:
            self._routers[semantic] = Router(
                (e.routable() for e in self.entries),
                settings=RouterSettings(semantic=semantic),
                embedder=self._embedder_factory if semantic else None,
            )
        return self._routers[semantic]


def _shared_embedder() -> Embedder:
    from sophia_shared.memory.embeddings import local_embedder

    return local_embedder()
