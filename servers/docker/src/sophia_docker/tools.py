"""The Docker MCP tools: typed, documented and thin; the engine is reached only through client.py."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import anyio.from_thread
from mcp.server.mcpserver import Context
from pydantic import Field
from pydantic.json_schema import SkipJsonSchema
from sophia_shared.errors import Conflict, InvalidArgument, NotFound
from sophia_shared.paging import paged
from sophia_shared.redact import redact
from sophia_shared.server import Preview, Role, SophiaServer, current_correlation_id, current_principal
from sophia_shared.toolset import Toolset, tool

from sophia_docker import models
from sophia_docker.client import DockerClient
from sophia_docker.policy import (
    LABEL_IMAGE,
    MountSpec,
    RunRequest,
    check_exec,
    check_image,
    check_labels,
    check_run,
    sophia_labels,
)
from sophia_docker.settings import DockerSettings

INSTRUCTIONS = (
    "Operate a Docker engine: find containers, read their logs and stats, start/stop/restart "
    "them, run one-off containers and exec commands under a safety policy, manage images, "
    "volumes and networks. Running, exec and removal need the user's confirmation."
)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
ContainerRef = Annotated[
    str,
    Field(
        description="name, id or unique id prefix",
        min_length=1,
        max_length=128,
        pattern=r"^/?[A-Za-z0-9][A-Za-z0-9_.-]*$",
    ),
]
ImageRef = Annotated[
    str,
    Field(
        description="name[:tag], name@digest or id",
        min_length=1,
        max_length=512,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$",
    ),
]
NetworkRef = Annotated[
    str,
    Field(description="network name or id", min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"),
]
ObjectName = Annotated[str, Field(description="name", min_length=1, max_length=128, pattern=NAME_PATTERN)]
Filters = Annotated[
    dict[str, str | list[str]] | None,
    Field(description='engine filters, e.g. {"label": ["app=web"]}', max_length=20),
]
Limit = Annotated[int, Field(description="page size", ge=1, le=200)]
Cursor = Annotated[str | None, Field(description="next_cursor of the previous page", max_length=20)]
Labels = Annotated[
    dict[str, str] | None, Field(description="keys 'sophia.*' are reserved", max_length=50)
]
GracePeriod = Annotated[int, Field(description="grace seconds before SIGKILL", ge=0, le=300)]

CONTAINER_FILTERS = frozenset(
    {
        "id",
        "name",
        "label",
        "status",
        "ancestor",
        "exited",
        "health",
        "network",
        "volume",
        "before",
        "since",
        "is-task",
        "publish",
        "expose",
    }
)
CONTAINER_STATUSES = frozenset({"created", "restarting", "running", "removing", "paused", "exited", "dead"})
HEALTH_STATES = frozenset({"starting", "healthy", "unhealthy", "none"})
IMAGE_FILTERS = frozenset({"reference", "dangling", "label", "before", "since"})
VOLUME_FILTERS = frozenset({"name", "label", "dangling", "driver"})
NETWORK_FILTERS = frozenset({"name", "id", "label", "driver", "scope", "type", "dangling"})
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def engine_filters(filters: dict[str, str | list[str]] | None, allowed: frozenset[str]) -> dict[str, list[str]]:
    """Normalise filters to the engine's form, refusing unknown keys with the list of known ones."""
    result: dict[str, list[str]] = {}
    for key, value in (filters or {}).items():
        if key not in allowed:
            raise InvalidArgument(f"unknown filter {key!r}; use one of: {', '.join(sorted(allowed))}")
        values = [value] if isinstance(value, str) else list(value)
        if not values or len(values) > 20 or any(not v or len(v) > 256 for v in values):
            raise InvalidArgument(f"filter {key!r} needs 1 to 20 non-empty values of at most 256 characters")
        if key == "status" and (bad := [v for v in values if v not in CONTAINER_STATUSES]):
            raise InvalidArgument(
                f"filter status={bad[0]!r} is not a container status; use one of: "
                f"{', '.join(sorted(CONTAINER_STATUSES))}"
            )
        if key == "exited" and not all(v.lstrip("-").isdigit() for v in values):
            raise InvalidArgument(f"filter exited={values[0]!r} must be an exit code (an integer)")
        if key == "health" and (bad := [v for v in values if v not in HEALTH_STATES]):
            raise InvalidArgument(f"filter health={bad[0]!r}: use one of {', '.join(sorted(HEALTH_STATES))}")
        result[key] = values
    return result


