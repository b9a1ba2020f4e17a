"""`sophia` itself (__main__.py): --version, and a --help that imports nothing heavy (see tests/shared/test_cli.py)."""

from __future__ import annotations

import subprocess
from importlib.metadata import version

import pytest
from shared.test_cli import _loaded_by

from .test_cli import SOPHIA


def test_version() -> None:
    done = subprocess.run([SOPHIA, "--version"], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == f"sophia {version('sophia-host')}"


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["up", "--help"], ["token", "--help"],
                                  ["audit", "--help"], ["memory", "--help"], ["config", "--help"],
                                  ["connect", "--help"], ["approvals", "--help"], ["approve", "--help"]])
def test_help_and_version_import_nothing_heavy(args: list[str]) -> None:
    assert _loaded_by("sophia", *args) == []
