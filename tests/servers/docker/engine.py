"""A real dockerd and a real registry, started for tests and the benchmark, stopped by PID.

dockerd runs with its own data-root, exec-root and socket and without touching the host's
network (no iptables, no default bridge), so it never disturbs a system engine. Readiness is
taken from each daemon's own "listening" log line, waited for with a deadline.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

BUSYBOX = "/usr/bin/busybox"
APPLETS = ("sh", "echo", "sleep", "cat", "yes", "head", "env", "id", "ls", "true", "false", "dd", "seq", "nc")
TEST_IMAGE = "sophia-test/busybox:1"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class EngineUnavailable(RuntimeError):
    """dockerd (or the registry) is not installed or could not start on this machine."""


@dataclass
class Daemon:
    """A started daemon: its PID and where its output went."""

    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, extra_pids: tuple[int, ...] = ()) -> None:
        """SIGTERM by PID, bounded wait, SIGKILL by PID if it will not go."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
        for pid in extra_pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for a TLS-verified engine listener and its client."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@dataclass
class Engine:
    """A running dockerd."""

    daemon: Daemon
    socket_path: Path
    exec_root: Path
    tcp_url: str | None = None
    tls: TlsFiles | None = None

    @property
    def url(self) -> str:
        """The engine address for DOCKER_HOST / SOPHIA_DOCKER_HOST."""
        return f"unix://{self.socket_path}"

    def stop(self) -> None:
        """Stop dockerd; its managed containerd goes with it (killed by PID if it lingers)."""
        containerd_pid = self.exec_root / "containerd" / "containerd.pid"
        leftover: tuple[int, ...] = ()
        if containerd_pid.exists():
            leftover = (int(containerd_pid.read_text().strip() or 0),)
        self.daemon.stop()
        alive = tuple(pid for pid in leftover if pid and _alive(pid))
        if alive:
            self.daemon.stop(alive)
        shutil.rmtree(self.exec_root, ignore_errors=True)


@dataclass
class Registry:
    """A running docker-registry on 127.0.0.1."""

    daemon: Daemon
    port: int

    @property
    def address(self) -> str:
        """host:port, as it appears in image references."""
        return f"127.0.0.1:{self.port}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it if the test process dies without stopping it (Linux)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _spawn_until(argv: list[str], log: Path, ready_marker: str) -> Daemon:
    """Start a daemon and wait (bounded) for `ready_marker` in its output."""
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent
    )
    ready = threading.Event()
    assert process.stdout is not None

    def forward(stream: IO[bytes]) -> None:
        with log.open("ab") as sink:
            for line in stream:
                sink.write(line)
                sink.flush()
                if ready_marker.encode() in line:
                    ready.set()

    threading.Thread(target=forward, args=(process.stdout,), daemon=True).start()
    daemon = Daemon(process, log)
    if not ready.wait(timeout=START_TIMEOUT_S) or process.poll() is not None:
        daemon.stop()
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise EngineUnavailable(f"{argv[0]} did not become ready ({ready_marker!r}); log tail:\n{tail}")
    return daemon


def start_engine(data_dir: Path, short: Path | None = None, tls: TlsFiles | None = None) -> Engine:
    """Start a private dockerd: data under `data_dir`, exec-root and socket under a short /tmp dir.

    Passing the `short` dir of an engine stopped earlier restarts it at the same socket path.
    With `tls`, it also listens on 127.0.0.1 over TCP with TLS, client certificates required.
    """
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise EngineUnavailable("dockerd is not installed (apt-get install docker.io; `make test-deps`)")
    # The exec-root holds Unix sockets whose paths must stay under 108 bytes.
    if short is None:
        short = Path(tempfile.mkdtemp(prefix="sd", dir="/tmp"))
    short.mkdir(exist_ok=True)
    socket_path = short / "d.sock"
    argv = [
        dockerd,
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        "--data-root",
        str(data_dir / "data"),
        "--exec-root",
        str(short / "x"),
        "-H",
        f"unix://{socket_path}",
        "--pidfile",
        str(short / "d.pid"),
    ]
    tcp_url = None
    if tls is not None:
        tcp_url = f"tcp://127.0.0.1:{free_port()}"
        argv += ["-H", tcp_url, "--tlsverify", "--tlscacert", str(tls.ca), "--tlscert", str(tls.server_cert)]
        argv += ["--tlskey", str(tls.server_key)]
    daemon = _spawn_until(argv, data_dir / "dockerd.log", "API listen on")
    return Engine(daemon, socket_path, short, tcp_url, tls)


