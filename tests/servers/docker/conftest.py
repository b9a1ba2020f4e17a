"""Real-system fixtures for the Docker server: a private dockerd, a local registry, local images.

Set SOPHIA_REQUIRE_DOCKER=1 (CI does, through the Makefile's test-deps) to make a dockerd that
cannot start a failure instead of a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from sophia_docker.settings import DockerSettings

from tests.servers.docker.engine import (
    TEST_IMAGE,
    Engine,
    EngineUnavailable,
    Registry,
    import_image,
    push_to_registry,
    start_engine,
    start_registry,
)


def _unavailable(reason: str) -> NoReturn:
    message = f"REAL DOCKERD UNAVAILABLE, Docker integration tests not run: {reason}"
    if os.environ.get("SOPHIA_REQUIRE_DOCKER") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A private dockerd for the whole session, stopped by PID at the end."""
    try:
        engine = start_engine(tmp_path_factory.mktemp("dockerd"))
    except EngineUnavailable as exc:
        _unavailable(str(exc))
        raise
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def docker_api(docker_engine: Engine) -> Iterator[Any]:
    """The bare SDK client, for arranging and checking state behind the server's back."""
    import docker

    api = docker.APIClient(base_url=docker_engine.url, version="auto", timeout=60)
    yield api
    api.close()


@pytest.fixture(scope="session")
def busybox_image(docker_api: Any) -> str:
    """A local image made with `docker import` from busybox-static; returns its reference."""
    import_image(docker_api, TEST_IMAGE)
    return TEST_IMAGE


@pytest.fixture(scope="session")
def docker_registry(
    tmp_path_factory: pytest.TempPathFactory, docker_api: Any, busybox_image: str
) -> Iterator[tuple[Registry, str]]:
    """Debian's docker-registry on 127.0.0.1 holding the test image; yields it and the image's remote name."""
    try:
        registry = start_registry(tmp_path_factory.mktemp("registry"))
    except EngineUnavailable as exc:
        _unavailable(str(exc))
        raise
    try:
        remote = f"{registry.address}/sophia-test/pullme:1"
        push_to_registry(docker_api, busybox_image, remote)
        yield registry, remote
    finally:
        registry.daemon.stop()


@pytest.fixture
def bind_root(tmp_path: Path) -> Path:
    """A host directory the policy allows bind mounts from."""
    root = tmp_path / "binds"
    root.mkdir()
    return root


@pytest.fixture
def docker_settings(docker_engine: Engine, bind_root: Path) -> DockerSettings:
    """Settings pointing at the private engine, with one allowed bind directory."""
    return DockerSettings(host=docker_engine.url, allowed_bind_paths=[str(bind_root)], timeout_s=60)


@pytest.fixture
def unique() -> str:
    """A short unique suffix for names of containers, volumes and networks a test creates."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def sleeper(docker_api: Any, busybox_image: str, unique: str) -> Iterator[str]:
    """A running container made with the bare SDK; yields its name, force-removed afterwards."""
    name = f"sleeper-{unique}"
    created = docker_api.create_container(
        busybox_image,
        ["sleep", "600"],
        name=name,
        labels={"test": "sleeper"},
        host_config=docker_api.create_host_config(network_mode="none"),
        stop_signal="SIGKILL",
    )
    docker_api.start(created["Id"])
    yield name
    docker_api.remove_container(created["Id"], force=True)
