"""Scoring a router over the benchmark sets: pooled ranking, abstention, recall, and time per decision."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sophia_agent.router import RoutableTool, Router, RouterSettings
from sophia_agent.router.semantic import Embedder, shared_embedder

from .data import Case

MODES = ("router", "keyword", "embedding")


class CachingEmbedder:
    """The shared MiniLM, remembering each text's vector: the same tool text recurs across catalogues."""

    def __init__(self, inner: Embedder):
        self._inner = inner
        self._cache: dict[str, npt.NDArray[np.float32]] = {}

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            for text, vector in zip(todo, self._inner.embed(todo), strict=True):
                self._cache[text] = vector
        return np.array([self._cache[t] for t in texts], dtype=np.float32).reshape(len(texts), -1)


def make_router(mode: str, tools: Sequence[RoutableTool], embedder: Embedder, **settings: Any) -> Router:
    options = RouterSettings(**settings)
    if mode == "keyword":
        return Router(tools, settings=options, embedder=None)
    return Router(tools, settings=options, embedder=lambda: embedder, keyword=mode != "embedding")


def pooled(router: Router, cases: Sequence[Case], held_out: Callable[[int], bool]) -> dict[str, Any]:
    """top-1 / top-5 of the ranking, and top-1 after abstention (a right tool routed), all rows and held-out."""
    rows: list[tuple[bool, bool, bool, bool]] = []
    for i, case in enumerate(cases):
        decision = router.route(case.sentence)
        ranked = [decision.tool] if decision.tool else []
        ranked += [a.tool for a in decision.alternatives]
        top5 = [r.tool for r in router.rank(case.sentence, 5)]
        rows.append((top5[:1] == case.expected[:1] or (bool(top5[:1]) and top5[0] in case.expected),
                     any(t in case.expected for t in top5), decision.tool in case.expected, held_out(i)))
    return {"all": _rates(rows), "held_out": _rates([r for r in rows if r[3]])}


def _rates(rows: Sequence[tuple[bool, bool, bool, bool]]) -> dict[str, Any]:
    n = max(1, len(rows))
    top1 = 100 * sum(r[0] for r in rows) / n
    routed = 100 * sum(r[2] for r in rows) / n
    return {"n": len(rows), "top1": round(top1, 1), "top5": round(100 * sum(r[1] for r in rows) / n, 1),
            "routed_top1": round(routed, 1), "abstention_loss": round(top1 - routed, 1)}


def own_catalogues(mode: str, cases: Sequence[Case], embedder: Embedder,
                   held_out: Callable[[int], bool]) -> dict[str, Any]:
    """Each case against its own (small) catalogue: abstention rate, and right-tool rate where one is expected."""
    rows = []
    for i, case in enumerate(cases):
        decision = make_router(mode, case.tools, embedder).route(case.sentence) if case.tools else None
        tool = decision.tool if decision else None
        rows.append((tool is None, tool in case.expected, held_out(i)))

    def rates(picked: Sequence[tuple[bool, bool, bool]]) -> dict[str, Any]:
        n = max(1, len(picked))
        return {"n": len(picked), "abstained": round(100 * sum(r[0] for r in picked) / n, 1),
                "routed_right": round(100 * sum(r[1] for r in picked) / n, 1)}

    return {"all": rates(rows), "held_out": rates([r for r in rows if r[2]])}


def recall_at(router: Router, cases: Sequence[Case], k: int) -> float:
    """Mean share of each task's annotated tools found among the top `k`."""
    shares = []
    for case in cases:
        top = {r.tool for r in router.rank(case.sentence, k)}
        shares.append(len(top & set(case.expected)) / len(set(case.expected)))
    return round(100 * sum(shares) / max(1, len(shares)), 1)


def top_k_rates(router: Router, cases: Sequence[Case], ks: Sequence[int]) -> dict[str, Any]:
    hits = dict.fromkeys(ks, 0)
    for case in cases:
        top = [r.tool for r in router.rank(case.sentence, max(ks))]
        for k in ks:
            hits[k] += any(t in case.expected for t in top[:k])
    result: dict[str, Any] = {f"top{k}": round(100 * v / max(1, len(cases)), 1) for k, v in hits.items()}
    result["n"] = len(cases)
    return result


def decision_times(tools: Sequence[RoutableTool], sentences: Sequence[str]) -> list[float]:
    """Seconds per `route` with the real (uncached) model, its tool vectors built before timing."""
    router = Router(tools, embedder=shared_embedder)
    router.route("warm up")
    samples = []
    for sentence in sentences:
        started = time.perf_counter()
        router.route(sentence)
        samples.append(time.perf_counter() - started)
    return samples


def quick_embedder() -> CachingEmbedder:
    return CachingEmbedder(shared_embedder())
