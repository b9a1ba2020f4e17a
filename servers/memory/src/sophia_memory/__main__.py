"""`sophia-memory`: the memory MCP server's command line."""

from sophia_shared.cli import server_app

from .settings import MemoryServerSettings
from .tools import build_server, check

app = server_app("memory", MemoryServerSettings, build_server, check)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
