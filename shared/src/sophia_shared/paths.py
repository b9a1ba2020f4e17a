"""The one state directory: SOPHIA_HOME, else the XDG data dir, else ~/.local/share/sophia."""

from __future__ import annotations

import os
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
