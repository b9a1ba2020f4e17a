"""Read, lifecycle, image, volume, network and engine tools end to end: MCP client → server → real dockerd."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.types import CallToolResult
from servers.docker.conftest import ContainerFactory
from servers.docker.engine import Registry
from sophia_docker.settings import DockerSettings
from sophia_docker.tools import build_server, check, parse_time
from sophia_shared.errors import InvalidArgument, Unavailable
from sophia_shared.server import Principal, Role
from sophia_shared.testing import SophiaTestClient, connect, error_code, error_data, structured

# list_every_tool: these tests are about the whole catalogue, not about who may see which tool.
pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.usefixtures("list_every_tool")]

OPS = Principal("olivia", Role.DEVOPS)
VIEWER = Principal("vera", Role.VIEWER)
ALL_TOOLS = {
    "docker_list_containers", "docker_inspect_container", "docker_container_logs", "docker_container_stats",
    "docker_start_container", "docker_stop_container", "docker_restart_container", "docker_remove_container",
    "docker_run_container", "docker_exec", "docker_list_images", "docker_inspect_image", "docker_pull_image",
    "docker_remove_image", "docker_list_volumes", "docker_create_volume", "docker_remove_volume",
    "docker_list_networks", "docker_create_network", "docker_remove_network", "docker_system_info",
}  # fmt: skip


def text_of(result: CallToolResult) -> str:
    return json.dumps(result.structured_content) + " ".join(getattr(c, "text", "") for c in result.content)


async def confirmed(client: SophiaTestClient, tool: str, args: dict[str, Any]) -> tuple[dict[str, Any], CallToolResult]:
    """Call a confirmed tool by the token path: first answer is confirmation_required, the repeat runs."""
    first = await client.call(tool, args)
    assert error_code(first) == "confirmation_required", first.content
    data = error_data(first)
    done = await client.call(tool, {**args, "confirmation_token": data["confirmation_token"]})
    return data["preview"], done


# -- the catalogue ----------------------------------------------------------------------------


async def test_every_tool_declares_role_and_all_annotations(docker_settings: DockerSettings) -> None:
    server = build_server(docker_settings)
    with anyio.fail_after(10):
        async with connect(server) as client:
            tools = await client.list_tools()
    assert {t.name for t in tools} == ALL_TOOLS
    for tool in tools:
        hints = tool.annotations
        assert hints is not None, tool.name
        for hint in (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint, hints.open_world_hint):
            assert hint is not None, tool.name
        assert tool.meta is not None and tool.meta["sophia"]["role"] in {"viewer", "developer", "devops"}
        assert tool.description and tool.output_schema, tool.name
    confirmed_tools = {t.name for t in tools if t.meta and t.meta["sophia"].get("confirm")}
    assert confirmed_tools == {
        "docker_remove_container", "docker_run_container", "docker_exec", "docker_remove_image",
        "docker_remove_volume", "docker_remove_network",
    }  # fmt: skip


async def test_read_only_mode_hides_every_mutating_tool(docker_settings: DockerSettings) -> None:
    server = build_server(docker_settings.model_copy(update={"read_only": True}))
    with anyio.fail_after(10):
        async with connect(server) as client:
            names = {t.name for t in await client.list_tools()}
            refused = await client.call("docker_start_container", {"container": "x"})
    assert names == {
        "docker_list_containers", "docker_inspect_container", "docker_container_logs", "docker_container_stats",
        "docker_list_images", "docker_inspect_image", "docker_list_volumes", "docker_list_networks",
        "docker_system_info",
    }  # fmt: skip
    assert error_code(refused) == "forbidden"


async def test_viewer_cannot_run_or_read_logs(docker_settings: DockerSettings, busybox_image: str) -> None:
    server = build_server(docker_settings)
    with anyio.fail_after(10):
        async with connect(server, principal=VIEWER) as client:
            run = await client.call("docker_run_container", {"image": busybox_image})
            logs = await client.call("docker_container_logs", {"container": "x"})
            listed = await client.call("docker_list_containers", {})
    assert error_code(run) == error_code(logs) == "forbidden"
    assert error_code(listed) is None


# -- containers: read -------------------------------------------------------------------------


async def test_list_containers_filters_and_pages(
    docker_settings: DockerSettings, make_container: ContainerFactory, unique: str
) -> None:
    for _ in range(3):
        make_container(["true"], labels={"suite": unique})
    server = build_server(docker_settings)
    with anyio.fail_after(30):
        async with connect(server, principal=VIEWER) as client:
            running = await client.call("docker_list_containers", {"filters": {"label": f"suite={unique}"}})
            first = await client.call(
                "docker_list_containers", {"all": True, "filters": {"label": [f"suite={unique}"]}, "limit": 2}
            )
            body = structured(first)
            second = await client.call(
                "docker_list_containers",
                {"all": True, "filters": {"label": [f"suite={unique}"]}, "limit": 2, "cursor": body["next_cursor"]},
            )
            exited = await client.call(
                "docker_list_containers", {"all": True, "filters": {"label": f"suite={unique}", "exited": "0"}}
            )
    assert structured(running)["containers"] == []
    assert body["total"] == 3 and body["truncated"] and len(body["containers"]) == 2
    rest = structured(second)
    assert len(rest["containers"]) == 1 and not rest["truncated"] and rest["next_cursor"] is None
    names = {c["name"] for c in body["containers"]} | {c["name"] for c in rest["containers"]}
    assert len(names) == 3
    assert set(body["containers"][0]) == {"id", "name", "image", "state", "status", "created"}
    assert structured(exited)["total"] == 3


@pytest.mark.parametrize(
    "arguments",
    [
        {"filters": {"colour": "red"}},
        {"filters": {"status": "sleeping"}},
        {"filters": {"exited": "zero"}},
        {"filters": {"health": "great"}},
        {"filters": {"label": []}},
        {"cursor": "abc"},
        {"limit": 0},
        {"limit": 5000},
    ],
)
async def test_list_containers_bad_input(docker_settings: DockerSettings, arguments: dict[str, Any]) -> None:
    server = build_server(docker_settings)
    with anyio.fail_after(10):
        async with connect(server) as client:
            result = await client.call("docker_list_containers", arguments)
    assert error_code(result) == "invalid_argument"


async def test_inspect_container_projects_and_hides_env_values(
    docker_settings: DockerSettings, docker_api: Any, busybox_image: str, unique: str
) -> None:
    name = f"inspect-{unique}"
    created = docker_api.create_container(
        busybox_image, ["sleep", "600"], name=name, environment={"DB_PASSWORD": "hunter2-value"},
        host_config=docker_api.create_host_config(network_mode="none", mem_limit="64m"), stop_signal="SIGKILL",
    )  # fmt: skip
    docker_api.start(created["Id"])
    try:
        server = build_server(docker_settings)
        with anyio.fail_after(10):
            async with connect(server, principal=VIEWER) as client:
                result = await client.call("docker_inspect_container", {"container": name})
                missing = await client.call("docker_inspect_container", {"container": "no-such-thing"})
                bad = await client.call("docker_inspect_container", {"container": "../etc"})
    finally:
        docker_api.remove_container(created["Id"], force=True)
    body = structured(result)
    assert body["name"] == name and body["state"]["running"] and body["state"]["status"] == "running"
    assert "DB_PASSWORD" in body["env_names"]
    assert "hunter2-value" not in text_of(result)
    assert body["limits"]["memory_mb"] == 64.0
    assert body["network_mode"] == "none" and not body["privileged"] and not body["created_by_sophia"]
    assert error_code(missing) == "not_found" and "no-such-thing" in text_of(missing)
    assert error_code(bad) == "invalid_argument"


async def test_logs_tail_streams_redaction_and_cap(
    docker_settings: DockerSettings, make_container: ContainerFactory
) -> None:
    name = make_container(
        ["sh", "-c", "echo out-1; echo err-1 >&2; echo 'api_key=sk_live_abcdefghijklmnop'; seq 1 2000"]
    )
    server = build_server(docker_settings)
    with anyio.fail_after(30):
        async with connect(server) as client:
            tail = structured(await client.call("docker_container_logs", {"container": name, "tail": 2}))
            head = structured(await client.call("docker_container_logs", {"container": name, "tail": None}))
            err_only = structured(
                await client.call("docker_container_logs", {"container": name, "stdout": False, "tail": None})
            )
            capped = structured(
                await client.call("docker_container_logs", {"container": name, "tail": None, "max_bytes": 1000})
            )
            future = structured(await client.call("docker_container_logs", {"container": name, "since": "0s"}))
            stamped = structured(
                await client.call("docker_container_logs", {"container": name, "tail": 1, "timestamps": True})
            )
    # stdout and stderr are separate pipes: their relative order in the log is not defined.
    assert tail["lines"] == 2 and "2000" in tail["logs"].splitlines() and not tail["truncated"]
    lines = head["logs"].splitlines()
    assert len(lines) == 2003 and {"out-1", "err-1", "api_key=[REDACTED]"} <= set(lines) and "2000" in lines
    assert "sk_live_abcdefghijklmnop" not in head["logs"] and "[REDACTED]" in head["logs"]
    assert err_only["logs"] == "err-1\n"
    assert capped["truncated"] and len(capped["logs"]) <= 1000 and "2000" in capped["logs"].splitlines()
    assert capped["bytes_read"] > 1000
    assert future["logs"] == "" and future["lines"] == 0
    assert stamped["lines"] == 1 and re.match(r"^20\d\d-\d\d-\d\dT[\d:.]+Z ", stamped["logs"])


@pytest.mark.parametrize(
    "arguments",
    [
        {"since": "yesterday"},
        {"until": "5 minutes"},
        {"since": "2026-11-21T06:00:00"},
        {"since": "10m", "until": "1h"},
        {"stdout": False, "stderr": False},
        {"tail": 0},
        {"max_bytes": 10},
    ],
)
async def test_logs_bad_input(docker_settings: DockerSettings, shared_sleeper: str, arguments: dict[str, Any]) -> None:
    server = build_server(docker_settings)
    with anyio.fail_after(10):
        async with connect(server) as client:
            result = await client.call("docker_container_logs", {"container": shared_sleeper, **arguments})
    assert error_code(result) == "invalid_argument"


def test_parse_time_forms() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    assert parse_time("90s", "since", now) == now.timestamp() - 90
    assert parse_time("1d2h", "since", now) == now.timestamp() - 26 * 3600
    assert parse_time("2026-11-21T11:00:00Z", "since", now) == now.timestamp() - 3600
    assert parse_time("1700000000", "since", now) == 1_700_000_000
    assert parse_time(None, "since", now) is None
    with pytest.raises(InvalidArgument):
        parse_time("", "since", now)


async def test_stats_of_running_and_stopped(
    docker_settings: DockerSettings, shared_sleeper: str, make_container: ContainerFactory
) -> None:
    sleeper = shared_sleeper
    stopped = make_container(["true"])
    server = build_server(docker_settings)
    with anyio.fail_after(30):
        async with connect(server, principal=VIEWER) as client:
            live = structured(await client.call("docker_container_stats", {"container": sleeper}))
            dead = structured(await client.call("docker_container_stats", {"container": stopped}))
            missing = await client.call("docker_container_stats", {"container": "ghost-container"})
    assert live["running"] and live["memory_usage_mb"] is not None and live["pids"] == 1
    assert live["cpu_percent"] is not None and live["cpu_percent"] >= 0
    assert not dead["running"] and dead["memory_usage_mb"] is None
    assert error_code(missing) == "not_found"


# -- containers: lifecycle --------------------------------------------------------------------


async def test_stop_start_restart(docker_settings: DockerSettings, sleeper: str, docker_api: Any) -> None:
    server = build_server(docker_settings)
    with anyio.fail_after(60):
        async with connect(server, principal=Principal("dev", Role.DEVELOPER)) as client:
            stopped = structured(await client.call("docker_stop_container", {"container": sleeper, "timeout_s": 1}))
            assert not docker_api.inspect_container(sleeper)["State"]["Running"]
            started = structured(await client.call("docker_start_container", {"container": sleeper}))
            again = structured(await client.call("docker_start_container", {"container": sleeper}))
            before = docker_api.inspect_container(sleeper)["State"]["StartedAt"]
            restarted = structured(
                await client.call("docker_restart_container", {"container": sleeper, "timeout_s": 0})
            )
            after = docker_api.inspect_container(sleeper)["State"]["StartedAt"]
            missing = await client.call("docker_stop_container", {"container": "ghost-container"})
            bad = await client.call("docker_stop_container", {"container": sleeper, "timeout_s": -1})
    assert stopped["state"] == "exited"
    assert started["state"] == again["state"] == restarted["state"] == "running"
    assert after != before
    assert error_code(missing) == "not_found" and "ghost-container" in text_of(missing)
    assert error_code(bad) == "invalid_argument"


async def test_remove_container_by_token(docker_settings: DockerSettings, sleeper: str, docker_api: Any) -> None:
    server = build_server(docker_settings)
    with anyio.fail_after(30):
        async with connect(server, principal=OPS) as client:
            refused = await client.call("docker_remove_container", {"container": sleeper, "confirmation_token": "x"})
            preview, not_forced = await confirmed(client, "docker_remove_container", {"container": sleeper})
            assert docker_api.containers(all=True, filters={"name": sleeper})
            preview, done = await confirmed(client, "docker_remove_container", {"container": sleeper, "force": True})
            gone = await client.call("docker_remove_container", {"container": sleeper})
    assert error_code(refused) == "confirmation_required" and "refused" in error_data(refused)
    assert error_code(not_forced) == "conflict"
    assert sleeper in preview["summary"] and "killed" in preview["summary"]
    assert structured(done) == {"kind": "container", "removed": sleeper}
    assert not docker_api.containers(all=True, filters={"name": sleeper})
    assert error_code(gone) == "not_found"


async def test_remove_token_is_bound_to_the_container_not_its_name(
    docker_settings: DockerSettings, docker_api: Any, busybox_image: str, unique: str
) -> None:
    """A token issued for one container does not remove a different container that took its name."""
    name = f"rebound-{unique}"
    first_id = docker_api.create_container(busybox_image, ["true"], name=name)["Id"]
    server = build_server(docker_settings)
    try:
        with anyio.fail_after(30):
            async with connect(server, principal=OPS) as client:
                asked = await client.call("docker_remove_container", {"container": name})
                token = error_data(asked)["confirmation_token"]
                docker_api.remove_container(first_id)
                second_id = docker_api.create_container(busybox_image, ["true"], name=name)["Id"]
                refused = await client.call("docker_remove_container", {"container": name, "confirmation_token": token})
        assert error_code(refused) == "confirmation_required" and "changed" in error_data(refused)["refused"]
        assert docker_api.inspect_container(name)["Id"] == second_id
    finally:
        docker_api.remove_container(name, force=True)


async def test_remove_container_by_elicitation(
    docker_settings: DockerSettings, make_container: ContainerFactory, docker_api: Any
) -> None:
    name = make_container(["true"])
    server = build_server(docker_settings)
    with anyio.fail_after(30):
        async with connect(server, principal=OPS, elicitation="decline") as client:
            declined = await client.call("docker_remove_container", {"container": name})
        assert docker_api.containers(all=True, filters={"name": name})
        async with connect(server, principal=OPS, elicitation="accept") as client:
            accepted = await client.call("docker_remove_container", {"container": name})
    assert error_code(declined) == "forbidden"
    assert error_code(accepted) is None
    assert not docker_api.containers(all=True, filters={"name": name})


# -- images -----------------------------------------------------------------------------------


async def test_list_and_inspect_images(docker_settings: DockerSettings, busybox_image: str) -> None:
    server = build_server(docker_settings)
    with anyio.fail_after(30):
        async with connect(server, principal=VIEWER) as client:
            listed = structured(
                await client.call("docker_list_images", {"filters": {"reference": busybox_image.split(":")[0]}})
            )
            detail = structured(await client.call("docker_inspect_image", {"image": busybox_image}))
            by_id = structured(await client.call("docker_inspect_image", {"image": detail["id"]}))
            missing = await client.call("docker_inspect_image", {"image": "no/such-image:9"})
            bad_filter = await client.call("docker_list_images", {"filters": {"size": "big"}})
    assert [i["tags"] for i in listed["images"]] == [[busybox_image]]
    assert detail["command"] == ["/bin/sh"] and detail["env_names"] == ["PATH"] and detail["os"] == "linux"
    assert by_id["id"] == detail["id"]
    assert error_code(missing) == "not_found" and "no/such-image:9" in text_of(missing)
    assert error_code(bad_filter) == "invalid_argument"


async def test_pull_with_progress_then_remove(
    docker_settings: DockerSettings, docker_registry: tuple[Registry, str], docker_api: Any
) -> None:
    registry, remote = docker_registry
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    server = build_server(docker_settings)
    with anyio.fail_after(60):
        async with connect(server, principal=OPS) as client:
            pulled = await client.call("docker_pull_image", {"image": remote}, progress_callback=on_progress)
            again = await client.call("docker_pull_image", {"image": remote})
            missing = await client.call("docker_pull_image", {"image": f"{registry.address}/sophia-test/absent:1"})
            preview, removed = await confirmed(client, "docker_remove_image", {"image": remote})
            gone = await client.call("docker_inspect_image", {"image": remote})
    assert error_code(pulled) is None, pulled.content
    assert remote in structured(pulled)["tags"]
    assert any("Pull complete" in (message or "") for _, _, message in progress), progress
    assert progress[-1][0] == progress[-1][1]
    assert error_code(again) is None
    assert error_code(missing) == "not_found"
    assert remote in preview["summary"]
    assert remote in structured(removed)["untagged"] and structured(removed)["deleted"]
    assert error_code(gone) == "not_found"
    assert not docker_api.images(name=remote)


async def test_pull_refused_by_image_allow_list(
    docker_settings: DockerSettings, docker_registry: tuple[Registry, str]
) -> None:
    _, remote = docker_registry
    server = build_server(docker_settings.model_copy(update={"allowed_images": ["docker.io/library/*"]}))
    with anyio.fail_after(30):
        async with connect(server, principal=OPS) as client:
            result = await client.call("docker_pull_image", {"image": remote})
    assert error_code(result) == "forbidden"
    assert error_data(result) == {"rule": "image_allow_list", "setting": "SOPHIA_DOCKER_ALLOWED_IMAGES"}


# -- volumes and networks ---------------------------------------------------------------------


async def test_volume_lifecycle(docker_settings: DockerSettings, unique: str, docker_api: Any) -> None:
    name = f"vol-{unique}"
    server = build_server(docker_settings)
    with anyio.fail_after(30):
        async with connect(server, principal=OPS) as client:
            created = structured(await client.call("docker_create_volume", {"name": name, "labels": {"team": "a"}}))
            duplicate = await client.call("docker_create_volume", {"name": name})
            reserved = await client.call("docker_create_volume", {"name": f"{name}-2", "labels": {"sophia.x": "y"}})
            listed = structured(await client.call("docker_list_volumes", {"filters": {"label": "team=a"}}))
            preview, removed = await confirmed(client, "docker_remove_volume", {"name": name})
            missing = await client.call("docker_remove_volume", {"name": name})
            bad = await client.call("docker_create_volume", {"name": "/etc"})
    assert created["labels"]["sophia.principal"] == "olivia" and created["labels"]["team"] == "a"
    assert created["driver"] == "local"
    assert error_code(duplicate) == "conflict"
    assert error_code(reserved) == "invalid_argument"
    assert [v["name"] for v in listed["volumes"]] == [name]
    assert name in preview["summary"]
    assert structured(removed) == {"kind": "volume", "removed": name}
    assert error_code(missing) == "not_found"
    assert error_code(bad) == "invalid_argument"
    assert not [v for v in docker_api.volumes().get("Volumes") or [] if v["Name"] == name]


async def test_network_lifecycle(docker_settings: DockerSettings, unique: str) -> None:
    name = f"net-{unique}"
    server = build_server(docker_settings)
    with anyio.fail_after(30):
        async with connect(server, principal=OPS) as client:
            created = structured(await client.call("docker_create_network", {"name": name, "internal": True}))
            duplicate = await client.call("docker_create_network", {"name": name})
            listed = structured(await client.call("docker_list_networks", {"filters": {"name": name}}))
            everything = structured(await client.call("docker_list_networks", {}))
            preview, removed = await confirmed(client, "docker_remove_network", {"network": name})
            missing = await client.call("docker_remove_network", {"network": name})
    assert created["name"] == name and created["internal"] and created["driver"] == "bridge"
    assert created["labels"]["sophia.created-by"] == "sophia-docker"
    assert error_code(duplicate) == "conflict"
    assert [n["name"] for n in listed["networks"]] == [name]
    assert {"none", "host"} <= {n["name"] for n in everything["networks"]}
    assert name in preview["summary"]
    assert structured(removed)["removed"] == name
    assert error_code(missing) == "not_found"


# -- engine -----------------------------------------------------------------------------------


async def test_system_info(docker_settings: DockerSettings, shared_sleeper: str) -> None:
    server = build_server(docker_settings)
    with anyio.fail_after(30):
        async with connect(server, principal=VIEWER) as client:
            body = structured(await client.call("docker_system_info", {}))
            quick = structured(await client.call("docker_system_info", {"disk_usage": False}))
    assert body["engine_address"] == docker_settings.host
    assert body["server_version"] and body["api_version"] and body["running"] >= 1 and body["images"] >= 1
    assert body["disk_usage"]["images"] >= 1 and body["disk_usage"]["images_mb"] > 0
    assert quick["disk_usage"] is None


async def test_check_answers_with_engine_version(docker_settings: DockerSettings) -> None:
    with anyio.fail_after(30):
        line = await check(docker_settings)
    assert line.startswith("Docker engine ") and docker_settings.engine_address() in line


MINIMAL_ARGUMENTS: dict[str, dict[str, Any]] = {
    "docker_list_containers": {},
    "docker_inspect_container": {"container": "c"},
    "docker_container_logs": {"container": "c"},
    "docker_container_stats": {"container": "c"},
    "docker_start_container": {"container": "c"},
    "docker_stop_container": {"container": "c"},
    "docker_restart_container": {"container": "c"},
    "docker_remove_container": {"container": "c"},
    "docker_run_container": {"image": "busybox"},
    "docker_exec": {"container": "c", "command": ["true"]},
    "docker_list_images": {},
    "docker_inspect_image": {"image": "busybox"},
    "docker_pull_image": {"image": "busybox"},
    "docker_remove_image": {"image": "busybox"},
    "docker_list_volumes": {},
    "docker_create_volume": {"name": "v"},
    "docker_remove_volume": {"name": "v"},
    "docker_list_networks": {},
    "docker_create_network": {"name": "n"},
    "docker_remove_network": {"network": "n"},
    "docker_system_info": {},
}


async def test_every_tool_answers_unavailable_when_the_engine_is_unreachable(tmp_path: Path) -> None:
    assert set(MINIMAL_ARGUMENTS) == ALL_TOOLS
    address = f"unix://{tmp_path}/gone.sock"
    server = build_server(DockerSettings(host=address, timeout_s=5))
    with anyio.fail_after(60):
        async with connect(server, principal=OPS) as client:
            for tool, arguments in MINIMAL_ARGUMENTS.items():
                result = await client.call(tool, arguments)
                assert error_code(result) == "unavailable", (tool, result.content)
                assert address in text_of(result), tool
        with pytest.raises(Unavailable):
            await check(DockerSettings(host=address))


async def test_server_recovers_when_the_engine_appears(tmp_path: Path, docker_settings: DockerSettings) -> None:
    """Same server object: unavailable while nothing listens at its address, answers once the engine is there."""
    link = tmp_path / "engine.sock"
    assert docker_settings.host is not None
    server = build_server(docker_settings.model_copy(update={"host": f"unix://{link}"}))
    with anyio.fail_after(30):
        async with connect(server, principal=VIEWER) as client:
            down = await client.call("docker_system_info", {"disk_usage": False})
            link.symlink_to(docker_settings.host.removeprefix("unix://"))
            up = await client.call("docker_system_info", {"disk_usage": False})
    assert error_code(down) == "unavailable"
    assert error_code(up) is None and structured(up)["server_version"]


def test_build_server_does_not_import_the_sdk() -> None:
    """Start-up stays fast: the docker SDK is imported on the first call, not by build_server."""
    import subprocess
    import sys

    code = (
        "import sys; from sophia_docker.tools import build_server; from sophia_docker.settings import DockerSettings;"
        "build_server(DockerSettings()); print('docker' in sys.modules, 'requests' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["False", "False"]
