"""The agent's side of MCP: a client session to the host (in-process) or to any MCP endpoint.

Every call the agent makes is an ordinary tools/call on this session, so the request path — the
principal, role check, confirmation and audit — applies to it as to any client's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from mcp.client import Client
from mcp.types import CallToolResult, RequestParamsMeta, Tool
from sophia_shared.errors import error_info

from .providers.base import ToolDef


@dataclass(frozen=True)
class ListedTool:
    tool: ToolDef
    read_only: bool
    destructive: bool


@dataclass(frozen=True)
class ToolOutcome:
    text: str
    is_error: bool = False
    error_code: str | None = None
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)


class ToolSession(Protocol):
    async def list_tools(self) -> list[ListedTool]: ...

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolOutcome: ...


def listed(tool: Tool) -> ListedTool:
    annotations = tool.annotations
    read_only = bool(annotations.read_only_hint) if annotations is not None else False
    destructive = bool(annotations.destructive_hint) if annotations is not None else not read_only
    return ListedTool(ToolDef(tool.name, tool.description or "", dict(tool.input_schema)), read_only, destructive)


def outcome_of(result: CallToolResult) -> ToolOutcome:
    """What the model is shown of a result: its structured content as JSON, else its text blocks."""
    if result.structured_content is not None and not result.is_error:
        text = json.dumps(result.structured_content, ensure_ascii=False, default=str)
    else:
        text = "\n".join(getattr(b, "text", "") for b in result.content if getattr(b, "text", None))
    info = error_info(result)
    if info is None:
        return ToolOutcome(text=text)
    data = info.get("data")
    return ToolOutcome(text=text, is_error=True, error_code=str(info.get("code")), message=str(info.get("message", "")),
                       data=data if isinstance(data, dict) else {})


class McpToolSession:
    """An open `mcp.client.Client`; `meta` goes with every request (a trusted in-process host reads the
    asking user's principal from it; a remote endpoint authenticates the client's own token instead)."""

    def __init__(self, client: Client, meta: dict[str, Any] | None = None, *, hide: frozenset[str] = frozenset()):
        self.client = client
        self.meta = cast(RequestParamsMeta, meta) if meta else None
        self.hide = hide

    async def list_tools(self) -> list[ListedTool]:
        tools: list[ListedTool] = []
        cursor: str | None = None
        for _ in range(100):  # pages, bounded
            page = await self.client.list_tools(cursor=cursor, meta=self.meta, cache_mode="bypass")
            tools += [listed(t) for t in page.tools if t.name not in self.hide]
            cursor = page.next_cursor
            if not cursor:
                break
        return tools

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        return outcome_of(await self.client.call_tool(name, arguments, meta=self.meta))
