"""`sophia-retool`: the shared CLI bound to the Retool server."""

from typing import Any

from sophia_shared.cli import ServerParts, lazy_server_app, run


def _parts() -> ServerParts[Any]:
    # Imported when a command runs, not for `--help` or `--version`.
    from sophia_retool.settings import RetoolSettings
    from sophia_retool.tools import build_server, check

    return ServerParts(RetoolSettings, build_server, check)


# At module level: importing this module registers the builder for suite-wide tests and the host.
app = lazy_server_app("retool", _parts)


def main() -> None:
    """Entry point of the `sophia-retool` command."""
    run(app)


if __name__ == "__main__":
    main()
