"""Hybrid retrieval: candidates from the vector and full-text rankings, scored on evidence.

Every candidate gets its exact cosine similarity to the query and its keyword coverage: the share
of the query's informative words (not stop words, not near-universal in the store) that occur in
it. Its relevance is the similarity raised towards 1 by that coverage, so a strong semantic match
is never outranked by a weak keyword one, and a memory that only shares "of" and "the" with the
query has no keyword evidence at all. Hits below the relevance floor are dropped. The same
scoring runs on both backends; they only supply the candidates and the similarities.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from . import Memory, SearchHit

RECENCY_HALF_LIFE_DAYS = 30.0
# How far full keyword coverage lifts a similarity towards 1: sim 0.3 with every informative
# query word present becomes 0.3 + 0.35 * 0.7 = 0.545.
KEYWORD_WEIGHT = 0.35
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_QUERY_TERMS = 32

# English function words (PostgreSQL's `english` stop list, the Snowball one): they never count
# as keyword evidence on either backend, whatever the store's size.
STOP_WORDS = frozenset(
    """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself
    she her hers herself it its itself they them their theirs themselves what which who whom
    this that these those am is are was were be been being have has had having do does did doing
    a an the and but if or because as until while of at by for with about against between into
    through during before after above below to from up down in out on off over under again
    further then once here there when where why how all any both each few more most other some
    such no nor not only own same so than too very s t can will just don should now
    """.split()  # noqa: SIM905 -- a word list reads better as words
)


@dataclass(frozen=True)
class VectorHit:
    memory_id: str
    similarity: float


def query_terms(query: str) -> list[str]:
    """Distinct lower-cased words of a query that are not stop words, in order; what both FTS engines get."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(query.lower()):
        if word not in STOP_WORDS:
            seen.setdefault(word, None)
    return list(seen)[:MAX_QUERY_TERMS]


def fts5_query(terms: Sequence[str]) -> str:
    """An FTS5 MATCH expression: any term (each quoted, so no query syntax gets through)."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def stem(word: str) -> str:
    """A light English stemmer (plural and verb endings), so "backups" meets "backup" on both backends."""
    for suffix, keep in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: len(word) - len(suffix)] + keep
    return word


def coverage(terms: Sequence[str], text: str) -> float:
    """The share of `terms` (informative query words) that occur in `text`, by stem; linear in the text."""
    if not terms:
        return 0.0
    wanted = {stem(term) for term in terms}
    found = {stem(word) for word in _WORD.findall(text.lower())} & wanted
    return len(found) / len(wanted)


def relevance(similarity: float | None, keyword: float | None) -> float:
    """The user-facing score in [0, 1]: cosine similarity lifted by keyword coverage (or either alone)."""
    if similarity is None:
        return round(max(0.0, min(1.0, keyword or 0.0)), 6)
    base = max(0.0, min(1.0, similarity))
    return round(min(1.0, base + KEYWORD_WEIGHT * (keyword or 0.0) * (1.0 - base)), 6)


def fuse(
    candidates: Iterable[str],
    similarities: dict[str, float] | None,
    terms: Sequence[str] | None,
    memories: dict[str, Memory],
    *,
    k: int,
    now: datetime,
    min_relevance: float,
    recency_weight: float,
    importance_weight: float,
    vector_ranks: dict[str, int] | None = None,
    text_ranks: dict[str, int] | None = None,
) -> list[SearchHit]:
    """Score candidates on evidence, drop those below `min_relevance`, boost, best first.

    `similarities` None: text-only search (no vectors); `terms` None: vector-only search. A hit's
    `matched_by` says which evidence holds on its own: "vector" when its similarity clears the
    floor, "text" when it contains an informative query word.
    """
    hits: list[tuple[float, SearchHit]] = []
    for memory_id in dict.fromkeys(candidates):
        memory = memories.get(memory_id)
        if memory is None:  # deleted between ranking and fetching
            continue
        similarity = similarities.get(memory_id) if similarities is not None else None
        if similarities is not None and similarity is None:
            continue  # no vector of the store's model (being re-embedded)
        keyword = coverage(terms, memory.text) if terms is not None else None
        score = relevance(similarity, keyword)
        matched: list[Literal["vector", "text"]] = []
        if similarity is not None and similarity >= min_relevance:
            matched.append("vector")
        if keyword:
            matched.append("text")
        floor = min_relevance if similarities is not None else 0.0
        if not matched or score < floor or score <= 0.0:
            continue
        boost = 1.0 + importance_weight * memory.importance
        if recency_weight:
            age_days = max(0.0, (now - memory.updated_at).total_seconds() / 86400)
            boost += recency_weight * math.pow(0.5, age_days / RECENCY_HALF_LIFE_DAYS)
        hit = SearchHit(
            memory=memory,
            score=score,
            similarity=round(similarity, 6) if similarity is not None else None,
            keyword=round(keyword, 6) if keyword is not None else None,
            matched_by=matched,
            vector_rank=(vector_ranks or {}).get(memory_id),
            text_rank=(text_ranks or {}).get(memory_id),
        )
        hits.append((score * boost, hit))
    hits.sort(key=lambda pair: (-pair[0], -(pair[1].similarity or 0.0), pair[1].memory.id))
    return [hit for _, hit in hits[:k]]
