"""Tool outputs: minimal projections of the engine's documents.

The engine's inspect documents run to hundreds of fields; a model needs a dozen. Environment
values are never returned (they routinely hold credentials): only their names.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from sophia_shared import paging
from sophia_shared.redact import redact, sanitize_untrusted

MAX_LABELS = 50
MAX_NAMES = 100


def short_id(value: str | None) -> str:
    """The 12-character id the docker CLI shows."""
    return (value or "").removeprefix("sha256:")[:12]


def iso(value: Any) -> str | None:
    """An engine timestamp (unix seconds or RFC 3339) as RFC 3339 UTC, None for the zero time."""
    if value in (None, "", 0):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")
    text = str(value)
    return None if text.startswith("0001-01-01") else text


def mb(value: Any) -> float | None:
    """Bytes as megabytes (MiB), rounded."""
    if value is None or value < 0:
        return None
    return round(float(value) / (1024 * 1024), 2)


def _labels(labels: dict[str, str] | None) -> dict[str, str]:
    items = sorted((labels or {}).items())[:MAX_LABELS]
    return {key: sanitize_untrusted(redact(value))[:300] for key, value in items}


def _env_names(env: list[str] | None) -> list[str]:
    return [item.split("=", 1)[0] for item in (env or [])][:MAX_NAMES]


class Page(paging.Page):
    """A page of a list result (the shared envelope), and the engine it came from."""

    engine: str = Field(default="", description="the engine read, and where its address came from")


class ContainerSummary(BaseModel):
    id: str
    name: str
    image: str
    state: str
    status: str
    created: str | None


class ContainerList(Page):
    containers: list[ContainerSummary]


def container_summary(raw: dict[str, Any]) -> ContainerSummary:
    """Project one entry of the engine's container list."""
    names = raw.get("Names") or []
    return ContainerSummary(
        id=short_id(raw.get("Id")),
        name=(names[0] if names else "").lstrip("/"),
        image=str(raw.get("Image", "")),
        state=str(raw.get("State", "")),
        status=str(raw.get("Status", "")),
        created=iso(raw.get("Created")),
    )


class ContainerState(BaseModel):
    status: str
    running: bool
    exit_code: int | None
    oom_killed: bool
    error: str | None
    started_at: str | None
    finished_at: str | None
    restart_count: int
    health: str | None


class MountInfo(BaseModel):
    type: str
    source: str | None
    destination: str
    read_only: bool


class NetworkAttachment(BaseModel):
    network: str
    ip_address: str | None


class ResourceLimits(BaseModel):
    memory_mb: float | None = Field(description="memory limit; null means unlimited")
    cpus: float | None = Field(description="CPU limit in cores; null means unlimited")
    pids_limit: int | None = Field(description="process limit; null means unlimited")


class ContainerDetail(BaseModel):
    id: str
    name: str
    image: str
    image_id: str
    created: str | None
    command: list[str]
    entrypoint: list[str]
    working_dir: str | None
    user: str | None
    env_names: list[str] = Field(description="environment variable names; values are never returned")
    labels: dict[str, str]
    state: ContainerState
    restart_policy: str | None
    mounts: list[MountInfo]
    networks: list[NetworkAttachment]
    network_mode: str | None
    ports: list[str]
    limits: ResourceLimits
    privileged: bool
    cap_add: list[str]
    created_by_sophia: bool


def limits_of(host_config: dict[str, Any]) -> ResourceLimits:
    """The resource limits in a container's HostConfig."""
    nano = host_config.get("NanoCpus") or 0
    quota, period = host_config.get("CpuQuota") or 0, host_config.get("CpuPeriod") or 0
    cpus = nano / 1e9 if nano else (quota / period if quota and period else None)
    pids = host_config.get("PidsLimit")
    return ResourceLimits(
        memory_mb=mb(host_config.get("Memory")) if host_config.get("Memory") else None,
        cpus=round(cpus, 3) if cpus else None,
        pids_limit=pids if pids and pids > 0 else None,
    )


