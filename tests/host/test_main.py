"""`sophia` itself (__main__.py): --version, and a --help that imports nothing heavy (see tests/shared/test_cli.py)."""

from __future__ import annotations

import subprocess
from importlib.metadata import version

from shared.test_cli import _loaded_by

from .test_cli import SOPHIA


def test_version() -> None:
    done = subprocess.run([SOPHIA, "--version"], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == f"sophia {version('sophia-host')}"


def test_help_and_version_import_nothing_heavy() -> None:
    commands = [["--help"], ["--version"], ["up", "--help"], ["status", "--help"], ["logs", "--help"],
                ["config", "--help"], ["connect", "--help"], ["token", "--help"], ["token", "create", "--help"],
                ["audit", "--help"], ["memory", "--help"], ["approvals", "--help"]]
    assert _loaded_by("sophia", *commands) == []
