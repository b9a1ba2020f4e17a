"""The shared memory store: one async interface, two backends (SQLite + sqlite-vec, PostgreSQL + pgvector).

Every method takes the tenant explicitly and every query is scoped to it: there is no way to read
or change another tenant's memories without naming that tenant. Servers pass
`current_principal().name`; only an admin may name someone else (the memory server enforces that).

    from sophia_shared.memory import MemoryInput, MemorySettings, open_store

    store = await open_store(load_settings(MemorySettings))
    try:
        result = await store.put("alice", MemoryInput(text="Prefers dark mode", namespace="prefs"))
        hits = await store.search("alice", "display settings", k=5)
    finally:
        await store.close()

Errors are `sophia_shared.errors` subclasses (see `.errors`): `MemoryNotFound` (not_found),
`InvalidMemory` (invalid_argument), `MemoryLimitExceeded` (limit_exceeded), `ModelMismatch`
(conflict), `StoreUnavailable` (unavailable). A failed call writes nothing.

Embedding is CPU work; the store runs it in a worker thread. `embed(texts)` is the plain entry
point (local all-MiniLM-L6-v2, 384 dimensions, L2-normalised float32 rows) for other code that
needs vectors, e.g. the host's tool search.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from .errors import (
    EmbeddingNotConfigured,
    InvalidMemory,
    MemoryLimitExceeded,
    MemoryNotFound,
    ModelMismatch,
    StoreUnavailable,
)
from .settings import MemorySettings

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

NAMESPACE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$"
TAG_PATTERN = r"^[^\x00-\x1f\x7f,]{1,64}$"
DEFAULT_NAMESPACE = "default"


class MemoryInput(BaseModel):
    """One memory to write. Limits that are configurable (text length, tag count) are checked by the store."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="The content to remember.")
    namespace: str = Field(default=DEFAULT_NAMESPACE, pattern=NAMESPACE_PATTERN)
    tags: list[str] = Field(default_factory=list)
    source: str | None = Field(default=None, max_length=64, description="Kind of origin, e.g. 'gong'.")
    source_ref: str | None = Field(default=None, max_length=256, description="Origin id, e.g. a call id.")
    importance: float = Field(default=0.5, ge=0.0, le=1.0)
    expires_at: datetime | None = Field(default=None, description="After this instant the memory is hidden.")
    embed_from: int = Field(
        default=0,
        ge=0,
        description="Make the vector from text[embed_from:] only, e.g. a transcript turn without its "
        "header lines: full-text search still reads the whole text, and embedding less is faster.",
    )


class MemoryPatch(BaseModel):
    """Fields to change on an existing memory; None leaves a field as it is."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(default=None, min_length=1)
    tags: list[str] | None = None
    source: str | None = Field(default=None, max_length=64)
    source_ref: str | None = Field(default=None, max_length=256)
    importance: float | None = Field(default=None, ge=0.0, le=1.0)
    expires_at: datetime | None = None
    clear_expiry: bool = False


class Memory(BaseModel):
    """A stored memory. `text` is exactly what was stored: sanitise it before showing it to a model."""

    id: str
    tenant: str
    namespace: str
    text: str
    tags: list[str]
    source: str | None
    source_ref: str | None
    importance: float
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    embedding_model: str


class MemoryFilter(BaseModel):
    """Narrows list, search and forget. Every given condition must hold (AND); lists inside are OR."""

    model_config = ConfigDict(extra="forbid")

    namespaces: list[str] | None = Field(default=None, max_length=32)
    tags_any: list[str] | None = Field(default=None, max_length=32, description="At least one of these tags.")
    tags_all: list[str] | None = Field(default=None, max_length=32, description="Every one of these tags.")
    source: str | None = None
    source_ref: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    include_expired: bool = False


class PutResult(BaseModel):
    """The outcome of one write: created, or merged into a near-duplicate (`duplicate_of`, `similarity`)."""

    action: Literal["created", "updated"]
    memory: Memory
    duplicate_of: str | None = None
    similarity: float | None = None


class SearchHit(BaseModel):
    """One search result and its evidence.

    `score`: relevance in [0, 1], the cosine similarity lifted by keyword coverage (vector mode: the
    similarity; text mode: the coverage). `keyword`: the share of the query's informative words the
    memory contains. `matched_by`: "vector" when the similarity alone clears the relevance floor,
    "text" when an informative query word occurs. Ranks: where each retriever placed it, if it did.
    """

    memory: Memory
    score: float
    similarity: float | None = None
    keyword: float | None = None
    matched_by: list[Literal["vector", "text"]] = Field(default_factory=list)
    vector_rank: int | None = None
    text_rank: int | None = None


class Page(BaseModel):
    """One page of a listing, newest first; pass `next_cursor` back to continue (None: no more)."""

    items: list[Memory]
    next_cursor: str | None = None


class Stats(BaseModel):
    """Counts for one tenant, plus the store's embedding model and backend."""

    tenant: str
    total: int
    expired: int
    by_namespace: dict[str, int]
    by_source: dict[str, int]
    oldest: datetime | None
    newest: datetime | None
    embedding_model: str
    dimensions: int
    backend: Literal["sqlite", "postgres"]


