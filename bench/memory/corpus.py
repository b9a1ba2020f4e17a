"""The benchmark corpus: generated sentences embedded by the real model, spread into N clustered vectors."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sophia_shared.memory.embeddings import LocalMiniLM

PEOPLE = ["Alice", "Bob", "Priya", "Chen", "Maria", "Omar", "Yuki", "Lars", "Fatima", "Diego"]
THINGS = [
    "the billing service",
    "the Snowflake warehouse",
    "the onboarding flow",
    "the staging cluster",
    "the quarterly forecast",
    "the pricing page",
    "the mobile app",
    "the data pipeline",
    "the support queue",
    "the security review",
    "the Acme contract",
    "the hiring plan",
]
EVENTS = [
    "failed",
    "was delayed",
    "shipped early",
    "needs a review",
    "doubled in cost",
    "was rolled back",
    "got approved",
    "is blocked",
    "was migrated",
    "broke in production",
]
REASONS = [
    "a schema migration",
    "a missing index",
    "vendor pricing",
    "a holiday freeze",
    "an expired token",
    "customer feedback",
    "a capacity limit",
    "a legal question",
    "a flaky test",
    "budget cuts",
]
DAYS = [
    "on Monday",
    "last Friday",
    "yesterday",
    "this morning",
    "in Q3",
    "before the offsite",
    "after the release",
    "during the incident",
    "next sprint",
    "at the board meeting",
]
TAGS = ["ops", "sales", "eng", "finance", "people", "security"]


def _sentence(rng: random.Random) -> str:
    return (
        f"{rng.choice(PEOPLE)} said {rng.choice(THINGS)} {rng.choice(EVENTS)} "
        f"{rng.choice(DAYS)} because of {rng.choice(REASONS)}."
    )


@dataclass
class Corpus:
    base_texts: list[str]
    texts: list[str]
    tags: list[str]
    vectors: npt.NDArray[np.float32]
    query_texts: list[str]
    query_vectors: npt.NDArray[np.float32]


def make_corpus(model: LocalMiniLM, size: int, queries: int, bases: int = 3_000) -> tuple[Corpus, dict[str, Any]]:
    """Build the corpus; also returns the embedding throughput measured while embedding it."""
    rng = random.Random(7)
    seen: dict[str, None] = {}
    while len(seen) < bases + queries:
        seen.setdefault(_sentence(rng), None)
    sentences = list(seen)
    base_texts, query_texts = sentences[:bases], sentences[bases:]
    began, cpu_began = time.perf_counter(), time.process_time()
    base = model.embed(base_texts)
    query_vectors = model.embed(query_texts)
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    # CPU seconds (both inference threads) do not depend on what else the host runs meanwhile.
    stats = {
        "sentences": len(sentences),
        "seconds": round(elapsed, 2),
        "sentences_per_s": round(len(sentences) / elapsed, 1),
        "cpu_seconds": round(cpu, 2),
        "sentences_per_cpu_s": round(len(sentences) / cpu, 1),
    }

    nrng = np.random.default_rng(7)
    first = np.arange(size) % bases
    second = nrng.integers(0, bases, size)
    vectors = base[first] + 0.35 * base[second] + 0.04 * nrng.standard_normal((size, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = [f"{base_texts[first[i]]} (note {i})" for i in range(size)]
    tags = [TAGS[i % len(TAGS)] for i in range(size)]
    return Corpus(base_texts, texts, tags, vectors.astype(np.float32), query_texts, query_vectors), stats
