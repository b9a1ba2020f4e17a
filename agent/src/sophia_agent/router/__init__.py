"""The offline router: hybrid ranking (keywords + the shared MiniLM), argument filling, abstention."""

from .model import RankedTool, RouteDecision, RouterSettings
from .router import Router
from .tools import RoutableTool, routable

__all__ = ["RankedTool", "RoutableTool", "RouteDecision", "Router", "RouterSettings", "routable"]
