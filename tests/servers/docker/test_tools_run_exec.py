"""docker_run_container and docker_exec end to end on the real dockerd: every policy refusal, the
limits actually applied inside the container, and both confirmation paths (token, elicitation)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from sophia_docker.settings import DockerSettings
from sophia_docker.tools import build_server
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect, error_code, error_data, structured

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

OPS = Principal("olivia", Role.DEVOPS)
CREATED_BY = "sophia.created-by=sophia-docker"
BIND_SETTING = "SOPHIA_DOCKER_ALLOWED_BIND_PATHS"


@pytest.fixture(autouse=True)
def remove_what_sophia_created(docker_api: Any) -> Iterator[None]:
    """Containers the server created in a test are removed after it (found by Sophia's own label)."""
    yield
    for container in docker_api.containers(all=True, filters={"label": CREATED_BY}):
        docker_api.remove_container(container["Id"], force=True)


def sophia_containers(api: Any) -> list[dict[str, Any]]:
    return list(api.containers(all=True, filters={"label": CREATED_BY}))


@pytest.mark.parametrize(
    ("arguments", "rule", "setting"),
    [
        ({"privileged": True}, "no_privileged", None),
        ({"cap_add": ["NET_ADMIN"]}, "no_cap_add", None),
        ({"devices": ["/dev/fuse"]}, "no_devices", None),
        ({"network": "host"}, "no_host_namespaces", None),
        ({"pid_mode": "host"}, "no_host_namespaces", None),
        ({"ipc_mode": "host"}, "no_host_namespaces", None),
        ({"mounts": [{"type": "bind", "source": "/var/run/docker.sock", "target": "/s"}]}, "no_engine_socket", None),
        ({"mounts": [{"type": "bind", "source": "/etc", "target": "/h"}]}, "bind_allow_list", BIND_SETTING),
        ({"memory_mb": 100_000}, "resource_limits", "SOPHIA_DOCKER_MAX_MEMORY_MB"),
        ({"cpus": 64}, "resource_limits", "SOPHIA_DOCKER_MAX_CPUS"),
        ({"pids_limit": 999_999}, "resource_limits", "SOPHIA_DOCKER_MAX_PIDS_LIMIT"),
    ],
)  # fmt: skip
async def test_run_refusals_name_rule_and_setting_and_create_nothing(
    docker_settings: DockerSettings,
    docker_api: Any,
    busybox_image: str,
    arguments: dict[str, Any],
    rule: str,
    setting: str | None,
) -> None:
    server = build_server(docker_settings)
    with anyio.fail_after(30):
        async with connect(server, principal=OPS, elicitation="accept") as client:
            result = await client.call("docker_run_container", {"image": busybox_image, **arguments})
    assert error_code(result) == "forbidden", result.content
    assert error_data(result) == {"rule": rule, "setting": setting}
    assert rule in result.content[0].text  # type: ignore[union-attr]
    assert sophia_containers(docker_api) == []


async def test_run_refuses_the_engines_own_socket(docker_settings: DockerSettings, busybox_image: str) -> None:
    """The real engine socket this server talks to, even when its directory is allow-listed."""
    assert docker_settings.host is not None
    socket_path = docker_settings.host.removeprefix("unix://")
    server = build_server(docker_settings.model_copy(update={"allowed_bind_paths": [str(Path(socket_path).parent)]}))
    with anyio.fail_after(30):
        async with connect(server, principal=OPS, elicitation="accept") as client:
            for source in (socket_path, str(Path(socket_path).parent)):
                result = await client.call(
                    "docker_run_container",
                    {"image": busybox_image, "mounts": [{"type": "bind", "source": source, "target": "/s"}]},
                )
                assert error_data(result)["rule"] == "no_engine_socket", source


async def test_run_refused_by_image_allow_list(
    docker_settings: DockerSettings, docker_api: Any, busybox_image: str
) -> None:
    image_id = docker_api.inspect_image(busybox_image)["Id"]
    allowed = build_server(docker_settings.model_copy(update={"allowed_images": ["sophia-test/*"]}))
    denied = build_server(docker_settings.model_copy(update={"allowed_images": ["docker.io/library/*"]}))
    with anyio.fail_after(60):
        async with connect(denied, principal=OPS, elicitation="accept") as client:
            by_name = await client.call("docker_run_container", {"image": busybox_image})
            by_id = await client.call("docker_run_container", {"image": image_id})
        async with connect(allowed, principal=OPS, elicitation="accept") as client:
            ok_by_id = await client.call("docker_run_container", {"image": image_id, "command": ["true"]})
    assert (
        error_data(by_name)
        == error_data(by_id)
        == {"rule": "image_allow_list", "setting": "SOPHIA_DOCKER_ALLOWED_IMAGES"}
    )
    assert error_code(ok_by_id) is None, ok_by_id.content


async def test_run_by_token_applies_limits_labels_and_no_new_privileges(
    docker_settings: DockerSettings, docker_api: Any, busybox_image: str, unique: str
) -> None:
    name = f"run-{unique}"
    arguments = {
        "image": busybox_image,
        "name": name,
        "command": ["sh", "-c", "grep NoNewPrivs /proc/self/status; echo password=swordfish; exit 3"],
        "env": {"API_TOKEN": "do-not-show-me"},
        "network": "none",
        "wait_s": 30,
    }
    server = build_server(docker_settings)
    with anyio.fail_after(60):
        async with connect(server, principal=OPS) as client:
            first = await client.call("docker_run_container", arguments)
            assert error_code(first) == "confirmation_required"
            assert sophia_containers(docker_api) == []
            data = error_data(first)
            changed = await client.call(
                "docker_run_container",
                {**arguments, "command": ["true"], "confirmation_token": data["confirmation_token"]},
            )
            second = await client.call("docker_run_container", arguments)
            token = error_data(second)["confirmation_token"]
            done = await client.call("docker_run_container", {**arguments, "confirmation_token": token})
            replay = await client.call("docker_run_container", {**arguments, "confirmation_token": token})
    preview = data["preview"]
    assert "512 MB" in preview["summary"] and "no-new-privileges" in preview["summary"]
    assert "swordfish" not in preview["summary"]
    assert preview["details"]["env_names"] == ["API_TOKEN"] and "do-not-show-me" not in str(data)
    assert error_code(changed) == "confirmation_required" and "changed" in error_data(changed)["refused"]
    assert error_code(replay) == "confirmation_required" and "already used" in error_data(replay)["refused"]
    body = structured(done)
    assert body["name"] == name and body["exit_code"] == 3 and body["state"] == "exited"
    assert "NoNewPrivs:\t1" in (body["logs"] or "")
    assert "swordfish" not in (body["logs"] or "") and "[REDACTED]" in (body["logs"] or "")
    assert body["limits"] == {"memory_mb": 512.0, "cpus": 1.0, "pids_limit": 256}
    assert body["labels"]["sophia.principal"] == "olivia"
    host = docker_api.inspect_container(name)["HostConfig"]
    assert host["Memory"] == 512 * 1024 * 1024 and host["NanoCpus"] == 10**9 and host["PidsLimit"] == 256
    assert host["SecurityOpt"] == ["no-new-privileges:true"] and not host["Privileged"]
    config = docker_api.inspect_container(name)["Config"]
    assert config["Labels"]["sophia.created-by"] == "sophia-docker"
    assert config["Labels"]["sophia.image"] == busybox_image
    assert config["Image"] == docker_api.inspect_image(busybox_image)["Id"]


async def test_run_by_elicitation_with_mounts_and_explicit_limits(
    docker_settings: DockerSettings, docker_api: Any, busybox_image: str, bind_root: Path, unique: str
) -> None:
    (bind_root / "in.txt").write_text("from the host\n")
    volume = f"vol-{unique}"
    server = build_server(docker_settings)
    with anyio.fail_after(60):
        async with connect(server, principal=OPS, elicitation="accept") as client:
            result = await client.call(
                "docker_run_container",
                {
                    "image": busybox_image,
                    "command": ["sh", "-c", "cat /host/in.txt; echo out > /host/out.txt; echo v > /vol/v; ls /scratch"],
                    "mounts": [
                        {"type": "bind", "source": str(bind_root), "target": "/host"},
                        {"type": "volume", "source": volume, "target": "/vol"},
                        {"type": "tmpfs", "target": "/scratch"},
                    ],
                    "memory_mb": 64,
                    "cpus": 0.5,
                    "pids_limit": 32,
                    "read_only_rootfs": True,
                    "labels": {"team": "platform"},
                    "wait_s": 30,
                },
            )
        async with connect(server, principal=OPS, elicitation="decline") as client:
            declined = await client.call("docker_run_container", {"image": busybox_image, "name": f"no-{unique}"})
    body = structured(result)
    assert body["exit_code"] == 0, body
    assert "from the host" in (body["logs"] or "")
    assert (bind_root / "out.txt").read_text() == "out\n"
    assert body["limits"] == {"memory_mb": 64.0, "cpus": 0.5, "pids_limit": 32}
    assert error_code(declined) == "forbidden"
    assert not docker_api.containers(all=True, filters={"name": f"no-{unique}"})
    for container in sophia_containers(docker_api):
        docker_api.remove_container(container["Id"], force=True)
    docker_api.remove_volume(volume)


async def test_run_bad_input(docker_settings: DockerSettings, busybox_image: str, sleeper: str) -> None:
    server = build_server(docker_settings)
    with anyio.fail_after(30):
        async with connect(server, principal=OPS, elicitation="accept") as client:
            missing = await client.call("docker_run_container", {"image": "sophia-test/absent:1"})
            duplicate = await client.call("docker_run_container", {"image": busybox_image, "name": sleeper})
            bad_name = await client.call("docker_run_container", {"image": busybox_image, "name": "no spaces"})
            reserved = await client.call(
                "docker_run_container", {"image": busybox_image, "labels": {"sophia.principal": "x"}}
            )
            relative = await client.call(
                "docker_run_container",
                {"image": busybox_image, "mounts": [{"type": "bind", "source": "rel", "target": "/x"}]},
            )
            tiny = await client.call("docker_run_container", {"image": busybox_image, "memory_mb": 1})
            no_network = await client.call("docker_run_container", {"image": busybox_image, "network": "no-such-net"})
    assert error_code(missing) == "not_found" and "docker_pull_image" in missing.content[0].text  # type: ignore[union-attr]
    assert error_code(duplicate) == "conflict"
    assert error_code(no_network) == "not_found" and "no-such-net" in no_network.content[0].text  # type: ignore[union-attr]
    assert (
        error_code(bad_name) == error_code(reserved) == error_code(relative) == error_code(tiny) == "invalid_argument"
    )


async def test_run_still_running_after_wait(docker_settings: DockerSettings, busybox_image: str) -> None:
    server = build_server(docker_settings)
    with anyio.fail_after(60):
        async with connect(server, principal=OPS, elicitation="accept") as client:
            result = await client.call(
                "docker_run_container",
                {"image": busybox_image, "command": ["sh", "-c", "echo up; sleep 600"], "wait_s": 1},
            )
    body = structured(result)
    assert body["exit_code"] is None and body["state"] == "running" and "up" in (body["logs"] or "")


async def test_exec_by_token_and_elicitation(docker_settings: DockerSettings, sleeper: str) -> None:
    arguments = {
        "container": sleeper,
        "command": ["sh", "-c", 'echo "$GREETING from $(pwd) as $(id -u)"; echo secret_token=abc123456789 >&2; exit 4'],
        "env": {"GREETING": "hello"},
        "working_dir": "/tmp",
        "user": "65534",
    }
    server = build_server(docker_settings)
    with anyio.fail_after(60):
        async with connect(server, principal=OPS) as client:
            first = await client.call("docker_exec", arguments)
            token = error_data(first)["confirmation_token"]
            done = await client.call("docker_exec", {**arguments, "confirmation_token": token})
        async with connect(server, principal=OPS, elicitation="accept") as client:
            again = await client.call("docker_exec", {"container": sleeper, "command": ["true"]})
        async with connect(server, principal=OPS, elicitation="decline") as client:
            declined = await client.call("docker_exec", {"container": sleeper, "command": ["true"]})
    assert error_code(first) == "confirmation_required"
    assert sleeper in error_data(first)["preview"]["summary"]
    body = structured(done)
    assert body["exit_code"] == 4 and not body["timed_out"] and not body["truncated"]
    assert "hello from /tmp as 65534" in body["output"]
    assert "abc123456789" not in body["output"]
    assert structured(again)["exit_code"] == 0
    assert error_code(declined) == "forbidden"


async def test_exec_refusals_and_errors(
    docker_settings: DockerSettings, sleeper: str, docker_api: Any, make_container: Any
) -> None:
    stopped = make_container(["true"])
    server = build_server(docker_settings)
    with anyio.fail_after(60):
        async with connect(server, principal=OPS, elicitation="accept") as client:
            privileged = await client.call(
                "docker_exec", {"container": sleeper, "command": ["true"], "privileged": True}
            )
            not_running = await client.call("docker_exec", {"container": stopped, "command": ["true"]})
            missing = await client.call("docker_exec", {"container": "ghost-container", "command": ["true"]})
            empty = await client.call("docker_exec", {"container": sleeper, "command": []})
            slow = await client.call("docker_exec", {"container": sleeper, "command": ["sleep", "120"], "timeout_s": 1})
    assert error_code(privileged) == "forbidden" and error_data(privileged)["rule"] == "no_privileged"
    assert error_code(not_running) == "conflict"
    assert error_code(missing) == "not_found"
    assert error_code(empty) == "invalid_argument"
    assert structured(slow)["timed_out"] and structured(slow)["exit_code"] is None
