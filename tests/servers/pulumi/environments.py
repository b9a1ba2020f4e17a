"""Test environments of the Pulumi server: a file backend, and a project + stack driven by a CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml  # type: ignore[import-untyped]
from pydantic import SecretStr
from servers.pulumi.state_fixtures import PASSPHRASE
from sophia_pulumi.settings import PulumiSettings

PROGRAM = Path(__file__).parent / "programs" / "app"


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

    def deploy(self) -> None:
        """Bring the stack up directly with the CLI (set-up for tests of what follows an update)."""
        self.run_cli("up", "--yes", "--skip-preview", "--stack", "organization/app/dev")

    def run_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the CLI directly (fixture set-up and out-of-band changes, never the server's path)."""
        return subprocess.run(
            [str(self.cli), "--non-interactive", *args],
            cwd=self.backend.projects / "app",
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )


def make_change_env(kind: str, cli: Path, base: Path, key_cache: Path) -> ChangeEnv:
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
        "STANDIN_KEY_CACHE": str(key_cache),
        "STANDIN_SALT": "sophia-2",
    }
    change = ChangeEnv(
        kind=kind,
        cli=cli,
        backend=backend,
        env=env,
        settings=PulumiSettings(
            cli=cli,
            backend_url=backend.url,
            projects_dir=backend.projects,
            pulumi_home=pulumi_home,
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


def copy_change_env(template: ChangeEnv, base: Path) -> ChangeEnv:
    """A private copy of an initialised template (state, project, PULUMI_HOME): no CLI calls."""
    shutil.copytree(template.backend.root.parent, base, dirs_exist_ok=True)
    old, new = str(template.backend.root.parent), str(base)
    backend = Backend(base / "state", base / "projects")
    env = {k: v.replace(old, new) for k, v in template.env.items()}
    settings = template.settings.model_copy(
        update={"backend_url": backend.url, "projects_dir": backend.projects, "pulumi_home": base / "pulumi-home"}
    )
    return ChangeEnv(kind=template.kind, cli=template.cli, backend=backend, settings=settings, env=env)
