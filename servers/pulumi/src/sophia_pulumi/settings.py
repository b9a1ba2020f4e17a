"""Settings of the Pulumi server (env prefix SOPHIA_PULUMI_, section [pulumi] in sophia.toml)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from sophia_shared.settings import ServerSettings, settings_config


class PulumiSettings(ServerSettings):
    """Where the CLI, the projects and the state live, and the secrets the CLI needs."""

    model_config = settings_config("pulumi")

    cli: Path | None = Field(
        default=None,
        description="Path to the pulumi binary (inside a bin/ directory); default: `pulumi` on PATH.",
    )
    backend_url: str | None = Field(
        default=None,
        description="Any backend URL the CLI accepts; default: PULUMI_BACKEND_URL, else your `pulumi login` "
        "(credentials.json `current`), else a demo file backend under $SOPHIA_HOME.",
    )
    projects_dir: Path | None = Field(
        default=None,
        description="Directory holding one Pulumi project per sub-directory; default $SOPHIA_HOME/pulumi/projects.",
    )
    pulumi_home: Path | None = Field(
        default=None, description="PULUMI_HOME for the CLI (plugins, credentials); default: the CLI's own."
    )
    organization: str = Field(
        default="organization",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
        description="Organization part of stack names; file backends always use 'organization'.",
    )
    passphrase: SecretStr | None = Field(
        default=None, description="PULUMI_CONFIG_PASSPHRASE for stacks using the passphrase secrets provider."
    )
    access_token: SecretStr | None = Field(default=None, description="PULUMI_ACCESS_TOKEN for Pulumi Cloud backends.")
    read_via: Literal["auto", "state", "cli"] = Field(
        default="auto",
        description="Read tools: 'state' reads file-backend JSON, 'cli' uses the Automation API, "
        "'auto' reads state for file backends and uses the CLI otherwise.",
    )
