"""Suite-wide fixtures: a fresh SOPHIA_HOME per test, anyio on asyncio."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["fixtures.postgres"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def sophia_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own state directory, so no test sees another's audit log or tokens."""
    home = tmp_path / "sophia-home"
    home.mkdir()
    monkeypatch.setenv("SOPHIA_HOME", str(home))
    # Tests drive confirmations as CI does, by token (the CI setting); tests of the default, pending
    # approvals decided out of band, ask for it with the `approval_mode` fixture.
    monkeypatch.setenv("SOPHIA_CONFIRM_MODE", "token")
    yield home


@pytest.fixture
def approval_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default confirmation of destructive calls for clients without elicitation: pending approvals."""
    monkeypatch.setenv("SOPHIA_CONFIRM_MODE", "approval")


@pytest.fixture
def list_every_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    """For tests about a server's whole catalogue: tools/list shows every tool, whatever the caller's
    role and the server's configuration (role- and configuration-filtered listing has its own tests)."""
    monkeypatch.setenv("SOPHIA_LIST_ALL_TOOLS", "1")
