"""Real-system fixtures for the Docker server: a private dockerd, a local registry, local images.

Set SOPHIA_REQUIRE_DOCKER=1 (CI does, through the Makefile's test-deps) to make a dockerd that
cannot start a failure instead of a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any, NoReturn

import pytest
from servers.docker.engine import (
    TEST_IMAGE,
    Engine,
    EngineUnavailable,
    Registry,
    import_image,
    make_tls_files,
    push_to_registry,
    start_engine,
    start_registry,
)
from sophia_docker.settings import DockerSettings


def _unavailable(reason: str) -> NoReturn:
    message = f"REAL DOCKERD UNAVAILABLE, Docker integration tests not run: {reason}"
    if os.environ.get("SOPHIA_REQUIRE_DOCKER") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A private dockerd for the whole session (Unix socket, and TCP with TLS), stopped by PID at the end."""
    data = tmp_path_factory.mktemp("dockerd")
    try:
        engine = start_engine(data, tls=make_tls_files(data / "tls"))
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
        # Its own layer (a unique file), so pulling it really downloads and extracts.
        local = "sophia-test/pullme-src:1"
        import_image(docker_api, local, extra={"pulled.txt": uuid.uuid4().hex.encode()})
        remote = f"{registry.address}/sophia-test/pullme:1"
        push_to_registry(docker_api, local, remote)
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
    return DockerSettings(host=docker_engine.url, allowed_bind_paths=[str(bind_root)], timeout_s=30)


@pytest.fixture
def unique() -> str:
    """A short unique suffix for names of containers, volumes and networks a test creates."""
    return uuid.uuid4().hex[:10]


def _start_sleeper(api: Any, image: str, name: str) -> str:
    created = api.create_container(
        image,
        ["sleep", "3600"],
        name=name,
        labels={"test": "sleeper"},
        host_config=api.create_host_config(network_mode="none"),
        stop_signal="SIGKILL",
    )
    api.start(created["Id"])
    return str(created["Id"])


def _remove(api: Any, container: str) -> None:
    import docker.errors

    with suppress(docker.errors.NotFound):
        api.remove_container(container, force=True)


@pytest.fixture
def sleeper(docker_api: Any, busybox_image: str, unique: str) -> Iterator[str]:
    """A running container of this test's own (it may stop or remove it); yields its name."""
    name = f"sleeper-{unique}"
    container = _start_sleeper(docker_api, busybox_image, name)
    yield name
    _remove(docker_api, container)


@pytest.fixture(scope="session")
def shared_sleeper(docker_api: Any, busybox_image: str) -> Iterator[str]:
    """A running container shared by tests that only read it; yields its name."""
    name = f"shared-sleeper-{uuid.uuid4().hex[:8]}"
    container = _start_sleeper(docker_api, busybox_image, name)
    yield name
    _remove(docker_api, container)


class ContainerFactory:
    """Makes containers with the bare SDK (not through the server) and removes them afterwards."""

    def __init__(self, api: Any, image: str) -> None:
        self.api = api
        self.image = image
        self.created: list[str] = []

    def __call__(
        self, command: list[str], *, wait: bool = True, tty: bool = False, labels: dict[str, str] | None = None
    ) -> str:
        name = f"t-{uuid.uuid4().hex[:12]}"
        created = self.api.create_container(
            self.image,
            command,
            name=name,
            tty=tty,
            labels=labels or {},
            host_config=self.api.create_host_config(network_mode="none"),
            stop_signal="SIGKILL",
        )
        self.created.append(created["Id"])
        self.api.start(created["Id"])
        if wait:
            # The SDK's own timeout bounds this wait.
            self.api.wait(created["Id"], timeout=60)
        return name

    def cleanup(self) -> None:
        for container in self.created:
            _remove(self.api, container)


@pytest.fixture
def make_container(docker_api: Any, busybox_image: str) -> Iterator[ContainerFactory]:
    """Factory of containers made behind the server's back; all force-removed after the test."""
    factory = ContainerFactory(docker_api, busybox_image)
    yield factory
    factory.cleanup()
