"""The offline router: a sentence becomes a decision (tool, arguments, what is missing), or no tool."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from .arguments import fill
from .model import RankedTool, RouteDecision, RouterSettings
from .ranking import HybridRanker
from .semantic import EmbedderFactory, shared_embedder
from .tools import RoutableTool, routable

MAX_TOOLS = 10_000
MAX_K = 100


class Router:
    """Ranks a fixed catalogue of tools for sentences and decides which one (if any) a sentence asks for.

    Nothing is run here: a decision names a tool and the arguments read from the sentence; calling it
    (with its role check, confirmation and audit) is the request path's business.
    """

    def __init__(self, tools: Iterable[RoutableTool], *, settings: RouterSettings | None = None,
                 embedder: EmbedderFactory | None = shared_embedder, keyword: bool = True):
        self.settings = settings or RouterSettings()
        unique: dict[str, RoutableTool] = {}
        for tool in tools:
            if len(unique) >= MAX_TOOLS:
                break
            unique.setdefault(tool.name, tool)
        self.tools = list(unique.values())
        self._by_name = unique
        self._ranker = HybridRanker(self.tools, embedder, semantic=self.settings.semantic, keyword=keyword)

    @classmethod
    def from_tools(cls, tools: Sequence[Any], **options: Any) -> Router:
        """A router over MCP `Tool`s (name, description, input schema, annotations)."""
        return cls((routable(t) for t in tools), **options)

    @property
    def semantic_ready(self) -> bool:
        """Whether the embedding model takes part (False once it failed to load: keywords only)."""
        return self._ranker.semantic_ready

    def is_destructive(self, name: str) -> bool:
        tool = self._by_name.get(name)
        return tool is None or tool.destructive

    def rank(self, sentence: str, k: int = 5) -> list[RankedTool]:
        """The `k` tools that fit `sentence` best, best first, each with its confidence (0..1)."""
        text = self._cap(sentence)
        if not text.strip() or not self.tools:
            return []
        return [RankedTool(tool=self.tools[s.index].name, confidence=round(s.confidence, 4))
                for s in self._ranker.rank(text, min(max(1, k), MAX_K))]

    def route(self, sentence: str, *, today: dt.date | None = None) -> RouteDecision:
        """The tool `sentence` asks for with the arguments it gives, or `tool: null` when none fits."""
        ranked = self.rank(sentence, self.settings.alternatives + 1)
        if not ranked:
            return RouteDecision(tool=None, arguments={}, missing=[], confidence=0.0, alternatives=[])
        best = ranked[0]
        tool = self._by_name[best.tool]
        line = self.settings.destructive_abstain_below if tool.destructive else self.settings.abstain_below
        if best.confidence < line:
            return RouteDecision(tool=None, arguments={}, missing=[], confidence=best.confidence,
                                 alternatives=ranked[: self.settings.alternatives])
        arguments, missing = fill(tool, self._cap(sentence), today=today)
        return RouteDecision(tool=tool.name, arguments=arguments, missing=missing, confidence=best.confidence,
                             alternatives=ranked[1:])

    def _cap(self, sentence: str) -> str:
        return sentence[: self.settings.max_sentence_chars]