def parse_time(value: str | None, field: str, now: datetime | None = None) -> float | None:
    """A relative duration ('90s', '15m', '2h', '1d12h') before now, an RFC 3339 time, or unix seconds."""
    if value is None:
        return None
    text = value.strip()
    now = now or datetime.now(UTC)
    match = _DURATION.match(text)
    if text and match and any(match.groups()):
        days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        return now.timestamp() - (((days * 24 + hours) * 60 + minutes) * 60 + seconds)
    try:
        return float(text) if re.fullmatch(r"\d+(\.\d+)?", text) else _rfc3339(text)
    except ValueError:
        raise InvalidArgument(
            f"{field}={value!r} is not a time: use a duration like '30s', '15m', '2h', '1d' (that long "
            "ago), an RFC 3339 time like '2026-11-21T06:00:00Z', or unix seconds"
        ) from None


def _rfc3339(text: str) -> float:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("a time zone is required")
    return moment.timestamp()


# -- the tools (module-level values; build_server binds their dependencies) ----------------


@dataclass(frozen=True)
class DockerDeps:
    """What the tools need: the settings (the safety policy's among them) and the client, the only
    code that talks to the engine."""

    settings: DockerSettings
    client: DockerClient


def page_size(deps: DockerDeps, limit: int) -> int:
    return min(limit, deps.settings.max_list_items)


