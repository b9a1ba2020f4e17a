"""BM25F over each tool's name, parameter names and description, and how much of a sentence a tool covers."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .text import terms

# A word in the tool's name says more than one in its parameters, which says more than its description.
NAME_WEIGHT, PARAM_WEIGHT, DESCRIPTION_WEIGHT = 3.0, 1.5, 1.0
_K1, _B = 1.2, 0.75


@dataclass(frozen=True)
class ToolText:
    """What the keyword index reads of one tool."""

    name: str
    description: str
    parameters: str  # parameter names and their descriptions, space separated


class KeywordIndex:
    """A BM25F index over a fixed list of tools (build a new one when the tools change)."""

    def __init__(self, tools: Sequence[ToolText]):
        self._fields: list[dict[str, float]] = []
        self._names: list[frozenset[str]] = []
        self._df: Counter[str] = Counter()
        for tool in tools:
            self._names.append(frozenset(terms(tool.name)))
            weighted: dict[str, float] = {}
            for text, weight in ((tool.name, NAME_WEIGHT), (tool.parameters, PARAM_WEIGHT),
                                 (tool.description, DESCRIPTION_WEIGHT)):
                for term in terms(text):
                    weighted[term] = weighted.get(term, 0.0) + weight
            self._fields.append(weighted)
            self._df.update(weighted.keys())
        self._lengths = [sum(f.values()) for f in self._fields]
        self._avg_length = max(1.0, sum(self._lengths) / max(1, len(self._lengths)))
        count = max(1, len(self._fields))
        self._idf = {t: math.log(1 + (count - df + 0.5) / (df + 0.5)) for t, df in self._df.items()}
        self._unknown_idf = math.log(1 + (count + 0.5) / 0.5)
        self._postings: dict[str, list[tuple[int, float]]] = {}
        for i, weights in enumerate(self._fields):
            for term, tf in weights.items():
                self._postings.setdefault(term, []).append((i, tf))

    def __len__(self) -> int:
        return len(self._fields)

    def scores(self, query_terms: Sequence[str]) -> tuple[list[float], list[float]]:
        """BM25F score of every tool, and the share of the sentence's idf mass each tool contains."""
        wanted = Counter(query_terms)
        mass = sum(self._idf.get(t, self._unknown_idf) * n for t, n in wanted.items()) or 1.0
        scores = [0.0] * len(self._fields)
        covered = [0.0] * len(self._fields)
        for term, times in wanted.items():
            idf = self._idf.get(term)
            if idf is None:
                continue
            for i, tf in self._postings[term]:
                norm = _K1 * (1 - _B + _B * self._lengths[i] / self._avg_length)
                scores[i] += idf * tf * (_K1 + 1) / (tf + norm)
                covered[i] += idf * times / mass
        return scores, covered

    def overlap(self, index: int, query_terms: Sequence[str]) -> tuple[float, float]:
        """Catalogue-independent overlap: the share of the sentence's terms the tool has anywhere, and the
        share of the tool's name terms the sentence has (idf would depend on how many tools there are)."""
        wanted = set(query_terms)
        field = self._fields[index]
        name = self._names[index]
        found = sum(1 for t in wanted if t in field)
        return found / max(1, len(wanted)), len(name & wanted) / max(1, len(name))
