"""The two servers compared: one trivial tool on a bare MCPServer, and the same through SophiaServer."""

from __future__ import annotations

import sys
from typing import Annotated

from pydantic import Field


def bare() -> None:
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("bare")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    server.run("stdio")


def sophia() -> None:
    from sophia_shared.server import Role, SophiaServer
    from sophia_shared.settings import ServerSettings

    server = SophiaServer("bench", settings=ServerSettings())

    @server.tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=False)
    def add(
        a: Annotated[int, Field(description="first")], b: Annotated[int, Field(description="second")]
    ) -> int:
        """Add two numbers."""
        return a + b

    server.run("stdio")


if __name__ == "__main__":
    {"bare": bare, "sophia": sophia}[sys.argv[1]]()
