"""Which Pulumi backend the server reads and changes: the user's own, else a labelled demo.

The Pulumi CLI's order: an explicit backend (here SOPHIA_PULUMI_BACKEND_URL), else PULUMI_BACKEND_URL,
else the `current` backend of the user's login, `$PULUMI_HOME/credentials.json` (default
`~/.pulumi`), written by `pulumi login`. Only when there is none does the server fall back to a demo
file backend under SOPHIA_HOME, seeded with one small stack and labelled as demo in every answer.
A file:// backend is read directly (state.py); any other (Pulumi Cloud, s3://, azblob://, gs://)
goes through the CLI, which finds the login's access token in the same credentials.json.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sophia_shared.paths import sophia_home
from sophia_shared.redact import redact

from .settings import PulumiSettings

__all__ = ["DEMO_PROJECT", "DEMO_STACK", "Backend", "resolve_backend", "seed_demo"]

DEMO_PROJECT = "demo"
DEMO_STACK = "dev"


@dataclass(frozen=True)
class Backend:
    """A backend URL, where that choice came from, and whether it is the demo."""

    url: str
    origin: str
    demo: bool = False

    @property
    def label(self) -> str:
        """For answers and errors: the URL (credentials redacted) and its origin."""
        return f"{redact(self.url)} ({self.origin})"


def pulumi_home(settings: PulumiSettings) -> Path:
    if settings.pulumi_home is not None:
        return settings.pulumi_home
    return Path(os.environ.get("PULUMI_HOME") or Path.home() / ".pulumi")


def resolve_backend(settings: PulumiSettings) -> Backend:
    if settings.backend_url:
        return Backend(settings.backend_url, "SOPHIA_PULUMI_BACKEND_URL")
    if os.environ.get("PULUMI_BACKEND_URL"):
        return Backend(os.environ["PULUMI_BACKEND_URL"], "PULUMI_BACKEND_URL")
    credentials = pulumi_home(settings) / "credentials.json"
    current = _current_login(credentials)
    if current:
        return Backend(current, f"current Pulumi login, {credentials}")
    demo = (sophia_home() / "pulumi" / "state").as_uri()
    return Backend(demo, "demo: no Pulumi backend or login found; run `pulumi login` or set PULUMI_BACKEND_URL",
                   demo=True)


def _current_login(credentials: Path) -> str | None:
    try:
        data = json.loads(credentials.read_text())
    except (OSError, ValueError):
        return None
    current = data.get("current") if isinstance(data, dict) else None
    return current if isinstance(current, str) and current else None


def seed_demo(root: Path) -> None:
    """Write the demo stack (checkpoint v3, as the CLI lays it out) unless the demo backend has stacks."""
    stacks = root / ".pulumi" / "stacks"
    if stacks.is_dir() and any(stacks.rglob("*.json")):
        return
    target = stacks / DEMO_PROJECT / f"{DEMO_STACK}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    (root / ".pulumi" / "meta.yaml").write_text("version: 1\n")
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(_demo_checkpoint(), indent=4))
    tmp.replace(target)


def _demo_checkpoint() -> dict[str, Any]:
    stack_urn = f"urn:pulumi:{DEMO_STACK}::{DEMO_PROJECT}::pulumi:pulumi:Stack::{DEMO_PROJECT}-{DEMO_STACK}"
    provider = f"urn:pulumi:{DEMO_STACK}::{DEMO_PROJECT}::pulumi:providers:random::default"

    def resource(rtype: str, name: str, outputs: dict[str, Any]) -> dict[str, Any]:
        return {"urn": f"urn:pulumi:{DEMO_STACK}::{DEMO_PROJECT}::{rtype}::{name}", "custom": True, "id": name,
                "type": rtype, "outputs": outputs, "parent": stack_urn, "provider": f"{provider}::demo-provider"}

    return {
        "version": 3,
        "checkpoint": {
            "stack": f"organization/{DEMO_PROJECT}/{DEMO_STACK}",
            "latest": {
                "manifest": {"time": "2026-01-01T00:00:00Z", "magic": "", "version": "demo"},
                "resources": [
                    {"urn": stack_urn, "custom": False, "type": "pulumi:pulumi:Stack",
                     "outputs": {"bucketName": "demo-bucket-1a2b", "note": "demo stack: not your infrastructure"}},
                    {"urn": provider, "custom": True, "id": "demo-provider", "type": "pulumi:providers:random",
                     "outputs": {}},
                    resource("random:index/randomPet:RandomPet", "bucket-suffix", {"id": "1a2b"}),
                    resource("random:index/randomPassword:RandomPassword", "db-password", {"length": 24}),
                ],
            },
        },
    }
