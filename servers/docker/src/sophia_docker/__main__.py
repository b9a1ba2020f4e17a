"""`sophia-docker`: the shared CLI bound to this server."""

from sophia_shared.cli import run, server_app

from sophia_docker.settings import DockerSettings
from sophia_docker.tools import build_server, check


def main() -> None:
    """Entry point of the `sophia-docker` command."""
    run(server_app("docker", DockerSettings, build_server, check))


if __name__ == "__main__":
    main()
