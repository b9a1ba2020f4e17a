"""Suite-wide fixtures: a fresh SOPHIA_HOME per test (one shared model cache), anyio on asyncio."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["fixtures.postgres"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `local_llm` go last: `make test` builds their server in the background meanwhile."""
    items.sort(key=lambda item: item.get_closest_marker("local_llm") is not None)  # stable: order kept otherwise


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def shared_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's one ONNX model cache (`models_dir` builds the default model into it).

    Built graphs are keyed by the weights' hash, so sharing the cache changes nothing a test sees; without
    it every test whose memory server or host embeds rebuilt the graph in its fresh home (~10 s of CPU each).
    """
    path = tmp_path_factory.getbasetemp() / "memory-models"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def models_dir(shared_models_dir: Path) -> Path:
    """The shared model cache with the default local model built in it, outside any test's time bound."""
    from sophia_shared.memory.embeddings import local_embedder

    local_embedder(shared_models_dir).load()
    return shared_models_dir


@pytest.fixture(autouse=True)
def sophia_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_models_dir: Path) -> Iterator[Path]:
    """Every test gets its own state directory, so no test sees another's audit log or tokens."""
    home = tmp_path / "sophia-home"
    home.mkdir()
    monkeypatch.setenv("SOPHIA_HOME", str(home))
    # Tests drive confirmations as CI does, by token (the CI setting); tests of the default, pending
    # approvals decided out of band, ask for it with the `approval_mode` fixture.
    monkeypatch.setenv("SOPHIA_CONFIRM_MODE", "token")
    monkeypatch.setenv("SOPHIA_MEMORY_MODELS_DIR", str(shared_models_dir))
    # The servers use what the user already has (Snowflake connections, the docker context, the Pulumi
    # login): a test sees only what it lays out itself, never the machine's own.
    user_files = tmp_path / "user-files"
    monkeypatch.setenv("SNOWFLAKE_HOME", str(user_files / "snowflake"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(user_files / "config"))
    monkeypatch.setenv("DOCKER_CONFIG", str(user_files / "docker"))
    monkeypatch.setenv("PULUMI_HOME", str(user_files / "pulumi"))
    for name in ("SNOWFLAKE_DEFAULT_CONNECTION_NAME", "DOCKER_CONTEXT", "PULUMI_BACKEND_URL"):
        monkeypatch.delenv(name, raising=False)
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
