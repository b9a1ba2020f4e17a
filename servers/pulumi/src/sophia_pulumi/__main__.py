"""`sophia-pulumi`: the shared CLI bound to this server."""

from sophia_shared.cli import run, server_app

from sophia_pulumi.settings import PulumiSettings
from sophia_pulumi.tools import build_server, check

app = server_app("pulumi", PulumiSettings, build_server, check)


def main() -> None:
    """Entry point of the `sophia-pulumi` command."""
    run(app)


if __name__ == "__main__":
    main()