class ReembedReport(BaseModel):
    """What `reembed` did: how many memories got vectors from which model."""

    from_model: str | None
    to_model: str
    dimensions: int
    reembedded: int
    already_done: int = Field(default=0, description="Memories an earlier, stopped run had already re-embedded.")


SearchMode = Literal["hybrid", "vector", "text"]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension (synchronous, CPU or HTTP)."""

    @property
    def model_id(self) -> str: ...

    @property
    def dimensions(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


class MemoryStore(Protocol):
    """The memory store. Every method is scoped to `tenant`; ids of other tenants are simply not found."""

    @property
    def backend(self) -> Literal["sqlite", "postgres"]: ...

    @property
    def embedder(self) -> Embedder: ...

    async def put(self, tenant: str, item: MemoryInput, *, dedupe: bool = True) -> PutResult:
        """Store one memory; with `dedupe`, a near-duplicate in the same namespace is updated instead.

        An update merges tags, keeps the higher importance and takes the new text, source and expiry.
        """
        ...

    async def put_many(
        self,
        tenant: str,
        items: Sequence[MemoryInput],
        *,
        dedupe: bool = False,
        replace_source_ref: bool = False,
    ) -> list[PutResult]:
        """Store a batch in one transaction (all or nothing), embedding it in batches.

        `replace_source_ref`: first delete the tenant's memories in the same namespace whose
        source_ref matches one in the batch, so re-syncing e.g. a Gong call replaces its chunks.
        """
        ...

    async def get(self, tenant: str, memory_id: str) -> Memory:
        """One memory by id, expired or not; `MemoryNotFound` otherwise."""
        ...

    async def list(
        self, tenant: str, filter: MemoryFilter | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> Page:
        """Memories newest first (created_at, then id), one page at a time."""
        ...

    async def update(self, tenant: str, memory_id: str, patch: MemoryPatch) -> Memory:
        """Change fields of one memory; a new text is re-embedded."""
        ...

    async def delete(self, tenant: str, memory_id: str) -> None:
        """Delete one memory; `MemoryNotFound` if it is not the tenant's."""
        ...

    async def forget(self, tenant: str, filter: MemoryFilter | None = None) -> int:
        """Delete every memory of the tenant that matches `filter` (None or empty: all); the count deleted."""
        ...

    async def search(
        self,
        tenant: str,
        query: str,
        filter: MemoryFilter | None = None,
        *,
        k: int = 10,
        mode: SearchMode = "hybrid",
        recency_weight: float = 0.0,
        importance_weight: float = 0.0,
        query_embedding: Sequence[float] | npt.NDArray[np.float32] | None = None,
        min_relevance: float | None = None,
    ) -> builtins.list[SearchHit]:
        """Hybrid search: candidates by vector and full text, scored on evidence (see `SearchHit`), best first.

        Hits whose relevance is below `min_relevance` (default: the setting) are dropped, except in
        text mode. Weights in [0, 1] add a boost for recent (half-life 30 days) and important
        memories to the order. `query_embedding` skips embedding the query (it must match the
        store's dimension).
        """
        ...

    async def stats(self, tenant: str) -> Stats:
        """Counts of the tenant's memories by namespace and source."""
        ...

    async def tenants(self) -> builtins.list[str]:
        """Every tenant that has memories (maintenance and admin use only)."""
        ...

    async def reembed(self, embedder: Embedder, *, batch_size: int = 256) -> ReembedReport:
        """Maintenance: recompute every tenant's vectors with `embedder` (possibly another dimension).

        Commits batch by batch, so a stopped run resumes where it stopped; the store serves its old
        model until the last batch, then switches to the new one.
        """
        ...

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...


async def open_store(
    settings: MemorySettings | None = None, *, embedder: Embedder | None = None, migrate: bool = True
) -> MemoryStore:
    """Open the store the settings' DSN selects, applying schema migrations (unless `migrate=False`).

    The embedder defaults to the one the settings configure; it is not loaded until first used.
    Raises `ModelMismatch` on first use if the store holds vectors of another model or dimension.
    """
    from .embeddings import embedder_from_settings

    settings = settings or MemorySettings()
    chosen = embedder or embedder_from_settings(settings)
    if settings.backend() == "postgres":
        from .postgres import PostgresStore

        return await PostgresStore.open(settings, chosen, migrate=migrate)
    from .sqlite import SqliteStore

    return await SqliteStore.open(settings, chosen, migrate=migrate)


def embed(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """Embed texts with the local all-MiniLM-L6-v2 (loaded once, lazily): shape (len(texts), 384)."""
    from .embeddings import local_embedder

    return local_embedder().embed(texts)


__all__ = [
    "DEFAULT_NAMESPACE",
    "Embedder",
    "EmbeddingNotConfigured",
    "InvalidMemory",
    "Memory",
    "MemoryFilter",
    "MemoryInput",
    "MemoryLimitExceeded",
    "MemoryNotFound",
    "MemoryPatch",
    "MemorySettings",
    "MemoryStore",
    "ModelMismatch",
    "Page",
    "PutResult",
    "ReembedReport",
    "SearchHit",
    "SearchMode",
    "Stats",
    "StoreUnavailable",
    "embed",
    "open_store",
]
