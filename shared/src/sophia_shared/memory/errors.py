"""Store errors: each is a sophia_shared error, so a tool that lets one through reports its code."""

from __future__ import annotations

from ..errors import Conflict, InvalidArgument, LimitExceeded, NotConfigured, NotFound, Unavailable


class MemoryNotFound(NotFound):
    """No memory with that id in the caller's tenant (other tenants' ids look exactly the same)."""


class InvalidMemory(InvalidArgument):
    """Bad text, tags, namespace, filter or cursor: nothing was written."""


class MemoryLimitExceeded(LimitExceeded):
    """Text, batch, k or page size above the configured limit: nothing was written."""


class ModelMismatch(Conflict):
    """The store's vectors come from another embedding model or dimension; run `sophia memory reembed`."""


class StoreUnavailable(Unavailable):
    """The backend cannot be reached or opened."""


class EmbeddingNotConfigured(NotConfigured):
    """The configured embedding provider lacks a setting (URL, key, dimensions)."""


__all__ = [
    "EmbeddingNotConfigured",
    "InvalidMemory",
    "MemoryLimitExceeded",
    "MemoryNotFound",
    "ModelMismatch",
    "StoreUnavailable",
]
