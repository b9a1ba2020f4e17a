"""Relevance on real stores (both backends, the real local MiniLM): a paraphrase finds its fact first,
on a store of six facts and among 10, 100 and 10,000 memories; stop words are no evidence; unrelated
questions return nothing above the relevance floor.

The large stores are the six facts plus filler memories about other office matters. The filler's
vectors are made from 48 really embedded filler sentences the way real memories cluster (a base
vector + 0.35 x another + noise, renormalised, as bench/memory does): embedding 10,000 texts for
real would take minutes here. The facts and every query are embedded by the real model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from sophia_shared.memory import MemoryInput, MemorySettings, open_store
from sophia_shared.memory.embeddings import LocalMiniLM, local_embedder

pytestmark = pytest.mark.anyio
Vector = npt.NDArray[np.float32]

FACTS = [
    "The production Postgres database is backed up every night at 02:00 UTC to the offsite bucket.",
    "The Snowflake warehouse ANALYTICS_WH auto-suspends after 60 seconds of inactivity.",
    "Alice prefers dark mode in every editor and terminal she uses.",
    "Deployments to the payments service are frozen during the last week of each quarter.",
    "The on-call rotation for the platform team changes every Monday at 09:00.",
    "Our Docker images are built from the distroless Python base image to keep them small.",
]
# (paraphrased question, index of the fact it asks about): no question shares its key words.
PARAPHRASES = [
    ("when do backups of the prod db happen?", 0),
    ("how long before the analytics warehouse goes idle and stops?", 1),
    ("what colour theme does Alice like?", 2),
    ("when are we not allowed to ship changes to payments?", 3),
    ("which base image do our containers use?", 5),
]
UNRELATED = [
    "how do volcanoes form?",
    "who painted the Mona Lisa?",
    "what is the distance from the earth to the moon?",
    "recipe for chocolate cake",
]
_ROOMS = ["Aurora", "Birch", "Cedar", "Delta", "Ember", "Fjord"]
_THINGS = [
    "The {room} meeting room has a new projector and seats twelve people.",
    "Parking permits for the {room} garage are renewed every January.",
    "The quarterly all-hands takes place in the {room} hall on the first Thursday.",
    "Travel expenses above 500 euros need approval from the {room} finance office.",
    "New laptops are ordered through the {room} IT desk and arrive within a week.",
    "The {room} kitchen coffee machine is descaled on Fridays.",
    "Interview panels for engineering roles meet in the {room} room.",
    "The {room} office closes at 19:00 during the summer months.",
]
FILLER_BASE = [thing.format(room=room) for thing in _THINGS for room in _ROOMS]


class FillerEmbedder:
    """The real model, except for filler texts, whose vectors were derived from real ones in advance."""

    def __init__(self, model: LocalMiniLM, table: dict[str, Vector]):
        self._model = model
        self._table = table

    @property
    def model_id(self) -> str:
        return self._model.model_id

    @property
    def dimensions(self) -> int:
        return self._model.dimensions

    def embed(self, texts: Sequence[str]) -> Vector:
        known = [self._table.get(text) for text in texts]
        if all(vector is not None for vector in known):
            return np.vstack([v for v in known if v is not None])
        return self._model.embed(texts)


@pytest.fixture(scope="module")
def filler(models_dir: Path) -> tuple[list[str], dict[str, Vector]]:
    """10,000 filler texts and their vectors."""
    base = local_embedder(models_dir).embed(FILLER_BASE)
    rng = np.random.default_rng(19)
    texts: list[str] = []
    vectors: list[Vector] = []
    for n in range(10_000):
        i, j = int(rng.integers(len(base))), int(rng.integers(len(base)))
        mixed = base[i] + 0.35 * base[j] + np.asarray(rng.normal(0.0, 0.02, base.shape[1]), dtype=np.float32)
        vectors.append((mixed / np.linalg.norm(mixed)).astype(np.float32))
        texts.append(f"{FILLER_BASE[i]} (note {n})")
    return texts, dict(zip(texts, vectors, strict=True))


@pytest.mark.parametrize("size", [6, 10, 100, 10_000])
async def test_paraphrase_ranks_its_fact_first_and_unrelated_questions_find_nothing(
    memory_settings: MemorySettings, models_dir: Path, filler: tuple[list[str], dict[str, Vector]], size: int
) -> None:
    texts, table = filler
    store = await open_store(memory_settings, embedder=FillerEmbedder(local_embedder(models_dir), table))
    try:
        facts = await store.put_many("alice", [MemoryInput(text=text) for text in FACTS])
        fact_ids = [result.memory.id for result in facts]
        extra = texts[: size - len(FACTS)]
        for start in range(0, len(extra), 1_000):
            await store.put_many("alice", [MemoryInput(text=text) for text in extra[start : start + 1_000]])
        for question, fact in PARAPHRASES:
            hits = await store.search("alice", question, k=5)
            assert hits, question
            assert hits[0].memory.id == fact_ids[fact], (question, [(h.memory.text, h.score) for h in hits])
            assert 0.0 < hits[0].score <= 1.0
            assert all(h.score >= memory_settings.min_relevance for h in hits)
        for question in UNRELATED:
            assert await store.search("alice", question, k=5) == [], question
    finally:
        await store.close()


async def test_stop_words_are_no_evidence_on_a_small_store(memory_settings: MemorySettings) -> None:
    store = await open_store(memory_settings)
    try:
        results = await store.put_many("alice", [MemoryInput(text=text) for text in FACTS])
        backup, warehouse = results[0].memory.id, results[1].memory.id
        hits = await store.search("alice", "when do backups of the prod db happen?", k=6, min_relevance=0.0)
        by_id = {hit.memory.id: hit for hit in hits}
        # The warehouse fact shares only "of" with the question: no keyword evidence, no "text" match.
        assert by_id[warehouse].keyword == 0.0 and "text" not in by_id[warehouse].matched_by
        assert hits[0].memory.id == backup
        assert by_id[backup].score > by_id[warehouse].score
        # A query of stop words alone matches nothing, in hybrid mode and in text mode.
        assert await store.search("alice", "the of and", k=6) == []
        with pytest.raises(Exception, match="no words to search for"):
            await store.search("alice", "of the", k=6, mode="text")
    finally:
        await store.close()


async def test_keyword_evidence_lifts_an_exact_identifier(memory_settings: MemorySettings) -> None:
    store = await open_store(memory_settings)
    try:
        results = await store.put_many("alice", [MemoryInput(text=text) for text in FACTS])
        hits = await store.search("alice", "ANALYTICS_WH", k=3)
        assert hits and hits[0].memory.id == results[1].memory.id
        assert "text" in hits[0].matched_by and hits[0].keyword == 1.0
        assert hits[0].similarity is not None and hits[0].score > hits[0].similarity
        text_only = await store.search("alice", "ANALYTICS_WH", k=3, mode="text")
        assert [h.memory.id for h in text_only] == [results[1].memory.id]
        assert text_only[0].similarity is None and text_only[0].matched_by == ["text"]
    finally:
        await store.close()