def container_detail(raw: dict[str, Any]) -> ContainerDetail:
    """Project the engine's container inspect document."""
    config = raw.get("Config") or {}
    host = raw.get("HostConfig") or {}
    state = raw.get("State") or {}
    health = (state.get("Health") or {}).get("Status")
    ports: list[str] = []
    for port, bindings in sorted(((raw.get("NetworkSettings") or {}).get("Ports") or {}).items()):
        if not bindings:
            ports.append(port)
        for binding in bindings or []:
            ports.append(f"{binding.get('HostIp') or '*'}:{binding.get('HostPort')}->{port}")
    networks = ((raw.get("NetworkSettings") or {}).get("Networks") or {}).items()
    restart = host.get("RestartPolicy") or {}
    labels = config.get("Labels") or {}
    command = config.get("Cmd") or []
    entrypoint = config.get("Entrypoint") or []
    return ContainerDetail(
        id=short_id(raw.get("Id")),
        name=str(raw.get("Name", "")).lstrip("/"),
        image=str(config.get("Image", "")),
        image_id=short_id(raw.get("Image")),
        created=iso(raw.get("Created")),
        command=[redact(part) for part in (command if isinstance(command, list) else [command])][:MAX_NAMES],
        entrypoint=list(entrypoint if isinstance(entrypoint, list) else [entrypoint])[:MAX_NAMES],
        working_dir=config.get("WorkingDir") or None,
        user=config.get("User") or None,
        env_names=_env_names(config.get("Env")),
        labels=_labels(labels),
        state=ContainerState(
            status=str(state.get("Status", "")),
            running=bool(state.get("Running")),
            exit_code=state.get("ExitCode"),
            oom_killed=bool(state.get("OOMKilled")),
            error=sanitize_untrusted(str(state.get("Error")))[:300] if state.get("Error") else None,
            started_at=iso(state.get("StartedAt")),
            finished_at=iso(state.get("FinishedAt")),
            restart_count=int(raw.get("RestartCount") or 0),
            health=health,
        ),
        restart_policy=restart.get("Name") or None,
        mounts=[
            MountInfo(
                type=str(m.get("Type", "")),
                source=m.get("Name") if m.get("Type") == "volume" else m.get("Source"),
                destination=str(m.get("Destination", "")),
                read_only=not m.get("RW", True),
            )
            for m in (raw.get("Mounts") or [])
        ][:MAX_NAMES],
        networks=[
            NetworkAttachment(network=name, ip_address=(net or {}).get("IPAddress") or None) for name, net in networks
        ],
        network_mode=host.get("NetworkMode") or None,
        ports=ports[:MAX_NAMES],
        limits=limits_of(host),
        privileged=bool(host.get("Privileged")),
        cap_add=list(host.get("CapAdd") or []),
        created_by_sophia="sophia.created-by" in labels,
    )


class LogsResult(BaseModel):
    container: str
    logs: str = Field(description="the log text, newest last; secrets redacted")
    lines: int
    truncated: bool = Field(description="true when older output was cut to stay within max_bytes")
    bytes_read: int = Field(description="bytes the engine sent for this request")


class StatsResult(BaseModel):
    container: str
    running: bool
    cpu_percent: float | None = Field(description="percent of one core (200 = two full cores)")
    memory_usage_mb: float | None
    memory_limit_mb: float | None
    memory_percent: float | None
    pids: int | None
    net_rx_bytes: int | None
    net_tx_bytes: int | None
    block_read_bytes: int | None
    block_write_bytes: int | None


