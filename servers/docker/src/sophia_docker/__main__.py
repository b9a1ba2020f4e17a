"""`sophia-docker`: the Docker MCP server's command line."""

from typing import Any

from sophia_shared.cli import ServerParts, lazy_server_app, run


def _parts() -> ServerParts[Any]:
    # Imported when a command runs, not for `--help` or `--version`.
    from sophia_docker.settings import DockerSettings
    from sophia_docker.tools import build_server, check

    return ServerParts(DockerSettings, build_server, check)


# At module level: importing this module registers the builder for suite-wide tests and the host.
app = lazy_server_app("docker", _parts)


def main() -> None:
    """Entry point of the `sophia-docker` command."""
    run(app)


if __name__ == "__main__":
    main()
