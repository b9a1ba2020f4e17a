"""Hybrid retrieval: reciprocal-rank fusion of the vector and full-text rankings, then optional boosts."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from . import Memory, SearchHit

RRF_K = 60  # the constant of Cormack et al.; damps the head of each ranking
RECENCY_HALF_LIFE_DAYS = 30.0
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_QUERY_TERMS = 32


@dataclass(frozen=True)
class VectorHit:
    memory_id: str
    similarity: float


def query_terms(query: str) -> list[str]:
    """Distinct lower-cased words of a query, in order; what both FTS engines are asked for."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(query.lower()):
        seen.setdefault(word, None)
    return list(seen)[:MAX_QUERY_TERMS]


def fts5_query(terms: Sequence[str]) -> str:
    """An FTS5 MATCH expression: any term (each quoted, so no query syntax gets through)."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def fuse(
    vector_hits: Sequence[VectorHit],
    text_ids: Sequence[str],
    memories: dict[str, Memory],
    *,
    k: int,
    now: datetime,
    recency_weight: float,
    importance_weight: float,
) -> list[SearchHit]:
    """Rank memories by the sum of 1/(RRF_K + rank) over both rankings, boosted, best first."""
    scores: dict[str, float] = {}
    vector_rank: dict[str, int] = {}
    similarity: dict[str, float] = {}
    for rank, hit in enumerate(vector_hits, start=1):
        vector_rank[hit.memory_id] = rank
        similarity[hit.memory_id] = hit.similarity
        scores[hit.memory_id] = scores.get(hit.memory_id, 0.0) + 1.0 / (RRF_K + rank)
    text_rank: dict[str, int] = {}
    for rank, memory_id in enumerate(text_ids, start=1):
        text_rank[memory_id] = rank
        scores[memory_id] = scores.get(memory_id, 0.0) + 1.0 / (RRF_K + rank)
    hits: list[SearchHit] = []
    for memory_id, base in scores.items():
        memory = memories.get(memory_id)
        if memory is None:  # deleted between ranking and fetching
            continue
        boost = 1.0 + importance_weight * memory.importance
        if recency_weight:
            age_days = max(0.0, (now - memory.updated_at).total_seconds() / 86400)
            boost += recency_weight * math.pow(0.5, age_days / RECENCY_HALF_LIFE_DAYS)
        hits.append(
            SearchHit(
                memory=memory,
                score=round(base * boost, 6),
                similarity=round(similarity[memory_id], 6) if memory_id in similarity else None,
                vector_rank=vector_rank.get(memory_id),
                text_rank=text_rank.get(memory_id),
            )
        )
    hits.sort(key=lambda hit: (-hit.score, -(hit.similarity or 0.0), hit.memory.id))
    return hits[:k]
