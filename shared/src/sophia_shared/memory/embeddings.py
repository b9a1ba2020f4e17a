"""Embedding providers: the local all-MiniLM-L6-v2 (ONNX, no torch) and OpenAI-compatible HTTP."""

from __future__ import annotations

from .. import memory as _memory
from .settings import MemorySettings


def embedder_from_settings(settings: MemorySettings) -> _memory.Embedder:
    """The embedder the settings configure (not loaded until first used)."""
    raise NotImplementedError("in progress")


def local_embedder() -> _memory.Embedder:
    """The process-wide local MiniLM embedder."""
    raise NotImplementedError("in progress")
