"""The PostgreSQL driver, imported only where a PostgreSQL DSN is configured.

psycopg comes with the `postgres` extra of sophia-shared (the memory, Gong and host packages
install it); a server installed without it still starts, and fails with one clear line as soon as
a setting points it at PostgreSQL.
"""

from __future__ import annotations

from types import ModuleType

from .errors import NotConfigured


def import_psycopg(setting: str) -> ModuleType:
    """`psycopg`, or NotConfigured naming the setting that asked for PostgreSQL and the extra to install."""
    try:
        import psycopg
    except ImportError as exc:
        raise NotConfigured(
            f"{setting} points at PostgreSQL but its driver is not installed: "
            "install sophia-shared[postgres] (psycopg), or use the SQLite default"
        ) from exc
    return psycopg
