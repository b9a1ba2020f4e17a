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

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]
from pydantic import SecretStr
from sophia_pulumi.settings import PulumiSettings

from tests.servers.pulumi.state_fixtures import PASSPHRASE, write_read_fixture

HERE = Path(__file__).parent
STANDIN = HERE / "standin"
PROGRAM = HERE / "programs" / "app"
REAL_CLI_MISSING = (
    "REAL PULUMI CLI NOT ON PATH: this variant runs only where `pulumi` is installed; "
    "here the same test ran against the stand-in CLI only"
)


@dataclass(frozen=True)
class Backend:
    root: Path
    projects: Path

    @property
    def url(self) -> str:
        return self.root.as_uri()


@dataclass(frozen=True)
class ChangeEnv:
    kind: str  # "standin-cli" | "real-cli"
    cli: Path
    backend: Backend
    settings: PulumiSettings
    env: dict[str, str]

    def run_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the CLI directly (fixture set-up and out-of-band changes, never the server's path)."""
        return subprocess.run(
            [str(self.cli), "--non-interactive", *args], cwd=self.backend.projects / "app",
            env={**os.environ, **self.env}, capture_output=True, text=True, timeout=120, check=True,
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
    bin_dir = tmp_path_factory.mktemp("standin-cli") / "bin"
    bin_dir.mkdir()
    script = bin_dir / "pulumi"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(STANDIN)!r})\n"
        "from pulumi_standin import main\n"
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


def make_change_env(kind: str, cli: Path, base: Path) -> ChangeEnv:
    backend = Backend(base / "state", base / "projects")
    backend.root.mkdir(parents=True)
    project = backend.projects / "app"
    shutil.copytree(PROGRAM, project)
    runtime = {"name": "python", "options": {"virtualenv": sys.prefix}}
    (project / "Pulumi.yaml").write_text(yaml.safe_dump({"name": "app", "runtime": runtime}))
    pulumi_home = base / "pulumi-home"
    pulumi_home.mkdir()
    env = {
        "PULUMI_BACKEND_URL": backend.url,
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_HOME": str(pulumi_home),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }
    change = ChangeEnv(
        kind=kind, cli=cli, backend=backend, env=env,
        settings=PulumiSettings(
            cli=cli, backend_url=backend.url, projects_dir=backend.projects, pulumi_home=pulumi_home,
            passphrase=SecretStr(PASSPHRASE),
        ),
    )
    change.run_cli("stack", "init", "organization/app/dev", "--secrets-provider", "passphrase")
    stack = ["--stack", "organization/app/dev"]
    change.run_cli("config", "set", "apiKey", "--secret", *stack, "--", "key-123")
    change.run_cli("config", "set", "replicas", "--plaintext", *stack, "--", "2")
    if kind == "real-cli":
        change.run_cli("config", "set", "customResources", "--plaintext", *stack, "--", "false")
    return change


@pytest.fixture
def change_env(cli_kind: str, standin_cli: Path, tmp_path: Path) -> Iterator[ChangeEnv]:
    cli = standin_cli if cli_kind == "standin-cli" else Path(str(shutil.which("pulumi")))
    yield make_change_env(cli_kind, cli, tmp_path)


@pytest.fixture
def standin_env(standin_cli: Path, tmp_path: Path) -> ChangeEnv:
    """The change environment on the stand-in CLI only (tests of stand-in-only hooks)."""
    return make_change_env("standin-cli", standin_cli, tmp_path)
