"""The running host's status, written under SOPHIA_HOME for `sophia status` to read.

A file rather than an admin endpoint: `sophia status` must work against a host serving stdio to a
desktop client, and it must not need a token.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from sophia_shared.paths import sophia_home, write_atomically


def log_dir() -> Path:
    """Where each child's stderr goes, one `<server>.log` per server (rotated at 5 MB to `.log.1`)."""
    return sophia_home() / "host" / "logs"


class StatusFile:
    def __init__(self, path: Path | None = None):
        self.path = path or sophia_home() / "host" / "status.json"
        # The host writes from its loop and from a thread: one at a time through the same temp file.
        self._lock = threading.Lock()

    def write(self, status: dict[str, Any]) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, json.dumps(status, indent=1).encode())

    def read(self) -> dict[str, Any] | None:
        """The last status of a host that is still running, or None."""
        try:
            status = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        pid = status.get("pid")
        if not isinstance(pid, int) or not _alive(pid):
            return None
        return dict(status)

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def render(status: dict[str, Any]) -> str:
    """`sophia status` as a small table: STATE is the server's health, HEALTH says why."""
    now = time.time()
    lines = [
        f"host pid {status['pid']}, up {_age(now - status['started'])}, "
        f"{status['tools']} tools ({status['listed']} listed)"
    ]
    if status.get("fatal"):
        lines.append(f"refused: {status['fatal']}")
    lines.append(f"{'SERVER':<14} {'STATE':<14} {'PID':>7} {'RESTARTS':>8} {'TOOLS':>5} {'CALLS':>7}  HEALTH")
    for s in status.get("servers", []):
        state = s.get("health") or s["state"]
        reason = s.get("reason") if "health" in s else s.get("last_error")
        if state == "ready":
            up = f"up {_age(now - s['up_since'])}" if s.get("up_since") else "up"
            health = f"{up}: {reason}" if reason else up
        else:
            health = reason or s["state"]
        pid = str(s["pid"]) if s.get("pid") else "-"
        lines.append(
            f"{s['name']:<14} {state:<14} {pid:>7} {s['restarts']:>8} {s['tools']:>5} {s['calls']:>7}  {health}"
        )
    if status.get("logs"):
        lines.append(f"each server's own log: {status['logs']}/<server>.log (`sophia logs <server>`)")
    return "\n".join(lines)


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
