"""The Pulumi tools as values: listed without building a server, and one called directly with a
stand-in client (a fake: test_tools_read.py runs the same tool against real file-backend state)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import cast

import anyio
import pytest
from sophia_pulumi.client import PulumiClient
from sophia_pulumi.models import ConfigEntry
from sophia_pulumi.settings import PulumiSettings
from sophia_pulumi.tools import TOOLS, PulumiDeps, pulumi_destroy, pulumi_get_config
from sophia_shared.roles import Role
from sophia_shared.server import SophiaServer

SNAPSHOTS = Path(__file__).parents[2] / "snapshots" / "pulumi"


def test_the_toolset_lists_every_tool_without_a_server() -> None:
    assert sorted(TOOLS.names) == sorted(p.stem for p in SNAPSHOTS.glob("*.json"))
    assert pulumi_destroy.role is Role.ADMIN and pulumi_destroy.destructive and pulumi_destroy.preview is not None


class FakeStacks:
    """One stack's config with a long value and a secret; the backend a demo file backend."""

    backend_info = SimpleNamespace(demo=True)

    async def config(self, project: str, stack: str) -> tuple[list[ConfigEntry], bool]:
        assert (project, stack) == ("shop", "dev")
        return [ConfigEntry(key="shop:size", value="x" * 5_000, secret=False),
                ConfigEntry(key="shop:token", value=None, secret=True)], True

    def safe_backend(self) -> str:
        return "file://demo"


@pytest.mark.anyio
async def test_get_config_called_directly_caps_long_values() -> None:
    deps = PulumiDeps(settings=PulumiSettings(), client=cast(PulumiClient, FakeStacks()),
                      server=cast(SophiaServer, None))
    with anyio.fail_after(5):
        config = await pulumi_get_config.handler(deps, project="shop", stack="dev")
    size, token = config.entries
    assert isinstance(size.value, str) and len(size.value) < 5_000
    assert token.value is None and token.secret
    assert config.source == "state" and config.demo and config.backend == "file://demo"


