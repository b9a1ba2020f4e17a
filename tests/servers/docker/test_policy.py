"""The run policy on its own: every rule, the setting it names, and path resolution on the real filesystem."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from sophia_docker.policy import (
    LABEL_CREATED_BY,
    LABEL_PRINCIPAL,
    MountSpec,
    RunRequest,
    check_bind_source,
    check_exec,
    check_image,
    check_run,
    normalized_image_names,
    sophia_labels,
)
from sophia_docker.settings import DockerSettings
from sophia_shared.errors import Forbidden, InvalidArgument


def settings(tmp_path: Path, **overrides: object) -> DockerSettings:
    values: dict[str, object] = {"host": f"unix://{tmp_path}/engine.sock", "allowed_bind_paths": [str(tmp_path)]}
    values.update(overrides)
    return DockerSettings(**values)  # type: ignore[arg-type]


def refusal(exc: pytest.ExceptionInfo[Forbidden]) -> tuple[str, str | None]:
    return exc.value.data["rule"], exc.value.data["setting"]


@pytest.mark.parametrize(
    ("request_", "rule"),
    [
        (RunRequest(privileged=True), "no_privileged"),
        (RunRequest(cap_add=("SYS_ADMIN",)), "no_cap_add"),
        (RunRequest(devices=("/dev/sda",)), "no_devices"),
        (RunRequest(network="host"), "no_host_namespaces"),
        (RunRequest(pid_mode="host"), "no_host_namespaces"),
        (RunRequest(ipc_mode="host"), "no_host_namespaces"),
    ],
)
def test_fixed_rules_refuse_and_say_no_setting_relaxes_them(tmp_path: Path, request_: RunRequest, rule: str) -> None:
    with pytest.raises(Forbidden) as exc:
        check_run(request_, settings(tmp_path))
    assert refusal(exc) == (rule, None)
    assert rule in exc.value.message
    assert "no setting relaxes it" in exc.value.message


def test_defaults_applied_when_no_limits_requested(tmp_path: Path) -> None:
    limits, mounts = check_run(
        RunRequest(),
        settings(tmp_path, default_memory_mb=128, default_cpus=0.5, default_pids_limit=64),
    )
    assert (limits.memory_mb, limits.cpus, limits.pids_limit) == (128, 0.5, 64)
    assert mounts == ()


def test_requested_limits_above_maximum_are_refused_naming_the_setting(tmp_path: Path) -> None:
    config = settings(tmp_path, max_memory_mb=1024, max_cpus=1.0, max_pids_limit=100)
    for request_, setting in [
        (RunRequest(memory_mb=2048), "SOPHIA_DOCKER_MAX_MEMORY_MB"),
        (RunRequest(cpus=1.5), "SOPHIA_DOCKER_MAX_CPUS"),
        (RunRequest(pids_limit=101), "SOPHIA_DOCKER_MAX_PIDS_LIMIT"),
    ]:
        with pytest.raises(Forbidden) as exc:
            check_run(request_, config)
        assert refusal(exc) == ("resource_limits", setting)
    limits, _ = check_run(RunRequest(memory_mb=1024, cpus=1.0, pids_limit=100), config)
    assert (limits.memory_mb, limits.cpus, limits.pids_limit) == (1024, 1.0, 100)


def test_bind_inside_allow_list_is_resolved(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    assert check_bind_source(str(data), settings(tmp_path)) == str(data)


def test_bind_outside_allow_list_names_the_setting(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    with pytest.raises(Forbidden) as exc:
        check_bind_source("/etc", settings(tmp_path, allowed_bind_paths=[str(allowed)]))
    assert refusal(exc) == ("bind_allow_list", "SOPHIA_DOCKER_ALLOWED_BIND_PATHS")


def test_bind_allow_list_is_empty_by_default(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    with pytest.raises(Forbidden) as exc:
        check_bind_source(str(tmp_path / "data"), settings(tmp_path, allowed_bind_paths=[]))
    assert refusal(exc) == ("bind_allow_list", "SOPHIA_DOCKER_ALLOWED_BIND_PATHS")
    assert "none allowed" in exc.value.message


def test_symlink_inside_allow_list_cannot_escape_it(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "escape").symlink_to("/etc")
    with pytest.raises(Forbidden) as exc:
        check_bind_source(str(allowed / "escape"), settings(tmp_path, allowed_bind_paths=[str(allowed)]))
    assert refusal(exc)[0] == "bind_allow_list"


def test_dotdot_cannot_escape_allow_list(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    sneaky = f"{allowed}/../../../etc"
    with pytest.raises(Forbidden):
        check_bind_source(sneaky, settings(tmp_path, allowed_bind_paths=[str(allowed)]))


def test_prefix_sibling_is_not_inside_allow_list(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data-secret").mkdir()
    with pytest.raises(Forbidden):
        check_bind_source(
            str(tmp_path / "data-secret"), settings(tmp_path, allowed_bind_paths=[str(tmp_path / "data")])
        )


def test_engine_socket_refused_even_inside_allow_list(tmp_path: Path) -> None:
    """A real Unix socket at the configured engine address, inside an allowed directory."""
    path = tmp_path / "engine.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    try:
        config = settings(tmp_path)
        for source in (str(path), str(tmp_path)):
            with pytest.raises(Forbidden) as exc:
                check_bind_source(source, config)
            assert refusal(exc) == ("no_engine_socket", None)
    finally:
        listener.close()


def test_any_docker_sock_name_and_its_parents_are_refused(tmp_path: Path) -> None:
    config = settings(tmp_path, allowed_bind_paths=["/"])
    for source in ("/var/run/docker.sock", "/var/run", "/run", "/", str(tmp_path / "x" / "docker.sock")):
        with pytest.raises(Forbidden) as exc:
            check_bind_source(source, config)
        assert refusal(exc)[0] == "no_engine_socket", source


def test_relative_bind_source_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        check_bind_source("data", settings(tmp_path))


@pytest.mark.parametrize(
    "mount",
    [
        MountSpec(type="tmpfs", source="x", target="/t"),
        MountSpec(type="volume", target="/t"),
        MountSpec(type="volume", source="/etc", target="/t"),
        MountSpec(type="volume", source="v", target="relative"),
    ],
)
def test_malformed_mounts_are_invalid(tmp_path: Path, mount: MountSpec) -> None:
    with pytest.raises(InvalidArgument):
        check_run(RunRequest(mounts=(mount,)), settings(tmp_path))


def test_bind_mount_in_run_request_is_checked(tmp_path: Path) -> None:
    with pytest.raises(Forbidden) as exc:
        check_run(
            RunRequest(mounts=(MountSpec(type="bind", source="/etc", target="/h"),)),
            settings(tmp_path),
        )
    assert refusal(exc)[0] == "bind_allow_list"


def test_reserved_labels_are_invalid(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        check_run(RunRequest(labels={"sophia.principal": "someone-else"}), settings(tmp_path))


def test_image_allow_list(tmp_path: Path) -> None:
    config = settings(tmp_path, allowed_images=["127.0.0.1:5000/*", "docker.io/library/busybox:*"])
    check_image(["busybox"], config)
    check_image(["127.0.0.1:5000/team/app:2"], config)
    check_image(["busybox:1.36", "127.0.0.1:5000/team/app@sha256:" + "0" * 64], config)
    with pytest.raises(Forbidden) as exc:
        check_image(["alpine:3"], config)
    assert refusal(exc) == ("image_allow_list", "SOPHIA_DOCKER_ALLOWED_IMAGES")
    check_image(["anything:at-all"], settings(tmp_path, allowed_images=[]))


def test_image_ids_never_match_a_name_pattern(tmp_path: Path) -> None:
    config = settings(tmp_path, allowed_images=["docker.io/library/*", "*:latest"])
    for image_id in ("sha256:" + "ab" * 32, "abcdef012345"):
        assert normalized_image_names(image_id) == {image_id}
        with pytest.raises(Forbidden):
            check_image([image_id], config)


def test_image_names_normalised_like_the_engine() -> None:
    assert normalized_image_names("busybox") >= {"busybox:latest", "docker.io/library/busybox:latest"}
    assert "docker.io/team/app:1" in normalized_image_names("team/app:1")
    assert normalized_image_names("127.0.0.1:5000/app") == {"127.0.0.1:5000/app", "127.0.0.1:5000/app:latest"}
    assert "localhost/app:latest" in normalized_image_names("localhost/app")


def test_privileged_exec_refused() -> None:
    with pytest.raises(Forbidden):
        check_exec(True)
    check_exec(False)


def test_labels_record_who_asked() -> None:
    labels = sophia_labels("alice", "c0ffee")
    assert labels[LABEL_CREATED_BY] == "sophia-docker"
    assert labels[LABEL_PRINCIPAL] == "alice"
    assert "sophia.correlation-id" in labels
    assert "sophia.correlation-id" not in sophia_labels("bob", None)


def test_allowed_bind_paths_must_be_absolute() -> None:
    with pytest.raises(ValueError, match="absolute"):
        DockerSettings(allowed_bind_paths=["relative/path"])


def test_engine_address_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert DockerSettings().engine_address() == "unix:///var/run/docker.sock"
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.5:2376")
    assert DockerSettings().engine_address() == "tcp://10.0.0.5:2376"
    monkeypatch.setenv("SOPHIA_DOCKER_HOST", "ssh://ops@build-1")
    assert DockerSettings().engine_address() == "ssh://ops@build-1"
    assert os.environ["DOCKER_HOST"] == "tcp://10.0.0.5:2376"
