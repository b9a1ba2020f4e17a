"""The embedded backend's in-process vector index: exact while small, sign codes + exact re-rank when large."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import numpy as np
import numpy.typing as npt
import pytest
from sophia_shared.memory import MemoryFilter, MemoryInput, MemoryPatch, MemorySettings, open_store, vector_index
from sophia_shared.memory.sqlite import SqliteBackend
from sophia_shared.memory.vector_index import VectorIndex

CENTRES = np.random.default_rng(0).standard_normal((200, 384)).astype(np.float32)


def _clustered(n: int, seed: int) -> npt.NDArray[np.float32]:
    """Unit vectors around shared centres, as embeddings of one domain cluster by topic."""
    rng = np.random.default_rng(seed)
    vectors = CENTRES[rng.integers(0, 200, n)] + 0.6 * rng.standard_normal((n, 384)).astype(np.float32)
    normalised: npt.NDArray[np.float32] = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    return normalised


def test_large_index_recall_against_exact_search(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past EXACT_LIMIT the sign-code scan + exact re-rank still finds the exact top 10 for queries of the domain.

    Scaled down (limit 5k, 15k rows, candidates 2% of rows as at 100k) to keep the test fast.
    """
    monkeypatch.setattr(vector_index, "EXACT_LIMIT", 5_000)
    monkeypatch.setattr(vector_index, "MIN_CANDIDATES", 300)
    monkeypatch.setattr(vector_index, "OVERSAMPLE", 30)
    n = 15_000
    vectors = _clustered(n, 1)
    index = VectorIndex(384, version=1)
    index.add_many(list(range(n)), ["a" if i % 2 else "b" for i in range(n)], [np.inf] * n, vectors)
    queries = _clustered(30, 2)
    recalls = []
    for q in queries:
        found = index.search(q, 10, now=0.0, namespaces=None, include_expired=False)
        exact = set(np.argsort(-(vectors @ q))[:10].tolist())
        recalls.append(len(exact & {rid for rid, _ in found}) / 10)
        assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
        assert all(abs(s - float(vectors[rid] @ q)) < 1e-5 for rid, s in found)
    assert float(np.mean(recalls)) >= 0.95


def test_removals_filters_and_expiry() -> None:
    vectors = _clustered(100, 3)
    index = VectorIndex(384, version=1, capacity=8)  # forces growth
    index.add_many(
        list(range(100)),
        ["a" if i < 50 else "b" for i in range(100)],
        [10.0 if i == 7 else np.inf for i in range(100)],
        vectors,
    )
    assert index.search(vectors[3], 1, now=0.0, namespaces=None, include_expired=False)[0][0] == 3
    index.remove(3)
    assert 3 not in {r for r, _ in index.search(vectors[3], 100, now=0.0, namespaces=None, include_expired=False)}
    only_b = index.search(vectors[3], 100, now=0.0, namespaces=["b"], include_expired=False)
    assert {r for r, _ in only_b} == set(range(50, 100))
    assert index.search(vectors[3], 5, now=0.0, namespaces=["missing"], include_expired=False) == []
    assert 7 not in {r for r, _ in index.search(vectors[7], 100, now=20.0, namespaces=None, include_expired=False)}
    assert index.search(vectors[7], 1, now=20.0, namespaces=None, include_expired=True)[0][0] == 7
    index.upsert(7, "a", np.inf, vectors[8])
    assert index.search(vectors[8], 2, now=20.0, namespaces=None, include_expired=False)[0][1] == pytest.approx(1.0)
    assert len(index) == 99


@pytest.mark.anyio
async def test_index_stays_coherent_with_own_and_foreign_writes(
    memory_settings_for: Callable[[str], MemorySettings],
) -> None:
    """Two stores on one file, as two processes would be: each sees the other's writes."""
    settings = memory_settings_for("sqlite")
    with anyio.fail_after(60):
        ours, theirs = await open_store(settings), await open_store(settings)
        try:
            backend = ours._backend  # type: ignore[attr-defined]
            assert isinstance(backend, SqliteBackend)
            backend._index_min_rows = 1  # use the in-process index from the first memory on
            first = await ours.put("t", MemoryInput(text="the cat sat on the mat"))
            assert (await ours.search("t", "cat on a mat", k=1, mode="vector"))[0].memory.id == first.memory.id
            index = backend._indexes["t"]
            # Our own write updates the loaded index in place (same object, one version later).
            second = await ours.put("t", MemoryInput(text="quarterly revenue grew by ten percent"))
            assert backend._indexes["t"] is index and len(index) == 2
            assert (await ours.search("t", "revenue growth", k=1, mode="vector"))[0].memory.id == second.memory.id
            # A write through the other connection makes ours reload on the next search.
            third = await theirs.put("t", MemoryInput(text="the kubernetes cluster ran out of memory"))
            hits = await ours.search("t", "kubernetes memory pressure", k=1, mode="vector")
            assert hits[0].memory.id == third.memory.id and backend._indexes["t"] is not index
            await theirs.delete("t", third.memory.id)
            hits = await ours.search("t", "kubernetes memory pressure", k=3, mode="vector")
            assert third.memory.id not in {h.memory.id for h in hits}
            await ours.update("t", first.memory.id, MemoryPatch(text="dogs love long walks"))
            hits = await ours.search("t", "walking the dog", k=1, mode="vector")
            assert hits[0].memory.id == first.memory.id
            assert await ours.forget("t", MemoryFilter()) == 2
            assert await ours.search("t", "anything", k=3, mode="vector") == []
        finally:
            await ours.close()
            await theirs.close()
