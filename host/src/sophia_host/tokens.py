"""A token store that re-reads tokens.json only when it changed.

The shared TokenStore reads and parses the file on every request; at the host's edge that is a
file read per call. The cache is keyed by the file's inode, size and mtime, so a token created or
revoked by `sophia token` takes effect on the next request, as before.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sophia_shared.auth import TokenStore


class CachedTokenStore(TokenStore):
    def __init__(self, path: Path | None = None):
        super().__init__(path)
        self._key: tuple[int, int, int] | None = None
        self._cached: dict[str, dict[str, Any]] = {}

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return {}
        key = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if key != self._key:
            self._cached = super()._load()
            self._key = key
        return self._cached
