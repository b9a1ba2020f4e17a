"""The Docker tools as values: listed without building a server, and one called directly with a
stand-in client (a fake: the other tests here run the same tools against a real dockerd)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import anyio
import pytest
from sophia_docker.client import DockerClient
from sophia_docker.settings import DockerSettings
from sophia_docker.tools import TOOLS, DockerDeps, docker_list_volumes, docker_run_container, run_request
from sophia_shared.roles import Role

SNAPSHOTS = Path(__file__).parents[2] / "snapshots" / "docker"


def test_the_toolset_lists_every_tool_without_a_server() -> None:
    assert sorted(TOOLS.names) == sorted(p.stem for p in SNAPSHOTS.glob("*.json"))
    assert docker_run_container.role is Role.DEVELOPER and docker_run_container.confirm
    assert not docker_run_container.destructive and docker_run_container.preview is not None


def test_the_run_policy_reads_only_its_own_arguments() -> None:
    request = run_request(image="busybox", command=["true"], privileged=True, cap_add=["NET_ADMIN"], labels=None)
    assert request.privileged is True and request.cap_add == ("NET_ADMIN",) and request.labels == {}


class FakeEngine:
    """Three volumes, out of order; answers what it was asked to filter by."""

    engine = "fake engine"

    def __init__(self) -> None:
        self.filters: list[Any] = []

    async def list_volumes(self, filters: Any) -> list[dict[str, Any]]:
        self.filters.append(filters)
        return [{"Name": n, "Driver": "local", "Labels": None} for n in ("c", "a", "b")]


@pytest.mark.anyio
async def test_list_volumes_called_directly_pages_by_name() -> None:
    engine = FakeEngine()
    deps = DockerDeps(settings=DockerSettings(), client=cast(DockerClient, engine))
    with anyio.fail_after(5):
        first = await docker_list_volumes.handler(deps, filters=None, limit=2, cursor=None)
        rest = await docker_list_volumes.handler(deps, filters=None, limit=2, cursor=first.next_cursor)
    assert [v.name for v in first.volumes] == ["a", "b"] and first.truncated and first.total == 3
    assert [v.name for v in rest.volumes] == ["c"] and not rest.truncated
    assert first.engine == "fake engine" and len(engine.filters) == 2
