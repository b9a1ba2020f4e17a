"""`sophia-docker`: the Docker MCP server's command line."""

from sophia_shared.cli import run, server_app

from sophia_docker.settings import DockerSettings
from sophia_docker.tools import build_server, check

# At module level: importing this module registers the builder for suite-wide tests and the host.
app = server_app("docker", DockerSettings, build_server, check)


def main() -> None:
    """Entry point of the `sophia-docker` command."""
    run(app)


if __name__ == "__main__":
    main()
