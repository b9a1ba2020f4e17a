"""The only code that talks to the Docker engine.

The docker SDK is synchronous and slow to import, so it is imported on first use and every call
runs in a worker thread. Engine failures become Sophia errors here, once, so tools never see an
SDK exception.
"""

from __future__ import annotations

import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from sophia_shared.errors import (
    Conflict,
    InvalidArgument,
    NotConfigured,
    NotFound,
    SophiaError,
    ToolTimeout,
    Unavailable,
    UpstreamError,
)
from sophia_shared.redact import redact, sanitize_untrusted

from sophia_docker.settings import DockerSettings, Engine, resolve_engine

if TYPE_CHECKING:
    from docker import APIClient

T = TypeVar("T")
ProgressCallback = Callable[[float, float | None, str], None]

_FRAME_HEADER = 8
_CHUNK = 64 * 1024
_MIN_API = "1.24"
_FIRST_TAIL = 1_000
_MAX_TAIL = 1_000_000


@dataclass(frozen=True)
class CappedOutput:
    """Output kept within a byte cap: the newest bytes when the cap cut it."""

    text: str
    truncated: bool
    bytes_seen: int


@dataclass(frozen=True)
class ExecOutcome:
    """What a finished (or still running) exec produced."""

    output: CappedOutput
    exit_code: int | None
    timed_out: bool


class _TailBuffer:
    """Keeps the newest `limit` bytes of a stream without ever holding more than limit + one chunk."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.seen = 0
        self.dropped = False
        self.last_dropped = b"\n"

    def add(self, data: bytes) -> None:
        if not data:
            return
        self.seen += len(data)
        self.chunks.append(data)
        self.size += len(data)
        while self.size > self.limit:
            excess = self.size - self.limit
            first = self.chunks[0]
            self.dropped = True
            if len(first) <= excess:
                self.chunks.popleft()
                self.size -= len(first)
                self.last_dropped = first[-1:]
            else:
                self.chunks[0] = first[excess:]
                self.size -= excess
                self.last_dropped = first[excess - 1 : excess]

    def result(self, older_exist: bool = False) -> CappedOutput:
        text = b"".join(self.chunks).decode("utf-8", errors="replace")
        if self.dropped and self.last_dropped != b"\n" and "\n" in text:
            # The cut fell inside a line: drop the fragment rather than show half a line.
            text = text.split("\n", 1)[1]
        return CappedOutput(
            text=sanitize_untrusted(redact(text)), truncated=self.dropped or older_exist, bytes_seen=self.seen
        )


def _frames(chunks: Iterator[bytes]) -> Iterator[tuple[bytes, int]]:
    """The engine's multiplexed stdout/stderr stream as (payloads of one read joined, frame count).

    A 100 MB log is a million frames; joining each read's payloads keeps the per-frame work to a
    header parse and a slice.
    """
    pending = b""
    for chunk in chunks:
        pending = pending + chunk if pending else chunk
        offset, size = 0, len(pending)
        payloads: list[bytes] = []
        while size - offset >= _FRAME_HEADER:
            (length,) = struct.unpack_from(">L", pending, offset + 4)
            end = offset + _FRAME_HEADER + length
            if end > size:
                break
            payloads.append(pending[offset + _FRAME_HEADER : end])
            offset = end
        pending = pending[offset:]
        if payloads:
            yield b"".join(payloads), len(payloads)


def _raw(chunks: Iterator[bytes]) -> Iterator[tuple[bytes, int]]:
    """A tty container's log stream (not multiplexed): each read with its line count."""
    for chunk in chunks:
        yield chunk, chunk.count(b"\n")


def _context_tls(docker: Any, engine: Engine) -> Any:
    """TLS from a docker context's files (ca.pem, cert.pem, key.pem), as the CLI uses them."""
    assert engine.tls_dir is not None
    ca, cert, key = (engine.tls_dir / name for name in ("ca.pem", "cert.pem", "key.pem"))
    return docker.tls.TLSConfig(
        client_cert=(str(cert), str(key)) if cert.is_file() and key.is_file() else None,
        ca_cert=str(ca) if ca.is_file() else None, verify=not engine.skip_tls_verify and ca.is_file(),
    )


