"""The Retool tools as values: listed without building a server, and one called directly with a
stand-in client (a fake: test_tools.py runs the same tools against the local contract server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import anyio
import pytest
from sophia_retool.client import RetoolClient
from sophia_retool.settings import RetoolSettings
from sophia_retool.tools import TOOLS, RetoolDeps, retool_list_environments, retool_trigger_workflow
from sophia_shared.roles import Role

SNAPSHOTS = Path(__file__).parents[2] / "snapshots" / "retool"


def test_the_toolset_lists_every_tool_without_a_server() -> None:
    assert sorted(TOOLS.names) == sorted(p.stem for p in SNAPSHOTS.glob("*.json"))
    assert retool_trigger_workflow.confirm and retool_trigger_workflow.preview is not None
    assert {t.role for t in TOOLS} <= {Role.VIEWER, Role.DEVELOPER, Role.DEVOPS, Role.ADMIN}


class FakeRetool:
    """Three environments as Retool's API lists them, one with an unknown extra field."""

    async def list_environments(self) -> list[dict[str, Any]]:
        return [{"id": "e1", "name": "production", "default": True, "junk": 1},
                {"id": "e2", "name": "staging", "color": "#fff"},
                {"id": "e3", "name": "dev", "description": "x" * 5_000}]


@pytest.mark.anyio
async def test_list_environments_called_directly_with_a_fake_client() -> None:
    deps = RetoolDeps(settings=RetoolSettings(), client=cast(RetoolClient, FakeRetool()))
    with anyio.fail_after(5):
        listed = await retool_list_environments.handler(deps)
    assert [e.name for e in listed.environments] == ["production", "staging", "dev"]
    assert listed.environments[0].default is True and listed.environments[1].color == "#fff"
    assert len(listed.environments[2].description or "") < 5_000
