"""The store's logic, written once over two backends: validation, embedding, dedupe, fusion.

A backend is synchronous (sqlite3, psycopg) and does each call in one transaction; the store runs
it in a worker thread so the event loop never waits on disk, the network or the model.
"""

from __future__ import annotations

import builtins
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar

import anyio.to_thread
import numpy as np
import numpy.typing as npt

from . import (
    Embedder,
    Memory,
    MemoryFilter,
    MemoryInput,
    MemoryPatch,
    Page,
    PutResult,
    ReembedReport,
    SearchHit,
    SearchMode,
    Stats,
)
from . import validate as check
from .errors import InvalidMemory, MemoryNotFound, ModelMismatch
from .retrieval import VectorHit, fuse, query_terms
from .settings import MemorySettings
from .validate import CursorKey

T = TypeVar("T")
# Texts embedded per turn of the writers' limiter (see `Store._embed`).
EMBED_SLICE = 64
Vector = npt.NDArray[np.float32]


@dataclass(frozen=True)
class NewRow:
    """A validated memory with its vector, ready for a backend to insert (or merge)."""

    id: str
    namespace: str
    text: str
    tags: list[str]
    source: str | None
    source_ref: str | None
    importance: float
    expires_at: datetime | None
    embedding: Vector
    embed_from: int = 0  # the vector is of text[embed_from:]


@dataclass(frozen=True)
class Written:
    action: Literal["created", "updated"]
    memory: Memory
    duplicate_of: str | None = None
    similarity: float | None = None


class Backend(Protocol):
    """What a backend does; every method is one transaction and names the tenant."""

    name: Literal["sqlite", "postgres"]

    def model(self) -> tuple[str, int] | None: ...

    def put_batch(
        self,
        tenant: str,
        rows: Sequence[NewRow],
        *,
        model: str,
        dims: int,
        dedupe_threshold: float | None,
        replace_refs: Sequence[tuple[str, str]],
        now: datetime,
    ) -> list[Written]: ...

    def get(self, tenant: str, memory_id: str) -> Memory | None: ...

    def fetch(self, tenant: str, ids: Sequence[str]) -> dict[str, Memory]: ...

    def list(
        self, tenant: str, flt: MemoryFilter, limit: int, after: CursorKey | None, now: datetime
    ) -> builtins.list[Memory]: ...

    def update(
        self,
        tenant: str,
        memory_id: str,
        changes: dict[str, Any],
        embedding: Vector | None,
        model: str,
        dims: int,
        now: datetime,
    ) -> Memory | None: ...

    def delete(self, tenant: str, memory_id: str) -> bool: ...

    def forget(self, tenant: str, flt: MemoryFilter, now: datetime) -> int: ...

    def vector_search(
        self, tenant: str, vector: Vector, flt: MemoryFilter, n: int, now: datetime
    ) -> builtins.list[VectorHit]: ...

    def similarities(self, tenant: str, vector: Vector, ids: Sequence[str]) -> dict[str, float]:
        """Exact cosine similarity of `vector` to each of the tenant's memories in `ids`."""
        ...

    def text_search(
        self, tenant: str, terms: Sequence[str], flt: MemoryFilter, n: int, now: datetime, *, required: bool
    ) -> tuple[builtins.list[str], builtins.list[str]]:
        """Best-first ids by full text, and the informative terms searched for. Words in a large
        share of the store are dropped (they barely discriminate, and ranking every memory costs
        the most); unless `required`, a query of only such words returns nothing."""
        ...

    def stats(self, tenant: str, now: datetime) -> dict[str, Any]: ...

    def tenants(self) -> builtins.list[str]: ...

    def reembed(self, embed: Callable[[builtins.list[str]], Vector], model: str, dims: int, batch_size: int) -> int:
        """Give every row not yet of `model` its vector, in committed batches; switch the store to
        `model` after the last. Resumable: a stopped run leaves finished batches done."""
        ...

    def pending(self, model: str) -> tuple[int, int]:
        """(rows already of `model`, rows not yet)."""
        ...

    def close(self) -> None: ...


