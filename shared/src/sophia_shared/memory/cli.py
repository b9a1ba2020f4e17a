"""`sophia memory ...`: defined in sophia_shared.memory_cli, outside this package, so that the
`sophia` command can list it without importing the memory store."""

from ..memory_cli import memory_app

__all__ = ["memory_app"]
