"""Real-system fixtures of the Pulumi server's tests.

- `read_backend`: a real file backend (checkpoint v3, history, passphrase secrets) with several
  stacks and hundreds of resources, read with NO CLI at all.
- `standin_cli`: a STAND-IN `pulumi` executable (standin/pulumi_standin.py) answering the commands
  the Automation API issues; no real Pulumi CLI can be installed on our machines.
- `change_env`: a project with a real Python Pulumi program and an initialised stack, driven by
  either the stand-in CLI or — when `pulumi` is on PATH — the real CLI (otherwise that variant is
  skipped with a loud reason).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from servers.pulumi.environments import Backend, ChangeEnv, copy_change_env, make_change_env
from servers.pulumi.state_fixtures import PASSPHRASE, write_read_fixture
from sophia_pulumi.settings import PulumiSettings

HERE = Path(__file__).parent
TESTS = HERE.parent.parent
REAL_CLI_MISSING = (
    "REAL PULUMI CLI NOT ON PATH: this variant runs only where `pulumi` is installed; "
    "here the same test ran against the stand-in CLI only"
)


@pytest.fixture(scope="session")
def read_backend(tmp_path_factory: pytest.TempPathFactory) -> Backend:
    base = tmp_path_factory.mktemp("pulumi-read")
    backend = Backend(base / "state", base / "projects")
    write_read_fixture(backend.root, backend.projects)
    return backend


@pytest.fixture
def no_cli_settings(read_backend: Backend, tmp_path: Path) -> PulumiSettings:
    """Settings over the read fixture with a CLI path that does not exist: the no-CLI path."""
    return PulumiSettings(
        cli=tmp_path / "absent" / "bin" / "pulumi",
        backend_url=read_backend.url,
        projects_dir=read_backend.projects,
        passphrase=SecretStr(PASSPHRASE),
    )


@pytest.fixture(scope="session")
def standin_cli(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("standin-cli")
    bin_dir = base / "bin"
    bin_dir.mkdir()
    script = bin_dir / "pulumi"
    # Machines here set PYTHONDONTWRITEBYTECODE, so every stand-in process would recompile the
    # Pulumi SDK (~2 s); a session-private bytecode cache (outside the venv) avoids that.
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "sys.dont_write_bytecode = False\n"
        f"sys.pycache_prefix = {str(base / 'pycache')!r}\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "from servers.pulumi.standin.pulumi_standin import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    script.chmod(0o755)
    return script


@pytest.fixture(params=["standin-cli", "real-cli"])
def cli_kind(request: pytest.FixtureRequest) -> str:
    kind = str(request.param)
    if kind == "real-cli" and shutil.which("pulumi") is None:
        pytest.skip(REAL_CLI_MISSING)
    return kind


@pytest.fixture(scope="session")
def key_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("standin-keys")


@pytest.fixture(scope="session")
def change_templates(
    standin_cli: Path, tmp_path_factory: pytest.TempPathFactory, key_cache: Path
) -> Callable[[str], ChangeEnv]:
    """One initialised stack per CLI kind per session; tests get copies."""
    made: dict[str, ChangeEnv] = {}

    def template(kind: str) -> ChangeEnv:
        if kind not in made:
            cli = standin_cli if kind == "standin-cli" else Path(str(shutil.which("pulumi")))
            made[kind] = make_change_env(kind, cli, tmp_path_factory.mktemp(f"template-{kind}"), key_cache)
        return made[kind]

    return template


@pytest.fixture
def change_env(
    cli_kind: str,
    change_templates: Callable[[str], ChangeEnv],
    tmp_path: Path,
    key_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[ChangeEnv]:
    # The server's CLI processes inherit this process's environment, as in a real deployment.
    monkeypatch.setenv("STANDIN_KEY_CACHE", str(key_cache))
    yield copy_change_env(change_templates(cli_kind), tmp_path / "env")


@pytest.fixture
def standin_env(
    change_templates: Callable[[str], ChangeEnv], tmp_path: Path, key_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> ChangeEnv:
    """The change environment on the stand-in CLI only (tests of stand-in-only hooks)."""
    monkeypatch.setenv("STANDIN_KEY_CACHE", str(key_cache))
    return copy_change_env(change_templates("standin-cli"), tmp_path / "env")
