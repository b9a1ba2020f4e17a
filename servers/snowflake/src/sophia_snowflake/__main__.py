"""`sophia-snowflake`: the Snowflake MCP server's command line."""

from sophia_shared.cli import run, server_app

from .settings import SnowflakeSettings
from .tools import build_server, check

app = server_app("snowflake", SnowflakeSettings, build_server, check)


def main() -> None:
    run(app)


if __name__ == "__main__":
    main()
