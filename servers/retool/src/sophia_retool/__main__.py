"""`sophia-retool`: the shared CLI bound to the Retool server."""

from sophia_shared.cli import run, server_app

from sophia_retool.settings import RetoolSettings
from sophia_retool.tools import build_server, check

app = server_app("retool", RetoolSettings, build_server, check)


def main() -> None:
    """Entry point of the `sophia-retool` command."""
    run(app)


if __name__ == "__main__":
    main()