class DockerClient:
    """A lazily connected engine client; every method is async and raises only SophiaError."""

    def __init__(self, settings: DockerSettings) -> None:
        self._settings = settings
        self._api: APIClient | None = None
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        """The engine address tried, as shown in `unavailable` errors."""
        return self._settings.engine_address()

    @property
    def engine(self) -> str:
        """The engine address and where it came from (a setting, DOCKER_HOST, a docker context)."""
        return resolve_engine(self._settings).label

    def _connect(self) -> APIClient:
        with self._lock:
            if self._api is not None:
                return self._api
            import docker
            import docker.tls
            import docker.utils
            import requests.exceptions

            settings = self._settings
            kwargs: dict[str, Any] = {}
            engine = resolve_engine(settings)
            if engine.source == "DOCKER_HOST":
                kwargs.update(docker.utils.kwargs_from_env())
            else:
                kwargs["base_url"] = engine.address
            try:
                if engine.tls_dir is not None and not settings.tls_ca_cert and not settings.tls_client_cert:
                    kwargs["tls"] = _context_tls(docker, engine)
                if settings.tls_verify or settings.tls_ca_cert or settings.tls_client_cert:
                    client_cert = None
                    if settings.tls_client_cert and settings.tls_client_key:
                        client_cert = (settings.tls_client_cert, settings.tls_client_key)
                    verify = settings.tls_verify if settings.tls_verify is not None else bool(settings.tls_ca_cert)
                    kwargs["tls"] = docker.tls.TLSConfig(
                        client_cert=client_cert, ca_cert=settings.tls_ca_cert, verify=verify
                    )
                kwargs.setdefault("base_url", self.address)
                if str(kwargs["base_url"]).startswith("ssh://"):
                    kwargs["use_ssh_client"] = settings.use_ssh_client
                api = self._open(docker, kwargs)
            except docker.errors.TLSParameterError as exc:
                raise NotConfigured(
                    "the TLS settings are incomplete or name missing files: set SOPHIA_DOCKER_TLS_CA_CERT, "
                    "and SOPHIA_DOCKER_TLS_CLIENT_CERT with SOPHIA_DOCKER_TLS_CLIENT_KEY, to readable PEM files",
                    detail=redact(str(exc)),
                ) from exc
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                raise self._unavailable(exc) from exc
            self._api = api
            return api

    def _open(self, docker: Any, kwargs: dict[str, Any]) -> APIClient:
        """Build the SDK client; with TLS, only the configured CA decides whom to trust.

        requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's own CA file, which
        would make a private engine CA fail verification wherever those are set; so a TLS client
        ignores the environment, and negotiates the API version itself (the SDK's "auto" does it
        inside the constructor, before that could be switched off).
        """
        settings = self._settings
        if "tls" not in kwargs:
            # "auto" asks the engine, so an older engine (API 1.41 on Debian 12) works.
            return docker.APIClient(version=settings.api_version, timeout=settings.timeout_s, **kwargs)
        version = settings.api_version
        if version == "auto":
            probe = docker.APIClient(version=_MIN_API, timeout=settings.timeout_s, **kwargs)
            probe.trust_env = False
            try:
                version = str(probe.version(api_version=False)["ApiVersion"])
            finally:
                probe.close()
        api = docker.APIClient(version=version, timeout=settings.timeout_s, **kwargs)
        api.trust_env = False
        return api

    def _unavailable(self, exc: BaseException) -> Unavailable:
        return Unavailable(
            f"the Docker engine at {self.engine} is unreachable; start it, or set SOPHIA_DOCKER_HOST "
            "(or DOCKER_HOST, or `docker context use`)",
            detail=redact(str(exc)),
            data={"address": self.address},
        )

    def translate(self, exc: BaseException, subject: str) -> SophiaError:
        """Turn an SDK or transport exception into the Sophia error the model can act on."""
        import docker.errors
        import requests.exceptions

        if isinstance(exc, SophiaError):
            return exc
        if isinstance(exc, docker.errors.NotFound):
            return NotFound(f"{subject} not found", detail=_explanation(exc))
        if isinstance(exc, docker.errors.APIError):
            status = exc.status_code or 0
            explanation = _explanation(exc)
            if status == 409:
                return Conflict(f"{subject}: the engine reports a conflict: {explanation}", detail=explanation)
            if status == 400:
                # A 400 is about the caller's own input (a filter, a name), so its text is what
                # the model needs to fix the call; it is sanitised and short.
                return InvalidArgument(f"{subject}: the engine rejected the request: {explanation}")
            return UpstreamError(f"{subject}: the engine failed (HTTP {status})", detail=explanation)
        if isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(
            exc, requests.exceptions.ReadTimeout
        ):
            return self._unavailable(exc)
        if isinstance(exc, requests.exceptions.Timeout):
            return ToolTimeout(
                f"{subject}: the engine at {self.address} did not answer within "
                f"{self._settings.timeout_s:g}s (SOPHIA_DOCKER_TIMEOUT_S)"
            )
        if isinstance(exc, docker.errors.InvalidArgument):
            return InvalidArgument(f"{subject}: {sanitize_untrusted(str(exc))[:300]}")
        if isinstance(exc, docker.errors.DockerException | OSError):
            return UpstreamError(f"{subject}: the engine call failed", detail=redact(str(exc)))
        raise exc

    async def run(self, subject: str, fn: Callable[[APIClient], T]) -> T:
        """Run one synchronous SDK call in a worker thread, translating its failures."""

        def call() -> T:
            api = self._connect()
            try:
                return fn(api)
            except Exception as exc:
                raise self.translate(exc, subject) from exc

        # A cancelled call (client gone, deadline hit) returns at once; the worker thread ends on
        # its own when the engine answers or the SDK's timeout expires.
        return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)

    # -- containers -------------------------------------------------------------------------

    async def list_containers(self, *, all_states: bool, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        """Container summaries, newest first (one engine call, no per-container inspect)."""
        return await self.run("list containers", lambda api: api.containers(all=all_states, filters=filters))

    async def inspect_container(self, ref: str) -> dict[str, Any]:
        """The engine's full inspect document of one container."""
        return await self.run(f"container {ref!r}", lambda api: api.inspect_container(ref))

    async def logs(
        self,
        ref: str,
        *,
        stdout: bool,
        stderr: bool,
        tail: int | None,
        since: float | None,
        until: float | None,
        timestamps: bool,
        max_bytes: int,
    ) -> CappedOutput:
        """A container's logs, newest `max_bytes` kept, read in chunks so memory stays bounded.

        For the whole log (tail=None) the engine is asked for ever longer tails until the cap is
        filled or the log is exhausted: the engine reads a tail backwards from the end of its log
        file, so the newest 64 KB of a 100 MB log cost one short read instead of all 100 MB. With
        `until` or one stream only, the newest entries may all be filtered out, so the log is read
        from the start.
        """
        deadline = self._settings.timeout_s

        def read_tail(api: APIClient, container_id: str, tty: bool, lines: int | None) -> tuple[_TailBuffer, int]:
            params: dict[str, Any] = {
                "stdout": int(stdout),
                "stderr": int(stderr),
                "timestamps": int(timestamps),
                "follow": 0,
                "tail": "all" if lines is None else str(lines),
            }
            if since is not None:
                params["since"] = since
            if until is not None:
                params["until"] = until
            # The SDK's streaming helper reads tty logs one byte per call; reading 64 KiB chunks
            # and parsing frames here keeps a 100 MB log to seconds and constant memory.
            response = api._get(api._url("/containers/{0}/logs", container_id), params=params, stream=True)
            try:
                api._raise_for_status(response)
                buffer = _TailBuffer(max_bytes)
                entries = 0
                started = time.monotonic()
                chunks: Iterator[bytes] = response.iter_content(chunk_size=_CHUNK)
                for payload, count in _raw(chunks) if tty else _frames(chunks):
                    buffer.add(payload)
                    entries += count
                    if time.monotonic() - started > deadline:
                        raise ToolTimeout(
                            f"container {ref!r}: reading logs took longer than {deadline:g}s; "
                            "narrow them with tail, since or until"
                        )
                return buffer, entries
            finally:
                response.close()

        def read(api: APIClient) -> CappedOutput:
            info = api.inspect_container(ref)
            tty = bool(info.get("Config", {}).get("Tty"))
            # The engine counts a tail over both streams before filtering by stream and `until`,
            # so a short tail proves the log exhausted only without those filters.
            if tail is not None or until is not None or not (stdout and stderr):
                return read_tail(api, info["Id"], tty, tail)[0].result()
            lines = max(_FIRST_TAIL, max_bytes // 64)
            while lines <= _MAX_TAIL:
                buffer, entries = read_tail(api, info["Id"], tty, lines)
                if entries < lines:
                    return buffer.result()
                if buffer.seen >= max_bytes:
                    # The cap is filled and older entries exist beyond this tail: that is a cut.
                    return buffer.result(older_exist=True)
                lines *= 8
            return read_tail(api, info["Id"], tty, None)[0].result()

        return await self.run(f"container {ref!r}", read)

    async def stats(self, ref: str) -> dict[str, Any]:
        """One stats sample (the engine takes two readings about a second apart for CPU usage)."""
        return await self.run(f"container {ref!r}", lambda api: api.stats(ref, stream=False))

    async def start(self, ref: str) -> None:
        """Start a container (a running one stays running)."""
        await self.run(f"container {ref!r}", lambda api: api.start(ref))

    async def stop(self, ref: str, timeout_s: int) -> None:
        """Stop a container, killing it after `timeout_s`."""
        # The SDK adds the grace period to its HTTP timeout, so a slow stop is not a false timeout.
        await self.run(f"container {ref!r}", lambda api: api.stop(ref, timeout=timeout_s))

    async def restart(self, ref: str, timeout_s: int) -> None:
        """Restart a container, killing it after `timeout_s` if it does not stop."""
        await self.run(f"container {ref!r}", lambda api: api.restart(ref, timeout=timeout_s))

    async def remove_container(self, ref: str, *, force: bool, volumes: bool) -> None:
        """Remove a container."""
        await self.run(f"container {ref!r}", lambda api: api.remove_container(ref, force=force, v=volumes))

    async def create_and_start(self, spec: dict[str, Any], host_config: dict[str, Any]) -> dict[str, Any]:
        """Create a container from a checked spec and start it; return its inspect document."""
        import docker.errors

        def create(api: APIClient) -> dict[str, Any]:
            config = api.create_host_config(**host_config)
            created: dict[str, Any] = {}
            try:
                created = api.create_container(host_config=config, **spec)
                api.start(created["Id"])
            except Exception as exc:
                if created:
                    # A container that cannot start is not left behind as clutter.
                    api.remove_container(created["Id"], force=True)
                if isinstance(exc, docker.errors.NotFound):
                    # The image was resolved just before, so this names something the caller
                    # asked for that does not exist (a network, most often): worth showing.
                    raise NotFound(f"cannot start the container: {_explanation(exc)}") from exc
                raise
            inspected: dict[str, Any] = api.inspect_container(created["Id"])
            inspected["Warnings"] = created.get("Warnings") or []
            return inspected

        return await self.run("new container", create)

    async def wait(self, ref: str, timeout_s: float) -> int | None:
        """The exit code once the container exits, or None if it is still running after `timeout_s`."""
        import requests.exceptions

        def wait(api: APIClient) -> int | None:
            try:
                result = api.wait(ref, timeout=timeout_s)
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
                if "timed out" in str(exc).lower():
                    return None
                raise
            return int(result.get("StatusCode", -1))

        return await self.run(f"container {ref!r}", wait)

    async def exec(
        self,
        ref: str,
        command: list[str],
        *,
        user: str | None,
        workdir: str | None,
        env: dict[str, str],
        timeout_s: float,
        max_bytes: int,
    ) -> ExecOutcome:
        """Run a command in a running container; output capped, the wait bounded by `timeout_s`."""

        def start(api: APIClient) -> tuple[str, Any]:
            created = api.exec_create(
                ref,
                command,
                stdout=True,
                stderr=True,
                user=user or "",
                workdir=workdir,
                environment=env or None,
                privileged=False,
            )
            return created["Id"], api.exec_start(created["Id"], stream=True)

        exec_id, stream = await self.run(f"container {ref!r}", start)
        buffer = _TailBuffer(max_bytes)

        def drain() -> None:
            for chunk in stream:
                buffer.add(chunk)

        timed_out = False
        with anyio.move_on_after(timeout_s) as scope:
            await anyio.to_thread.run_sync(drain, abandon_on_cancel=True)
        if scope.cancelled_caught:
            timed_out = True
            # Closing the stream from here unblocks the reader thread, which then ends.
            await anyio.to_thread.run_sync(stream.close)
        inspected = await self.run(f"exec in {ref!r}", lambda api: api.exec_inspect(exec_id))
        exit_code = None if inspected.get("Running") else inspected.get("ExitCode")
        return ExecOutcome(output=buffer.result(), exit_code=exit_code, timed_out=timed_out)

    # -- images -----------------------------------------------------------------------------

    async def list_images(self, *, name: str | None, all_layers: bool, filters: dict[str, Any]) -> list[dict[str, Any]]:
        """Image summaries."""
        return await self.run("list images", lambda api: api.images(name=name, all=all_layers, filters=filters))

    async def inspect_image(self, ref: str) -> dict[str, Any]:
        """The engine's inspect document of one image."""
        return await self.run(f"image {ref!r}", lambda api: api.inspect_image(ref))

    async def pull(self, reference: str, progress: ProgressCallback) -> dict[str, Any]:
        """Pull an image, reporting progress per layer; return the pulled image's inspect document."""
        from docker.utils import parse_repository_tag

        repository, tag = parse_repository_tag(reference)
        if not tag:
            tag = "latest"
        wanted = f"{repository}@{tag}" if tag.startswith("sha256:") else f"{repository}:{tag}"

        def pull(api: APIClient) -> dict[str, Any]:
            layers: dict[str, str] = {}
            last = "pulled"
            for event in api.pull(repository, tag=tag, stream=True, decode=True):
                if "error" in event:
                    message = str(event.get("error", ""))
                    if "not found" in message.lower() or "manifest unknown" in message.lower():
                        raise NotFound(f"image {reference!r} not found in its registry", detail=message)
                    raise UpstreamError(f"pulling {reference!r} failed", detail=redact(message))
                layer = event.get("id")
                status = str(event.get("status", ""))
                last = status or last
                if layer and status and layer != tag:
                    before = layers.get(layer)
                    layers[layer] = status
                    if status != before and status in ("Pull complete", "Already exists", "Download complete"):
                        done = sum(1 for s in layers.values() if s in ("Pull complete", "Already exists"))
                        progress(float(done), float(len(layers)), f"{layer}: {status}")
            # Always end on done == total, also when every layer was already present.
            total = float(max(len(layers), 1))
            progress(total, total, sanitize_untrusted(last)[:200])
            return dict(api.inspect_image(wanted))

        return await self.run(f"image {reference!r}", pull)

    async def remove_image(self, ref: str, *, force: bool) -> list[dict[str, Any]]:
        """Remove an image (untag and delete the layers no other image uses)."""
        return await self.run(f"image {ref!r}", lambda api: api.remove_image(ref, force=force) or [])

    # -- volumes and networks ---------------------------------------------------------------

    async def list_volumes(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        """Volume summaries."""

        def volumes(api: APIClient) -> list[dict[str, Any]]:
            return list((api.volumes(filters=filters) or {}).get("Volumes") or [])

        return await self.run("list volumes", volumes)

    async def create_volume(self, name: str, labels: dict[str, str]) -> dict[str, Any]:
        """Create a local volume (driver options are never passed: they can bind host paths)."""
        return await self.run(
            f"volume {name!r}", lambda api: api.create_volume(name=name, driver="local", labels=labels)
        )

    async def remove_volume(self, name: str, *, force: bool) -> None:
        """Remove a volume."""
        await self.run(f"volume {name!r}", lambda api: api.remove_volume(name, force=force))

    async def list_networks(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        """Network summaries."""
        return await self.run("list networks", lambda api: api.networks(filters=filters))

    async def create_network(self, name: str, *, internal: bool, labels: dict[str, str]) -> dict[str, Any]:
        """Create a bridge network and return its inspect document."""

        def create(api: APIClient) -> dict[str, Any]:
            existing = api.networks(names=[name])
            if any(net.get("Name") == name for net in existing):
                raise Conflict(f"network {name!r} already exists")
            created = api.create_network(name, driver="bridge", internal=internal, labels=labels)
            return dict(api.inspect_network(created["Id"]))

        return await self.run(f"network {name!r}", create)

    async def inspect_network(self, ref: str) -> dict[str, Any]:
        """The engine's inspect document of one network."""
        return await self.run(f"network {ref!r}", lambda api: api.inspect_network(ref))

    async def remove_network(self, ref: str) -> None:
        """Remove a network."""
        await self.run(f"network {ref!r}", lambda api: api.remove_network(ref))

    # -- engine -----------------------------------------------------------------------------

    async def system(self, *, disk_usage: bool) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
        """Engine info, version and (optionally, it is slower) disk usage."""

        def read(api: APIClient) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
            return api.info(), api.version(), (api.df() if disk_usage else None)

        return await self.run("engine info", read)

    async def ping(self) -> str:
        """The engine's version, proving it answers."""

        def ping(api: APIClient) -> str:
            return str(api.version().get("Version", "unknown"))

        return await self.run("engine", ping)


def _explanation(exc: Any) -> str:
    text = str(getattr(exc, "explanation", None) or exc)
    return sanitize_untrusted(redact(text))[:300]
