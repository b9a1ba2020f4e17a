"""Hybrid ranking: BM25F and idf coverage fused with MiniLM similarity, and a calibrated confidence."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .keyword import KeywordIndex, ToolText
from .semantic import EmbedderFactory, SemanticIndex
from .text import terms
from .tools import RoutableTool

# Fusion weights of the three ranking signals (chosen on BFCL live_multiple, see bench/routing/README.md).
W_KEYWORD, W_COVERAGE, W_SEMANTIC = 0.2, 0.2, 1.0
# Logistic calibration, P(the tool is the one asked for), from signals that do not depend on how many
# tools there are: (bias, similarity, share of the sentence's terms found, share of the name's terms found).
# Fitted on the even-numbered rows of BFCL live_multiple (pooled) and irrelevance + live_irrelevance.
CALIBRATION_HYBRID = (-3.228, 5.229, 0.628, 0.903)
CALIBRATION_KEYWORD = (-2.53, 0.0, 2.566, 1.946)


@dataclass(frozen=True)
class Scored:
    index: int
    score: float
    confidence: float


class HybridRanker:
    """Scores every tool of a fixed list for a sentence; keywords only if the model is unavailable."""

    def __init__(self, tools: Sequence[RoutableTool], embedder: EmbedderFactory | None, *, semantic: bool = True,
                 keyword: bool = True):
        self.tools = list(tools)
        self._keyword = KeywordIndex([ToolText(t.name, t.description, t.parameter_text()) for t in self.tools])
        self._semantic = SemanticIndex([t.embedding_text() for t in self.tools], embedder if semantic else None)
        self._use_keyword = keyword

    @property
    def semantic_ready(self) -> bool:
        return not self._semantic.failed

    def rank(self, sentence: str, k: int) -> list[Scored]:
        """The best `k` tools for `sentence`, best first (ties by name), each with its confidence."""
        query = terms(sentence)
        bm25, coverage = self._keyword.scores(query)
        if not self._use_keyword:
            bm25, coverage = [0.0] * len(bm25), [0.0] * len(bm25)
        similarity = self._semantic.similarities(sentence)
        top = max(bm25, default=0.0) or 1.0
        fused = []
        for i in range(len(self.tools)):
            sim = 0.0 if similarity is None else float(similarity[i])
            fused.append((W_KEYWORD * bm25[i] / top + W_COVERAGE * coverage[i] + W_SEMANTIC * sim, i))
        fused.sort(key=lambda pair: (-pair[0], self.tools[pair[1]].name))
        out = []
        for score, i in fused[: max(0, k)]:
            plain, name = self._keyword.overlap(i, query) if self._use_keyword else (0.0, 0.0)
            if similarity is None:
                b0, _, b2, b3 = CALIBRATION_KEYWORD
                z = b0 + b2 * plain + b3 * name
            else:
                b0, b1, b2, b3 = CALIBRATION_HYBRID
                z = b0 + b1 * float(similarity[i]) + b2 * plain + b3 * name
            out.append(Scored(i, score, 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))))
        return out