def make_tls_files(directory: Path) -> TlsFiles:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def issue(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
        extensions: list[tuple[x509.ExtensionType, bool]],
    ) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        issuer_name, issuer_key = issuer or (name, key)
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(issuer_key, hashes.SHA256())

    def write(path: Path, cert: x509.Certificate | None = None, key: ec.EllipticCurvePrivateKey | None = None) -> Path:
        if cert is not None:
            path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            path.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
            path.chmod(0o600)
        return path

    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = issue("sophia-test-ca", ca_key, None, [(x509.BasicConstraints(ca=True, path_length=None), True)])
    ca_name = ca.subject
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = issue(
        "127.0.0.1", server_key, (ca_name, ca_key),
        [
            (x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        ],
    )  # fmt: skip
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = issue(
        "sophia-test-client", client_key, (ca_name, ca_key),
        [(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)],
    )  # fmt: skip
    return TlsFiles(
        ca=write(directory / "ca.pem", ca),
        server_cert=write(directory / "server-cert.pem", server),
        server_key=write(directory / "server-key.pem", key=server_key),
        client_cert=write(directory / "cert.pem", client),
        client_key=write(directory / "key.pem", key=client_key),
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_registry(data_dir: Path) -> Registry:
    """Start Debian's docker-registry on a free 127.0.0.1 port with its own config and storage."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise EngineUnavailable("docker-registry is not installed (apt-get install docker-registry)")
    port = free_port()
    storage = data_dir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = data_dir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    daemon = _spawn_until([binary, "serve", str(config)], data_dir / "registry.log", "listening on")
    return Registry(daemon, port)


def busybox_rootfs(extra: dict[str, bytes] | None = None) -> bytes:
    """A minimal root filesystem: busybox-static, the applets the tests use, and any `extra` files."""
    if not Path(BUSYBOX).exists():
        raise EngineUnavailable("busybox-static is not installed (apt-get install busybox-static)")
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for directory in ("bin", "tmp", "data"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
        for path, content in (extra or {}).items():
            info = tarfile.TarInfo(path)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return data.getvalue()


def import_image(api: Any, reference: str = TEST_IMAGE, extra: dict[str, bytes] | None = None) -> str:
    """`docker import` the busybox rootfs as `reference`; return the image id."""
    repository, tag = reference.rsplit(":", 1)
    api.import_image_from_data(
        busybox_rootfs(extra), repository=repository, tag=tag, changes=['CMD ["/bin/sh"]', "ENV PATH=/bin"]
    )
    return str(api.inspect_image(reference)["Id"])


def push_to_registry(api: Any, local: str, remote: str) -> None:
    """Push `local` to the registry as `remote`, then drop both local tags (and so its layer)."""
    repository, tag = remote.rsplit(":", 1)
    api.tag(local, repository, tag)
    for event in api.push(repository, tag=tag, stream=True, decode=True):
        if "error" in event:
            raise EngineUnavailable(f"push to the local registry failed: {event['error']}")
    api.remove_image(remote)
    api.remove_image(local)


@contextmanager
def running_engine(data_dir: Path) -> Iterator[Engine]:
    """A dockerd for the length of the block."""
    engine = start_engine(data_dir)
    try:
        yield engine
    finally:
        engine.stop()