def new_id() -> str:
    """A random memory id (128 bits, hex)."""
    return uuid.uuid4().hex


def now_utc() -> datetime:
    # Microsecond precision is what both backends store, so cursors compare exactly.
    return datetime.now(UTC)


class Store:
    """`MemoryStore` over a backend."""

    def __init__(self, settings: MemorySettings, embedder: Embedder, backend: Backend):
        self._settings = settings
        self._embedder = embedder
        self._backend = backend
        self._limiter = anyio.CapacityLimiter(settings.pool_max_size if backend.name == "postgres" else 1)
        # Embedding runs outside the backend's limiter, so reads and writes go on meanwhile (a Gong
        # sync indexing thousands of turns does not hold up a search); one batch at a time, since
        # the model already uses every core.
        self._embed_limiter = anyio.CapacityLimiter(1)
        self._model_lock = threading.Lock()

    @property
    def backend(self) -> Literal["sqlite", "postgres"]:
        return self._backend.name

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs), limiter=self._limiter)

    async def _embed(self, texts: builtins.list[str]) -> tuple[Vector, str, int]:
        """Vectors for a write, a slice at a time: a search waiting for the model waits one slice at most."""
        parts: builtins.list[Vector] = []
        model, dims = self._embedder.model_id, 0
        for start in range(0, len(texts), EMBED_SLICE):
            vectors, model, dims = await anyio.to_thread.run_sync(
                self._embed_checked, texts[start : start + EMBED_SLICE], limiter=self._embed_limiter
            )
            parts.append(vectors)
        return (np.vstack(parts) if len(parts) > 1 else parts[0]), model, dims

    async def _embed_query(self, query: str) -> Vector:
        # Not behind the writers' limiter: one short text, run alongside any bulk embedding.
        vectors, _, _ = await anyio.to_thread.run_sync(self._embed_checked, [query])
        first: Vector = vectors[0]
        return first

    def _embed_checked(self, texts: builtins.list[str]) -> tuple[Vector, str, int]:
        """Vectors for texts, refusing (before any write) a store that holds another model's vectors."""
        vectors = self._embedder.embed(texts)
        model, dims = self._embedder.model_id, int(vectors.shape[1])
        self._check_model(model, dims)
        return vectors, model, dims

    def _check_model(self, model: str, dims: int) -> None:
        stored = self._backend.model()
        if stored is not None and stored != (model, dims):
            raise ModelMismatch(
                f"this store holds vectors of {stored[0]} ({stored[1]} dimensions) but the configured "
                f"embedder is {model} ({dims} dimensions): run `sophia memory reembed` to migrate the "
                "store, or configure the store's model again",
                data={"store_model": stored[0], "store_dimensions": stored[1], "model": model, "dimensions": dims},
            )

    def _query_vector(self, query_embedding: Sequence[float] | Vector) -> Vector:
        vector = np.asarray(query_embedding, dtype=np.float32)
        stored = self._backend.model()
        dims = stored[1] if stored else self._embedder.dimensions
        if vector.ndim != 1 or vector.shape[0] != dims:
            raise InvalidMemory(
                f"query_embedding has shape {tuple(vector.shape)}; this store's vectors have {dims} dimensions"
            )
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(norm) or norm == 0.0:
            raise InvalidMemory("query_embedding must be a finite, non-zero vector")
        return vector / norm

    async def put(self, tenant: str, item: MemoryInput, *, dedupe: bool = True) -> PutResult:
        (result,) = await self._put(tenant, [item], dedupe=dedupe, replace_source_ref=False)
        return result

    async def put_many(
        self,
        tenant: str,
        items: Sequence[MemoryInput],
        *,
        dedupe: bool = False,
        replace_source_ref: bool = False,
    ) -> builtins.list[PutResult]:
        if not items:
            return []
        check.bounded("batch size", len(items), 1, self._settings.max_batch, "SOPHIA_MEMORY_MAX_BATCH")
        return await self._put(tenant, items, dedupe=dedupe, replace_source_ref=replace_source_ref)

    async def _put(
        self, tenant: str, items: Sequence[MemoryInput], *, dedupe: bool, replace_source_ref: bool
    ) -> builtins.list[PutResult]:
        tenant = check.tenant(tenant)
        clean = [check.memory_input(item, self._settings) for item in items]
        threshold = self._settings.dedupe_threshold if dedupe and self._settings.dedupe_threshold < 1.0 else None
        refs = sorted({(i.namespace, i.source_ref) for i in clean if i.source_ref}) if replace_source_ref else []

        vectors, model, dims = await self._embed([i.text[i.embed_from :] for i in clean])

        def work() -> builtins.list[Written]:
            rows = [
                NewRow(
                    new_id(), i.namespace, i.text, i.tags, i.source, i.source_ref, i.importance, i.expires_at, v,
                    i.embed_from,
                )
                for i, v in zip(clean, vectors, strict=True)
            ]
            return self._backend.put_batch(
                tenant, rows, model=model, dims=dims, dedupe_threshold=threshold, replace_refs=refs, now=now_utc()
            )

        written = await self._run(work)
        return [
            PutResult(action=w.action, memory=w.memory, duplicate_of=w.duplicate_of, similarity=w.similarity)
            for w in written
        ]

    async def get(self, tenant: str, memory_id: str) -> Memory:
        tenant = check.tenant(tenant)
        memory = await self._run(self._backend.get, tenant, memory_id)
        if memory is None:
            raise MemoryNotFound(f"no memory {memory_id[:80]!r} in your memories: check the id with memory_list")
        return memory

    async def list(
        self, tenant: str, filter: MemoryFilter | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> Page:
        tenant = check.tenant(tenant)
        flt = check.memory_filter(filter, self._settings)
        limit = check.bounded("limit", limit, 1, self._settings.max_list_limit, "SOPHIA_MEMORY_MAX_LIST_LIMIT")
        after = check.decode_cursor(cursor) if cursor else None
        rows = await self._run(self._backend.list, tenant, flt, limit + 1, after, now_utc())
        more = len(rows) > limit
        items = rows[:limit]
        next_cursor = check.encode_cursor(CursorKey(items[-1].created_at, items[-1].id)) if more and items else None
        return Page(items=items, next_cursor=next_cursor)

    async def update(self, tenant: str, memory_id: str, patch: MemoryPatch) -> Memory:
        tenant = check.tenant(tenant)
        clean = check.patch(patch, self._settings)
        changes: dict[str, Any] = {
            name: getattr(clean, name)
            for name in ("text", "tags", "source", "source_ref", "importance", "expires_at")
            if getattr(clean, name) is not None
        }
        if clean.clear_expiry:
            changes["expires_at"] = None

        embedding: Vector | None = None
        model, dims = self._embedder.model_id, 0
        if clean.text is not None:
            vectors, model, dims = await self._embed([clean.text])
            embedding = vectors[0]
        memory = await self._run(self._backend.update, tenant, memory_id, changes, embedding, model, dims, now_utc())
        if memory is None:
            raise MemoryNotFound(f"no memory {memory_id[:80]!r} in your memories: check the id with memory_list")
        return memory

    async def delete(self, tenant: str, memory_id: str) -> None:
        tenant = check.tenant(tenant)
        if not await self._run(self._backend.delete, tenant, memory_id):
            raise MemoryNotFound(f"no memory {memory_id[:80]!r} in your memories: check the id with memory_list")

    async def forget(self, tenant: str, filter: MemoryFilter | None = None) -> int:
        tenant = check.tenant(tenant)
        flt = check.memory_filter(filter, self._settings).model_copy(update={"include_expired": True})
        return await self._run(self._backend.forget, tenant, flt, now_utc())

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
        query_embedding: Sequence[float] | Vector | None = None,
        min_relevance: float | None = None,
    ) -> builtins.list[SearchHit]:
        tenant = check.tenant(tenant)
        flt = check.memory_filter(filter, self._settings)
        k = check.bounded("k", k, 1, self._settings.max_search_k, "SOPHIA_MEMORY_MAX_SEARCH_K")
        if mode not in ("hybrid", "vector", "text"):
            raise InvalidMemory("mode must be hybrid, vector or text")
        for name, weight in (("recency_weight", recency_weight), ("importance_weight", importance_weight)):
            if not 0.0 <= weight <= 1.0:
                raise InvalidMemory(f"{name} must be between 0 and 1")
        terms = query_terms(query)
        if mode == "text" and not terms:
            raise InvalidMemory("the query has no words to search for (stop words such as 'the' do not count)")
        if mode != "text" and query_embedding is None and not query.strip():
            raise InvalidMemory("query is empty: say what to look for")
        given = self._query_vector(query_embedding) if query_embedding is not None else None
        floor = self._settings.min_relevance if min_relevance is None else min_relevance
        if not 0.0 <= floor <= 1.0:
            raise InvalidMemory("min_relevance must be between 0 and 1")
        # Each ranking looks deeper than k so scoring and boosts can reorder it.
        depth = min(max(4 * k, 40), 200)

        vector: Vector | None = given
        if mode != "text" and vector is None and await self._run(self._backend.model) is not None:
            vector = await self._embed_query(query)  # (nothing stored yet: no vectors to compare with)

        def work() -> builtins.list[SearchHit]:
            now = now_utc()
            vector_hits: builtins.list[VectorHit] = []
            text_ids: builtins.list[str] = []
            kept: builtins.list[str] | None = None
            if mode != "text" and vector is not None and self._backend.model() is not None:
                vector_hits = self._backend.vector_search(tenant, vector, flt, depth, now)
            if mode != "vector":
                if terms:
                    text_ids, kept = self._backend.text_search(tenant, terms, flt, depth, now, required=mode == "text")
                else:
                    kept = []
            candidates = list(dict.fromkeys([h.memory_id for h in vector_hits] + text_ids))
            if not candidates:
                return []
            similarities: dict[str, float] | None = None
            if mode != "text":
                similarities = {h.memory_id: h.similarity for h in vector_hits}
                missing = [i for i in text_ids if i not in similarities]
                if missing and vector is not None:
                    similarities.update(self._backend.similarities(tenant, vector, missing))
            memories = self._backend.fetch(tenant, candidates)
            return fuse(
                candidates,
                similarities,
                kept,
                memories,
                k=k,
                now=now,
                min_relevance=floor,
                recency_weight=recency_weight,
                importance_weight=importance_weight,
                vector_ranks={h.memory_id: rank for rank, h in enumerate(vector_hits, start=1)},
                text_ranks={memory_id: rank for rank, memory_id in enumerate(text_ids, start=1)},
            )

        return await self._run(work)

    async def stats(self, tenant: str) -> Stats:
        tenant = check.tenant(tenant)
        raw = await self._run(self._backend.stats, tenant, now_utc())
        stored = await self._run(self._backend.model)
        model, dims = stored if stored else (self._embedder.model_id, 0)
        return Stats(tenant=tenant, embedding_model=model, dimensions=dims, backend=self._backend.name, **raw)

    async def tenants(self) -> builtins.list[str]:
        return await self._run(self._backend.tenants)

    async def reembed(self, embedder: Embedder, *, batch_size: int = 256) -> ReembedReport:
        check.bounded("batch_size", batch_size, 1, 10_000, "batch_size")
        before = await self._run(self._backend.model)
        dims = embedder.dimensions
        done, _ = await self._run(self._backend.pending, embedder.model_id)
        # Under no limiter of this store: the backend takes its lock per batch, to read and to write.
        count = await anyio.to_thread.run_sync(
            self._backend.reembed, embedder.embed, embedder.model_id, dims, batch_size
        )
        self._embedder = embedder
        return ReembedReport(
            from_model=before[0] if before else None,
            to_model=embedder.model_id,
            dimensions=dims,
            reembedded=count,
            already_done=done if before is None or before[0] != embedder.model_id else 0,
        )

    async def close(self) -> None:
        await self._run(self._backend.close)
