"""What Sophia will and will not let a container do, decided before anything reaches the engine.

Every refusal is a `Forbidden` naming its rule and the setting that controls it (or saying that
no setting relaxes it), so the model can tell the user exactly what an operator would change.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from pydantic import BaseModel, Field
from sophia_shared.errors import Forbidden, InvalidArgument

from sophia_docker.settings import DockerSettings

LABEL_PREFIX = "sophia."
LABEL_CREATED_BY = "sophia.created-by"
LABEL_PRINCIPAL = "sophia.principal"
LABEL_CORRELATION = "sophia.correlation-id"
LABEL_IMAGE = "sophia.image"
CREATED_BY = "sophia-docker"

ENGINE_SOCKET_NAMES = frozenset({"docker.sock", "containerd.sock", "podman.sock", "dockershim.sock"})
WELL_KNOWN_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock")
HOST_MODES = frozenset({"host"})
_N = TypeVar("_N", int, float)
_IMAGE_ID = re.compile(r"^(sha256:)?[0-9a-f]{12,64}$")
_VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class MountSpec(BaseModel):
    """One mount of a container to run."""

    type: Literal["volume", "bind", "tmpfs"] = Field(description="volume, bind (host path) or tmpfs")
    source: str | None = Field(
        default=None,
        max_length=4096,
        description="volume name, or absolute host path for bind; omit for tmpfs",
    )
    target: str = Field(min_length=1, max_length=4096, description="absolute path inside the container")
    read_only: bool = Field(default=False, description="mount read-only")


@dataclass(frozen=True)
class RunRequest:
    """The security-relevant part of a run request (the image is checked on its own, once resolved)."""

    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    network: str | None = None
    pid_mode: str | None = None
    ipc_mode: str | None = None
    mounts: tuple[MountSpec, ...] = ()
    memory_mb: int | None = None
    cpus: float | None = None
    pids_limit: int | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Limits:
    """Limits applied to a container Sophia creates."""

    memory_mb: int
    cpus: float
    pids_limit: int


def refuse(rule: str, message: str, setting: str | None) -> Forbidden:
    """A policy refusal naming its rule and the setting that controls it."""
    control = f"setting {setting} controls it" if setting else "fixed rule: no setting relaxes it"
    return Forbidden(f"policy rule '{rule}': {message} ({control})", data={"rule": rule, "setting": setting})


def normalized_image_names(reference: str) -> set[str]:
    """The forms of an image reference an allow-list pattern may be written against."""
    names = {reference}
    if _IMAGE_ID.match(reference):
        return names
    name, digest = ([*reference.split("@", 1), ""])[:2]
    last = name.rsplit("/", 1)[-1]
    tagged = name if (":" in last or digest) else f"{name}:latest"
    names.add(tagged + (f"@{digest}" if digest else ""))
    first = name.split("/", 1)[0]
    has_registry = "/" in name and ("." in first or ":" in first or first == "localhost")
    if not has_registry:
        path = tagged if "/" in name else f"library/{tagged}"
        names.add(f"docker.io/{path}")
    return names


def check_image(references: tuple[str, ...] | list[str], settings: DockerSettings) -> None:
    """Refuse an image no allow-list pattern matches (an empty allow-list allows any image)."""
    if not settings.allowed_images:
        return
    for reference in references:
        for candidate in normalized_image_names(reference):
            if any(fnmatch.fnmatchcase(candidate, pattern) for pattern in settings.allowed_images):
                return
    shown = references[0] if references else "(untagged image)"
    raise refuse(
        "image_allow_list",
        f"image {shown} matches no allowed image pattern",
        "SOPHIA_DOCKER_ALLOWED_IMAGES",
    )


def _engine_sockets(settings: DockerSettings) -> set[str]:
    sockets = {os.path.realpath(path) for path in WELL_KNOWN_SOCKETS}
    address = settings.engine_address()
    if address.startswith("unix://"):
        sockets.add(os.path.realpath(address.removeprefix("unix://")))
    return sockets


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def check_bind_source(source: str, settings: DockerSettings) -> str:
    """Return the resolved host path of an allowed bind mount, or refuse it.

    Paths are resolved (symlinks followed) before comparing, so a link inside an allowed
    directory cannot point a container at the rest of the host.
    """
    if not os.path.isabs(source):
        raise InvalidArgument(f"bind mount source must be an absolute host path, got {source!r}")
    resolved = os.path.realpath(source)
    sockets = _engine_sockets(settings)
    is_engine_socket = os.path.basename(resolved) in ENGINE_SOCKET_NAMES
    if not is_engine_socket:
        try:
            is_engine_socket = stat.S_ISSOCK(os.stat(resolved).st_mode) and resolved in sockets
        except OSError:
            is_engine_socket = False
    if is_engine_socket or any(_within(sock, resolved) for sock in sockets):
        raise refuse(
            "no_engine_socket",
            f"bind mount {source} exposes the container engine's socket, which is root on the host",
            None,
        )
    allowed = [os.path.realpath(path) for path in settings.allowed_bind_paths]
    if not any(_within(resolved, root) for root in allowed):
        listed = ", ".join(settings.allowed_bind_paths) or "none allowed"
        raise refuse(
            "bind_allow_list",
            f"host path {source} is outside the allowed bind paths ({listed})",
            "SOPHIA_DOCKER_ALLOWED_BIND_PATHS",
        )
    return resolved


def check_mount(mount: MountSpec, settings: DockerSettings) -> MountSpec:
    """Validate one mount; return it with a bind source resolved."""
    if not mount.target.startswith("/"):
        raise InvalidArgument(f"mount target must be an absolute path in the container, got {mount.target!r}")
    if mount.type == "tmpfs":
        if mount.source:
            raise InvalidArgument("a tmpfs mount takes no source; remove `source`")
        return mount
    if not mount.source:
        raise InvalidArgument(f"a {mount.type} mount needs a `source`")
    if mount.type == "volume":
        if not _VOLUME_NAME.match(mount.source):
            raise InvalidArgument(
                f"volume name {mount.source!r} is not a valid volume name "
                "(letters, digits, '_', '.', '-'); for a host path use type 'bind'"
            )
        return mount
    return mount.model_copy(update={"source": check_bind_source(mount.source, settings)})


def check_labels(labels: dict[str, str]) -> None:
    """User labels may not impersonate the labels Sophia sets itself."""
    for key in labels:
        if key.startswith(LABEL_PREFIX):
            raise InvalidArgument(f"label {key!r}: keys starting with '{LABEL_PREFIX}' are reserved for Sophia")


def check_run(request: RunRequest, settings: DockerSettings) -> tuple[Limits, tuple[MountSpec, ...]]:
    """Refuse what the policy forbids; return the limits to apply and the checked mounts."""
    if request.privileged:
        raise refuse("no_privileged", "privileged containers are refused", None)
    if request.cap_add:
        raise refuse("no_cap_add", f"adding capabilities ({', '.join(request.cap_add)}) is refused", None)
    if request.devices:
        raise refuse("no_devices", "passing host devices into a container is refused", None)
    for kind, mode in (("network", request.network), ("pid", request.pid_mode), ("ipc", request.ipc_mode)):
        if mode in HOST_MODES:
            raise refuse("no_host_namespaces", f"the host {kind} namespace is refused", None)
    check_labels(request.labels)
    mounts = tuple(check_mount(mount, settings) for mount in request.mounts)
    limits = Limits(
        memory_mb=_within_max(
            request.memory_mb, settings.default_memory_mb, settings.max_memory_mb, "memory_mb", "MEMORY_MB"
        ),
        cpus=_within_max(request.cpus, settings.default_cpus, settings.max_cpus, "cpus", "CPUS"),
        pids_limit=_within_max(
            request.pids_limit,
            settings.default_pids_limit,
            settings.max_pids_limit,
            "pids_limit",
            "PIDS_LIMIT",
        ),
    )
    return limits, mounts


def _within_max(requested: _N | None, default: _N, maximum: _N, name: str, suffix: str) -> _N:
    if requested is None:
        return min(default, maximum)
    if requested > maximum:
        raise refuse(
            "resource_limits",
            f"{name}={requested} is above the maximum {maximum}",
            f"SOPHIA_DOCKER_MAX_{suffix}",
        )
    return requested


def check_exec(privileged: bool) -> None:
    """An exec may not escalate beyond what its container already has."""
    if privileged:
        raise refuse("no_privileged", "privileged exec is refused", None)


def sophia_labels(principal: str, correlation_id: str | None) -> dict[str, str]:
    """Labels marking what Sophia created and who asked."""
    labels = {LABEL_CREATED_BY: CREATED_BY, LABEL_PRINCIPAL: principal}
    if correlation_id:
        labels[LABEL_CORRELATION] = correlation_id
    return labels
