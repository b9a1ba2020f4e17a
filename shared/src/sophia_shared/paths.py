"""The one state directory: SOPHIA_HOME, else the XDG data dir, else ~/.local/share/sophia."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def sophia_home() -> Path:
    """Return (and create, private to the user) the directory that holds all of Sophia's state."""
    explicit = os.environ.get("SOPHIA_HOME")
    if explicit:
        home = Path(explicit).expanduser()
    else:
        xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        home = Path(xdg) / "sophia"
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    return home


def write_atomically(path: Path, data: bytes, *, replace: bool = True) -> None:
    """Write `path` whole or not at all, readable by the owner only (the temp file is 0600).

    `replace=False` creates the file only if it does not exist yet: when another process made it
    first, theirs is kept (os.link refuses to overwrite).
    """
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(temp, path)
        else:
            with contextlib.suppress(FileExistsError):
                os.link(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
