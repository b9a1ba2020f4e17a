"""`sophia-pulumi`: the shared CLI bound to this server."""

from typing import Any

from sophia_shared.cli import ServerParts, lazy_server_app, run


def _parts() -> ServerParts[Any]:
    # Imported when a command runs, not for `--help` or `--version`.
    from sophia_pulumi.settings import PulumiSettings
    from sophia_pulumi.tools import build_server, check

    return ServerParts(PulumiSettings, build_server, check)


# At module level: importing this module registers the builder for suite-wide tests and the host.
app = lazy_server_app("pulumi", _parts)


def main() -> None:
    """Entry point of the `sophia-pulumi` command."""
    run(app)


if __name__ == "__main__":
    main()