def log_cap(deps: DockerDeps, requested: int | None) -> int:
    return min(requested or deps.settings.max_log_bytes, deps.settings.max_log_bytes)


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def docker_list_containers(
    deps: DockerDeps,
    all: Annotated[bool, Field(description="include stopped containers")] = False,
    filters: Filters = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> models.ContainerList:
    """List containers, newest first. Filters: id, name, label, status (created, restarting,
    running, removing, paused, exited, dead), ancestor, exited, health, network, volume,
    before, since, is-task, publish, expose."""
    raw = await deps.client.list_containers(all_states=all, filters=engine_filters(filters, CONTAINER_FILTERS))
    chunk, paging = paged(raw, cursor, page_size(deps, limit))
    return models.ContainerList(
        containers=[models.container_summary(c) for c in chunk], **paging, engine=deps.client.engine
    )


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def docker_inspect_container(deps: DockerDeps, container: ContainerRef) -> models.ContainerDetail:
    """Inspect one container: state, exit code, health, image, command, mounts, networks,
    limits. Environment variable values are never returned, only their names."""
    return models.container_detail(await deps.client.inspect_container(container))


@tool(role=Role.DEVELOPER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def docker_container_logs(
    deps: DockerDeps,
    container: ContainerRef,
    tail: Annotated[
        int | None, Field(description="last N lines; null for the whole log", ge=1, le=1_000_000)
    ] = 200,
    since: Annotated[
        str | None, Field(description="only after: '15m' (ago), '2026-11-21T06:00:00Z' or unix secs", max_length=40)
    ] = None,
    until: Annotated[str | None, Field(description="only before, same forms as since", max_length=40)] = None,
    stdout: Annotated[bool, Field(description="include stdout")] = True,
    stderr: Annotated[bool, Field(description="include stderr")] = True,
    timestamps: Annotated[bool, Field(description="prefix each line with its time")] = False,
    max_bytes: Annotated[
        int | None, Field(description="cap on returned bytes", ge=1000, le=10_000_000)
    ] = None,
) -> models.LogsResult:
    """Read a container's logs (stdout and stderr). Output is capped: when more matches, the
    newest bytes are kept and truncated is true. Secrets in the text are redacted."""
    if not (stdout or stderr):
        raise InvalidArgument("select at least one of stdout and stderr")
    start, end = parse_time(since, "since"), parse_time(until, "until")
    if start is not None and end is not None and end <= start:
        raise InvalidArgument("until must be later than since")
    output = await deps.client.logs(
        container,
        stdout=stdout,
        stderr=stderr,
        tail=tail,
        since=start,
        until=end,
        timestamps=timestamps,
        max_bytes=log_cap(deps, max_bytes),
    )
    text = output.text
    return models.LogsResult(
        container=container,
        logs=text,
        lines=text.count("\n") + (1 if text and not text.endswith("\n") else 0),
        truncated=output.truncated,
        bytes_read=output.bytes_seen,
    )


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def docker_container_stats(deps: DockerDeps, container: ContainerRef) -> models.StatsResult:
    """One resource-usage sample of a container: CPU %, memory, pids, network and block I/O.
    Takes about a second."""
    detail = await deps.client.inspect_container(container)
    running = bool((detail.get("State") or {}).get("Running"))
    raw = await deps.client.stats(detail["Id"]) if running else {}
    return models.stats_result(container, running, raw)


async def action_result(deps: DockerDeps, container: str, action: str) -> models.ContainerAction:
    detail = await deps.client.inspect_container(container)
    return models.ContainerAction(
        container=container,
        id=models.short_id(detail.get("Id")),
        action=action,
        state=str((detail.get("State") or {}).get("Status", "")),
    )


@tool(role=Role.DEVELOPER, read_only=False, destructive=False, idempotent=True, open_world=True)
async def docker_start_container(deps: DockerDeps, container: ContainerRef) -> models.ContainerAction:
    """Start a stopped container."""
    await deps.client.start(container)
    return await action_result(deps, container, "start")


@tool(role=Role.DEVELOPER, read_only=False, destructive=False, idempotent=True, open_world=True)
async def docker_stop_container(
    deps: DockerDeps, container: ContainerRef, timeout_s: GracePeriod = 10
) -> models.ContainerAction:
    """Stop a running container: SIGTERM, then SIGKILL after timeout_s."""
    await deps.client.stop(container, timeout_s)
    return await action_result(deps, container, "stop")


@tool(role=Role.DEVELOPER, read_only=False, destructive=False, idempotent=False, open_world=True)
async def docker_restart_container(
    deps: DockerDeps, container: ContainerRef, timeout_s: GracePeriod = 10
) -> models.ContainerAction:
    """Restart a container (stop with timeout_s grace, then start)."""
    await deps.client.restart(container, timeout_s)
    return await action_result(deps, container, "restart")


async def preview_remove_container(
    deps: DockerDeps, container: str, force: bool = False, remove_volumes: bool = False
) -> Preview:
    detail = models.container_detail(await deps.client.inspect_container(container))
    running = " (running: it will be killed)" if detail.state.running and force else ""
    volumes = " and its anonymous volumes" if remove_volumes else ""
    return Preview(
        summary=f"Remove container {detail.name} ({detail.id}, image {detail.image}){volumes}{running}",
        details={"id": detail.id, "name": detail.name, "state": detail.state.status},
        binding=detail.id,
    )


@tool(
    role=Role.DEVOPS,
    read_only=False,
    destructive=True,
    idempotent=False,
    open_world=True,
    preview=preview_remove_container,
)
async def docker_remove_container(
    deps: DockerDeps,
    container: ContainerRef,
    force: Annotated[bool, Field(description="kill it first if it is running")] = False,
    remove_volumes: Annotated[bool, Field(description="also remove its anonymous volumes")] = False,
) -> models.RemovedResult:
    """Remove a container. A running container needs force=true."""
    await deps.client.remove_container(container, force=force, volumes=remove_volumes)
    return models.RemovedResult(kind="container", removed=container)


async def checked_run(
    deps: DockerDeps, image: str, request: RunRequest
) -> tuple[dict[str, Any], Any, tuple[MountSpec, ...]]:
    """Policy first (nothing reaches the engine if it refuses), then the image must exist locally."""
    limits, checked = check_run(request, deps.settings)
    try:
        found = await deps.client.inspect_image(image)
    except NotFound:
        check_image([image], deps.settings)
        raise NotFound(f"image {image!r} not found on the engine; pull it first with docker_pull_image") from None
    # The allow-list applies to what the image is (its tags and digests), not to how the
    # caller named it: a name or id prefix must not smuggle in an image outside the list.
    check_image([*(found.get("RepoTags") or []), *(found.get("RepoDigests") or [])], deps.settings)
    return found, limits, checked


async def preview_run(deps: DockerDeps, **arguments: Any) -> Preview:
    image_doc, limits, mounts = await checked_run(deps, arguments["image"], run_request(**arguments))
    command = arguments.get("command")
    shown_mounts = [f"{m.type}:{m.source or ''}->{m.target}{':ro' if m.read_only else ''}" for m in mounts]
    summary = (
        f"Run image {arguments['image']} ({models.short_id(image_doc.get('Id'))})"
        f"{' command ' + redact(' '.join(command)) if command else ''}"
        f" with memory {limits.memory_mb} MB, {limits.cpus} CPUs, {limits.pids_limit} pids, "
        f"no-new-privileges, network {arguments.get('network') or 'default'}"
        f"{', mounts ' + ', '.join(shown_mounts) if shown_mounts else ''}"
    )
    env = arguments.get("env") or {}
    return Preview(
        summary=summary,
        details={"env_names": sorted(env), "mounts": shown_mounts, "name": arguments.get("name")},
        binding=str(image_doc.get("Id")),
    )


@tool(
    role=Role.DEVELOPER,
    read_only=False,
    destructive=False,
    idempotent=False,
    open_world=True,
    confirm=True,
    preview=preview_run,
)
async def docker_run_container(
    deps: DockerDeps,
    image: ImageRef,
    command: Annotated[list[str] | None, Field(description="command and arguments", max_length=100)] = None,
    name: Annotated[str | None, Field(description="container name", max_length=128, pattern=NAME_PATTERN)] = None,
    env: Annotated[dict[str, str] | None, Field(description="environment variables", max_length=100)] = None,
    labels: Labels = None,
    mounts: Annotated[
        list[MountSpec] | None, Field(description="volumes, allowed bind mounts, tmpfs", max_length=20)
    ] = None,
    network: Annotated[
        str | None, Field(description="network name, or 'none'; 'host' is refused", max_length=128)
    ] = None,
    memory_mb: Annotated[int | None, Field(description="memory limit (default from settings)", ge=6)] = None,
    cpus: Annotated[float | None, Field(description="CPU limit in cores (default from settings)", gt=0)] = None,
    pids_limit: Annotated[int | None, Field(description="process limit (default from settings)", ge=8)] = None,
    user: Annotated[str | None, Field(description="user[:group] to run as", max_length=64)] = None,
    working_dir: Annotated[str | None, Field(description="working directory", max_length=4096)] = None,
    read_only_rootfs: Annotated[bool, Field(description="mount the root filesystem read-only")] = False,
    restart_policy: Annotated[
        Literal["no", "on-failure", "unless-stopped", "always"], Field(description="when the engine restarts it")
    ] = "no",
    wait_s: Annotated[
        float,
        Field(description="wait up to this long for it to exit, then return exit code and logs", ge=0, le=300),
    ] = 0,
    # Refused by the policy whatever their value: accepted, so passing one gets the policy's refusal and
    # its code, but left out of the published schema (the description states the policy).
    privileged: SkipJsonSchema[bool] = False,
    cap_add: SkipJsonSchema[list[str] | None] = None,
    devices: SkipJsonSchema[list[str] | None] = None,
    pid_mode: Annotated[str | None, Field(description="'host' is refused", max_length=128)] = None,
    ipc_mode: Annotated[str | None, Field(description="'host' is refused", max_length=128)] = None,
) -> models.RunResult:
    """Run a new container in the background, under the safety policy: no privileged mode,
    added capabilities, devices, host namespaces, engine socket or host paths outside the
    allow-list; CPU, memory and pids limits and no-new-privileges always applied; labelled
    with who asked. The image must already be on the engine."""
    request = run_request(
        mounts=mounts, network=network, memory_mb=memory_mb, cpus=cpus, pids_limit=pids_limit, labels=labels,
        privileged=privileged, cap_add=cap_add, devices=devices, pid_mode=pid_mode, ipc_mode=ipc_mode,
    )
    image_doc, limits, checked = await checked_run(deps, image, request)
    marks = sophia_labels(current_principal().name, current_correlation_id() or None)
    spec: dict[str, Any] = {
        # The exact image checked and shown in the confirmation, even if its tag moves meanwhile.
        "image": image_doc["Id"],
        "command": command,
        "name": name,
        "environment": env or None,
        "labels": {**(labels or {}), **marks, LABEL_IMAGE: image},
        "user": user or None,
        "working_dir": working_dir,
        "detach": True,
    }
    host_config = _host_config(limits, checked, request, read_only_rootfs=read_only_rootfs,
                               restart_policy=restart_policy)
    detail = await deps.client.create_and_start(spec, host_config)
    result = models.RunResult(
        id=models.short_id(detail.get("Id")),
        name=str(detail.get("Name", "")).lstrip("/"),
        image=image,
        state=str((detail.get("State") or {}).get("Status", "")),
        limits=models.limits_of(detail.get("HostConfig") or {}),
        labels=marks,
        warnings=[str(w) for w in detail.get("Warnings") or []][:20],
    )
    if wait_s > 0:
        await _wait_for_exit(deps, result, detail["Id"], wait_s)
    return result


def _host_config(
    limits: Any, mounts: tuple[MountSpec, ...], request: RunRequest, *, read_only_rootfs: bool, restart_policy: str
) -> dict[str, Any]:
    """The engine's host config of a run: the policy's limits always, no-new-privileges always."""
    host_config: dict[str, Any] = {
        "mem_limit": limits.memory_mb * 1024 * 1024,
        "nano_cpus": int(limits.cpus * 1e9),
        "pids_limit": limits.pids_limit,
        "security_opt": ["no-new-privileges:true"],
        "read_only": read_only_rootfs,
        "network_mode": request.network,
        "pid_mode": request.pid_mode,
        "ipc_mode": request.ipc_mode,
        "restart_policy": {"Name": restart_policy} if restart_policy != "no" else None,
        "mounts": [_sdk_mount(m) for m in mounts] or None,
    }
    return {k: v for k, v in host_config.items() if v is not None}


async def _wait_for_exit(deps: DockerDeps, result: models.RunResult, container_id: str, wait_s: float) -> None:
    """Fill `result` with the exit code, logs and final state of a run the caller waits for."""
    result.exit_code = await deps.client.wait(container_id, wait_s)
    output = await deps.client.logs(
        container_id, stdout=True, stderr=True, tail=None, since=None, until=None, timestamps=False,
        max_bytes=deps.settings.max_log_bytes,
    )
    result.logs, result.logs_truncated = output.text, output.truncated
    after = await deps.client.inspect_container(container_id)
    result.state = str((after.get("State") or {}).get("Status", ""))


async def preview_exec(
    deps: DockerDeps,
    container: str,
    command: list[str],
    user: str | None = None,
    working_dir: str | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float = 60,
    privileged: bool = False,
) -> Preview:
    check_exec(privileged)
    detail = models.container_detail(await deps.client.inspect_container(container))
    return Preview(
        summary=f"In container {detail.name} ({detail.id}) run: {redact(' '.join(command))}"
        + (f" as {user}" if user else ""),
        details={"env_names": sorted(env or {}), "working_dir": working_dir},
        binding=detail.id,
    )


@tool(
    title="Docker: exec in container", role=Role.DEVELOPER,
    read_only=False,
    destructive=False,
    idempotent=False,
    open_world=True,
    confirm=True,
    preview=preview_exec,
)
async def docker_exec(
    deps: DockerDeps,
    container: ContainerRef,
    command: Annotated[list[str], Field(description="command and arguments", min_length=1, max_length=100)],
    user: Annotated[str | None, Field(description="user[:group] to run as", max_length=64)] = None,
    working_dir: Annotated[str | None, Field(description="working directory", max_length=4096)] = None,
    env: Annotated[dict[str, str] | None, Field(description="extra environment variables", max_length=100)] = None,
    timeout_s: Annotated[float, Field(description="stop waiting after this long", gt=0, le=600)] = 60,
    privileged: SkipJsonSchema[bool] = False,  # refused by the policy, so unpublished (see docker_run_container)
) -> models.ExecResult:
    """Run a command inside a running container and return its exit code and output
    (capped, secrets redacted). Privileged exec is refused."""
    check_exec(privileged)
    outcome = await deps.client.exec(
        container,
        command,
        user=user,
        workdir=working_dir,
        env=env or {},
        timeout_s=timeout_s,
        max_bytes=deps.settings.max_log_bytes,
    )
    return models.ExecResult(
        container=container,
        exit_code=outcome.exit_code,
        output=outcome.output.text,
        truncated=outcome.output.truncated,
        timed_out=outcome.timed_out,
    )


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def docker_list_images(
    deps: DockerDeps, filters: Filters = None, limit: Limit = 50, cursor: Cursor = None
) -> models.ImageList:
    """List images, newest first. Filters: reference (e.g. 'nginx*'), dangling, label, before, since."""
    raw = await deps.client.list_images(name=None, all_layers=False, filters=engine_filters(filters, IMAGE_FILTERS))
    raw.sort(key=lambda item: int(item.get("Created") or 0), reverse=True)
    chunk, paging = paged(raw, cursor, page_size(deps, limit))
    return models.ImageList(
        images=[models.image_summary(i) for i in chunk], **paging, engine=deps.client.engine
    )


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def docker_inspect_image(deps: DockerDeps, image: ImageRef) -> models.ImageDetail:
    """Inspect one image: tags, digests, size, platform, command, exposed ports, labels."""
    return models.image_detail(await deps.client.inspect_image(image))


@tool(role=Role.DEVELOPER, read_only=False, destructive=False, idempotent=True, open_world=True)
async def docker_pull_image(deps: DockerDeps, image: ImageRef, ctx: Context) -> models.ImageDetail:
    """Pull an image from its registry. Without a tag, pulls ':latest'. The image allow-list (if
    set) applies."""
    check_image([image], deps.settings)


    def progress(done: float, total: float | None, message: str) -> None:
        anyio.from_thread.run(ctx.report_progress, done, total, message)


    return models.image_detail(await deps.client.pull(image, progress))


async def preview_remove_image(deps: DockerDeps, image: str, force: bool = False) -> Preview:
    detail = models.image_detail(await deps.client.inspect_image(image))
    return Preview(
        summary=f"Remove image {image} ({detail.id}, tags: {', '.join(detail.tags) or 'none'})"
        f"{' even if containers use it' if force else ''}",
        details={"id": detail.id, "tags": detail.tags},
        binding=detail.id,
    )


@tool(
    role=Role.DEVOPS,
    read_only=False,
    destructive=True,
    idempotent=False,
    open_world=True,
    preview=preview_remove_image,
)
async def docker_remove_image(
    deps: DockerDeps,
    image: ImageRef,
    force: Annotated[bool, Field(description="remove even if stopped containers use it")] = False,
) -> models.ImageRemoved:
    """Remove an image (untag it, and delete its layers if nothing else uses them)."""
    events = await deps.client.remove_image(image, force=force)
    return models.ImageRemoved(
        image=image,
        untagged=[str(e["Untagged"]) for e in events if "Untagged" in e][:100],
        deleted=[models.short_id(str(e["Deleted"])) for e in events if "Deleted" in e][:100],
    )


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def docker_list_volumes(
    deps: DockerDeps,
    filters: Filters = None, limit: Limit = 50, cursor: Cursor = None
) -> models.VolumeList:
    """List volumes by name. Filters: name, label, dangling, driver."""
    raw = await deps.client.list_volumes(engine_filters(filters, VOLUME_FILTERS))
    raw.sort(key=lambda item: str(item.get("Name", "")))
    chunk, paging = paged(raw, cursor, page_size(deps, limit))
    return models.VolumeList(
        volumes=[models.volume_summary(v) for v in chunk], **paging, engine=deps.client.engine
    )


@tool(role=Role.DEVELOPER, read_only=False, destructive=False, idempotent=False, open_world=True)
async def docker_create_volume(deps: DockerDeps, name: ObjectName, labels: Labels = None) -> models.VolumeSummary:
    """Create a local named volume, labelled with who asked."""
    check_labels(labels or {})
    existing = await deps.client.list_volumes({"name": [name]})
    if any(v.get("Name") == name for v in existing):
        raise Conflict(f"volume {name!r} already exists")
    marks = sophia_labels(current_principal().name, current_correlation_id() or None)
    return models.volume_summary(await deps.client.create_volume(name, {**(labels or {}), **marks}))


async def preview_remove_volume(deps: DockerDeps, name: str, force: bool = False) -> Preview:
    found = [v for v in await deps.client.list_volumes({"name": [name]}) if v.get("Name") == name]
    if not found:
        raise NotFound(f"volume {name!r} not found")
    return Preview(summary=f"Remove volume {name} and all data in it", details={"name": name}, binding=name)


@tool(
    role=Role.DEVOPS,
    read_only=False,
    destructive=True,
    idempotent=False,
    open_world=True,
    preview=preview_remove_volume,
)
async def docker_remove_volume(
    deps: DockerDeps,
    name: ObjectName, force: Annotated[bool, Field(description="remove even if marked in use")] = False
) -> models.RemovedResult:
    """Remove a volume and its data. A volume used by a container cannot be removed."""
    await deps.client.remove_volume(name, force=force)
    return models.RemovedResult(kind="volume", removed=name)


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def docker_list_networks(
    deps: DockerDeps,
    filters: Filters = None, limit: Limit = 50, cursor: Cursor = None
) -> models.NetworkList:
    """List networks by name. Filters: name, id, label, driver, scope, type, dangling."""
    raw = await deps.client.list_networks(engine_filters(filters, NETWORK_FILTERS))
    raw.sort(key=lambda item: str(item.get("Name", "")))
    chunk, paging = paged(raw, cursor, page_size(deps, limit))
    return models.NetworkList(
        networks=[models.network_summary(n) for n in chunk], **paging, engine=deps.client.engine
    )


@tool(role=Role.DEVELOPER, read_only=False, destructive=False, idempotent=False, open_world=True)
async def docker_create_network(
    deps: DockerDeps,
    name: ObjectName,
    internal: Annotated[bool, Field(description="no route outside the network")] = False,
    labels: Labels = None,
) -> models.NetworkSummary:
    """Create a bridge network, labelled with who asked."""
    check_labels(labels or {})
    marks = sophia_labels(current_principal().name, current_correlation_id() or None)
    return models.network_summary(
        await deps.client.create_network(name, internal=internal, labels={**(labels or {}), **marks})
    )


async def preview_remove_network(deps: DockerDeps, network: str) -> Preview:
    detail = models.network_summary(await deps.client.inspect_network(network))
    return Preview(
        summary=f"Remove network {detail.name} ({detail.id}, driver {detail.driver})",
        details={"id": detail.id, "name": detail.name},
        binding=detail.id,
    )


@tool(
    role=Role.DEVOPS,
    read_only=False,
    destructive=True,
    idempotent=False,
    open_world=True,
    preview=preview_remove_network,
)
async def docker_remove_network(deps: DockerDeps, network: NetworkRef) -> models.RemovedResult:
    """Remove a network (name or id). Networks with containers attached cannot be removed."""
    await deps.client.remove_network(network)
    return models.RemovedResult(kind="network", removed=network)


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def docker_system_info(
    deps: DockerDeps,
    disk_usage: Annotated[bool, Field(description="include disk usage (slower on large engines)")] = True,
) -> models.SystemInfo:
    """The engine: version, OS, CPUs, memory, storage driver, container and image counts, disk usage."""
    info, version, df = await deps.client.system(disk_usage=disk_usage)
    return models.system_info(deps.client.address, info, version, df)


# -- the server -----------------------------------------------------------------------------

TOOLS = Toolset((
    docker_list_containers,
    docker_inspect_container,
    docker_container_logs,
    docker_container_stats,
    docker_start_container,
    docker_stop_container,
    docker_restart_container,
    docker_remove_container,
    docker_run_container,
    docker_exec,
    docker_list_images,
    docker_inspect_image,
    docker_pull_image,
    docker_remove_image,
    docker_list_volumes,
    docker_create_volume,
    docker_remove_volume,
    docker_list_networks,
    docker_create_network,
    docker_remove_network,
    docker_system_info,
))


def build_server(settings: DockerSettings) -> SophiaServer:
    """The Docker server; the engine is not contacted until the first tool call."""
    server = SophiaServer("docker", settings=settings, instructions=INSTRUCTIONS)
    TOOLS.register(server, DockerDeps(settings=settings, client=DockerClient(settings)))
    return server


def run_request(
    *, mounts: list[MountSpec] | None = None, network: str | None = None, memory_mb: int | None = None,
    cpus: float | None = None, pids_limit: int | None = None, labels: dict[str, str] | None = None,
    privileged: bool = False, cap_add: list[str] | None = None, devices: list[str] | None = None,
    pid_mode: str | None = None, ipc_mode: str | None = None, **_other_arguments: Any,
) -> RunRequest:
    """What the run policy judges, from docker_run_container's arguments (the others are ignored)."""
    return RunRequest(
        privileged=bool(privileged), cap_add=tuple(cap_add or ()), devices=tuple(devices or ()), network=network,
        pid_mode=pid_mode, ipc_mode=ipc_mode, mounts=tuple(mounts or ()), memory_mb=memory_mb, cpus=cpus,
        pids_limit=pids_limit, labels=dict(labels or {}),
    )


def _sdk_mount(mount: MountSpec) -> Any:
    from docker.types import Mount

    return Mount(target=mount.target, source=mount.source, type=mount.type, read_only=mount.read_only)


async def check(settings: DockerSettings) -> str:
    """Config and connectivity: the engine answers, or `unavailable` naming the address tried."""
    client = DockerClient(settings)
    version = await client.ping()
    return f"Docker engine {version} at {client.address}"
