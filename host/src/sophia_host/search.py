"""Tool search: keyword (BM25 over names, toolsets and descriptions) blended with semantic similarity.

The embedding model (the shared local MiniLM) is loaded on the first search, never at start-up,
and only when semantic search is on; without it the ranking is keyword-only and says so.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("sophia.host")

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "how", "i", "in", "is", "it", "me",
    "my", "of", "on", "or", "the", "this", "to", "what", "with", "which", "do", "does", "can", "tool", "tools",
})
# Field weights: a word in the tool's name says more than one in its description.
_NAME_W, _SET_W, _DESC_W = 3.0, 2.0, 1.0
_K1, _B = 1.2, 0.75
# Share of the semantic score in the blend, when the model is available.
SEMANTIC_WEIGHT = 0.5


class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> Any: ...


@dataclass(frozen=True)
class Entry:
    name: str
    server: str
    toolset: str
    description: str
    title: str | None = None

    def text(self) -> str:
        return f"{self.name.replace('_', ' ')}: {self.description}"


@dataclass(frozen=True)
class Hit:
    entry: Entry
    score: float
    keyword: float
    semantic: float | None


def words(text: str) -> list[str]:
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP]


def _stem(word: str) -> str:
    # Just enough folding that "containers" finds "container" and "running" finds "run".
    for suffix in ("ies", "es", "s", "ing", "ed"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


class ToolIndex:
    """An index over the composed tools; rebuilt when the tool list changes."""

    def __init__(self, embedder_factory: Any = None):
        self._embedder_factory = embedder_factory
        self._embedder: Embedder | None = None
        self._embedder_failed = False
        self._lock = threading.Lock()
        self.entries: list[Entry] = []
        self._fields: list[tuple[Counter[str], Counter[str], Counter[str]]] = []
        self._df: Counter[str] = Counter()
        self._avg_len = 1.0
        self._vectors: Any = None

    def rebuild(self, entries: Sequence[Entry]) -> None:
        with self._lock:
            self.entries = list(entries)
            self._fields = [
                (Counter(words(e.name)), Counter(words(f"{e.toolset} {e.server}")), Counter(words(e.description)))
                for e in self.entries
            ]
            self._df = Counter()
            for name, tset, desc in self._fields:
                self._df.update(set(name) | set(tset) | set(desc))
            total = sum(sum(n.values()) + sum(d.values()) for n, _t, d in self._fields)
            self._avg_len = max(1.0, total / max(1, len(self._fields)))
            self._vectors = None

    @property
    def semantic_ready(self) -> bool:
        return self._embedder is not None and not self._embedder_failed

    def search(self, query: str, k: int, *, semantic: bool) -> tuple[list[Hit], bool]:
        """The top `k` tools for `query`, and whether the semantic model took part (blocking)."""
        with self._lock:
            keyword = self._keyword_scores(query)
            sem = self._semantic_scores(query) if semantic else None
        top_kw = max(keyword, default=0.0)
        hits = []
        for i, entry in enumerate(self.entries):
            kw = keyword[i] / top_kw if top_kw > 0 else 0.0
            score = kw if sem is None else (1 - SEMANTIC_WEIGHT) * kw + SEMANTIC_WEIGHT * max(0.0, sem[i])
            if score > 0:
                hits.append(Hit(entry, round(score, 4), round(kw, 4), None if sem is None else round(sem[i], 4)))
        hits.sort(key=lambda h: (-h.score, h.entry.name))
        return hits[:k], sem is not None

    def _keyword_scores(self, query: str) -> list[float]:
        terms = set(words(query))
        n = max(1, len(self._fields))
        scores = []
        for name, tset, desc in self._fields:
            length = sum(name.values()) + sum(desc.values())
            score = 0.0
            for term in terms:
                df = self._df.get(term, 0)
                if not df:
                    continue
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                tf = _NAME_W * name.get(term, 0) + _SET_W * tset.get(term, 0) + _DESC_W * desc.get(term, 0)
                if tf:
                    score += idf * tf * (_K1 + 1) / (tf + _K1 * (1 - _B + _B * length / self._avg_len))
            scores.append(score)
        return scores

    def _semantic_scores(self, query: str) -> list[float] | None:
        embedder = self._load_embedder()
        if embedder is None or not self.entries:
            return None
        try:
            if self._vectors is None:
                self._vectors = embedder.embed([e.text() for e in self.entries])
            q = embedder.embed([query])[0]
            return [float(x) for x in self._vectors @ q]
        except Exception as exc:  # noqa: BLE001 - the model is an optional refinement: keyword ranking still answers
            log.warning("semantic tool search disabled: %s", type(exc).__name__)
            self._embedder_failed = True
            return None

    def _load_embedder(self) -> Embedder | None:
        if self._embedder_failed:
            return None
        if self._embedder is None:
            factory = self._embedder_factory or _shared_embedder
            try:
                self._embedder = factory()
            except Exception as exc:  # noqa: BLE001 - no model installed here: keyword ranking still answers
                log.info("semantic tool search unavailable (%s); ranking by keywords", type(exc).__name__)
                self._embedder_failed = True
                return None
        return self._embedder


def _shared_embedder() -> Embedder:
    from sophia_shared.memory.embeddings import local_embedder

    return local_embedder()