def stats_result(ref: str, running: bool, raw: dict[str, Any]) -> StatsResult:
    """Project one engine stats sample into the numbers `docker stats` shows."""
    cpu, pre = raw.get("cpu_stats") or {}, raw.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get("total_usage", 0)
    system_delta = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    cpu_percent = round(cpu_delta / system_delta * online * 100, 2) if system_delta > 0 and running else None
    memory = raw.get("memory_stats") or {}
    usage, limit = memory.get("usage"), memory.get("limit")
    # As `docker stats` does: page cache the kernel can drop is not counted as used.
    detail = memory.get("stats") or {}
    cache = detail.get("total_inactive_file", detail.get("inactive_file", detail.get("cache", 0))) or 0
    used = usage - cache if usage is not None else None
    networks = (raw.get("networks") or {}).values()
    blkio = (raw.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    return StatsResult(
        container=ref,
        running=running,
        cpu_percent=cpu_percent,
        memory_usage_mb=mb(used) if running else None,
        memory_limit_mb=mb(limit) if running else None,
        memory_percent=round(used / limit * 100, 2) if running and used is not None and limit else None,
        pids=(raw.get("pids_stats") or {}).get("current") if running else None,
        net_rx_bytes=sum(int(n.get("rx_bytes", 0)) for n in networks) if networks else None,
        net_tx_bytes=sum(int(n.get("tx_bytes", 0)) for n in networks) if networks else None,
        block_read_bytes=sum(int(e.get("value", 0)) for e in blkio if e.get("op", "").lower() == "read")
        if running
        else None,
        block_write_bytes=sum(int(e.get("value", 0)) for e in blkio if e.get("op", "").lower() == "write")
        if running
        else None,
    )


class ContainerAction(BaseModel):
    container: str
    id: str
    action: str
    state: str = Field(description="the container's state after the action")


class RemovedResult(BaseModel):
    kind: str
    removed: str


class RunResult(BaseModel):
    id: str
    name: str
    image: str
    state: str
    limits: ResourceLimits
    labels: dict[str, str] = Field(description="the labels Sophia set (who asked, which call)")
    warnings: list[str]
    exit_code: int | None = Field(default=None, description="set when wait_s was given and it exited")
    logs: str | None = Field(default=None, description="output so far, when wait_s was given")
    logs_truncated: bool = False


class ExecResult(BaseModel):
    container: str
    exit_code: int | None = Field(description="null when the command was still running at the timeout")
    output: str = Field(description="stdout and stderr interleaved; secrets redacted")
    truncated: bool
    timed_out: bool


class ImageSummary(BaseModel):
    id: str
    tags: list[str]
    size_mb: float | None
    created: str | None


class ImageList(Page):
    images: list[ImageSummary]


def image_summary(raw: dict[str, Any]) -> ImageSummary:
    """Project one entry of the engine's image list."""
    tags = [tag for tag in (raw.get("RepoTags") or []) if tag != "<none>:<none>"]
    return ImageSummary(
        id=short_id(raw.get("Id")), tags=tags[:MAX_NAMES], size_mb=mb(raw.get("Size")), created=iso(raw.get("Created"))
    )


class ImageDetail(BaseModel):
    id: str
    tags: list[str]
    digests: list[str]
    created: str | None
    size_mb: float | None
    architecture: str | None
    os: str | None
    command: list[str]
    entrypoint: list[str]
    env_names: list[str] = Field(description="environment variable names; values are never returned")
    exposed_ports: list[str]
    labels: dict[str, str]
    user: str | None
    working_dir: str | None


def image_detail(raw: dict[str, Any]) -> ImageDetail:
    """Project the engine's image inspect document."""
    config = raw.get("Config") or {}
    return ImageDetail(
        id=short_id(raw.get("Id")),
        tags=list(raw.get("RepoTags") or [])[:MAX_NAMES],
        digests=list(raw.get("RepoDigests") or [])[:MAX_NAMES],
        created=iso(raw.get("Created")),
        size_mb=mb(raw.get("Size")),
        architecture=raw.get("Architecture"),
        os=raw.get("Os"),
        command=list(config.get("Cmd") or [])[:MAX_NAMES],
        entrypoint=list(config.get("Entrypoint") or [])[:MAX_NAMES],
        env_names=_env_names(config.get("Env")),
        exposed_ports=sorted(config.get("ExposedPorts") or {})[:MAX_NAMES],
        labels=_labels(config.get("Labels")),
        user=config.get("User") or None,
        working_dir=config.get("WorkingDir") or None,
    )


class ImageRemoved(BaseModel):
    image: str
    untagged: list[str]
    deleted: list[str]


class VolumeSummary(BaseModel):
    name: str
    driver: str
    created: str | None
    labels: dict[str, str]


class VolumeList(Page):
    volumes: list[VolumeSummary]


def volume_summary(raw: dict[str, Any]) -> VolumeSummary:
    """Project one volume."""
    return VolumeSummary(
        name=str(raw.get("Name", "")),
        driver=str(raw.get("Driver", "")),
        created=iso(raw.get("CreatedAt")),
        labels=_labels(raw.get("Labels")),
    )


class NetworkSummary(BaseModel):
    id: str
    name: str
    driver: str
    scope: str
    internal: bool
    created: str | None
    labels: dict[str, str]


class NetworkList(Page):
    networks: list[NetworkSummary]


def network_summary(raw: dict[str, Any]) -> NetworkSummary:
    """Project one network."""
    return NetworkSummary(
        id=short_id(raw.get("Id")),
        name=str(raw.get("Name", "")),
        driver=str(raw.get("Driver", "")),
        scope=str(raw.get("Scope", "")),
        internal=bool(raw.get("Internal")),
        created=iso(raw.get("Created")),
        labels=_labels(raw.get("Labels")),
    )


class DiskUsage(BaseModel):
    images: int
    images_mb: float | None
    containers: int
    containers_mb: float | None
    volumes: int
    volumes_mb: float | None
    build_cache_mb: float | None


class SystemInfo(BaseModel):
    engine_address: str
    server_version: str | None
    api_version: str | None
    os: str | None
    kernel: str | None
    architecture: str | None
    cpus: int | None
    memory_mb: float | None
    storage_driver: str | None
    cgroup_version: str | None
    containers: int
    running: int
    paused: int
    stopped: int
    images: int
    disk_usage: DiskUsage | None


def system_info(address: str, info: dict[str, Any], version: dict[str, Any], df: dict[str, Any] | None) -> SystemInfo:
    """Project engine info, version and disk usage."""
    usage = None
    if df is not None:
        volumes = df.get("Volumes") or []
        usage = DiskUsage(
            images=len(df.get("Images") or []),
            images_mb=mb(df.get("LayersSize")),
            containers=len(df.get("Containers") or []),
            containers_mb=mb(sum(int(c.get("SizeRw") or 0) for c in df.get("Containers") or [])),
            volumes=len(volumes),
            volumes_mb=mb(sum(max(int((v.get("UsageData") or {}).get("Size") or 0), 0) for v in volumes)),
            build_cache_mb=mb(sum(int(b.get("Size") or 0) for b in df.get("BuildCache") or [])),
        )
    return SystemInfo(
        engine_address=address,
        server_version=version.get("Version"),
        api_version=version.get("ApiVersion"),
        os=info.get("OperatingSystem"),
        kernel=info.get("KernelVersion"),
        architecture=info.get("Architecture"),
        cpus=info.get("NCPU"),
        memory_mb=mb(info.get("MemTotal")),
        storage_driver=info.get("Driver"),
        cgroup_version=info.get("CgroupVersion"),
        containers=int(info.get("Containers") or 0),
        running=int(info.get("ContainersRunning") or 0),
        paused=int(info.get("ContainersPaused") or 0),
        stopped=int(info.get("ContainersStopped") or 0),
        images=int(info.get("Images") or 0),
        disk_usage=usage,
    )
