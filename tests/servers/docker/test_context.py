"""The engine the user already uses: DOCKER_HOST and the current docker context, against the private dockerd.

The docker SDK reads DOCKER_HOST but not docker contexts, so the server reads the context's
meta.json (and its TLS files) itself, laid out as the docker CLI writes them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import anyio
import pytest
from servers.docker.engine import Engine, TlsFiles
from sophia_docker.settings import DockerSettings, resolve_engine
from sophia_docker.tools import build_server
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect, structured

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def _context(config_dir: Path, name: str, host: str, tls: TlsFiles | None = None, current: bool = True) -> None:
    """A docker context as `docker context create NAME --docker host=HOST[,ca=…,cert=…,key=…]` writes it."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta = config_dir / "contexts" / "meta" / digest
    meta.mkdir(parents=True)
    endpoint = {"Host": host, "SkipTLSVerify": False}
    (meta / "meta.json").write_text(json.dumps({"Name": name, "Metadata": {}, "Endpoints": {"docker": endpoint}}))
    if tls is not None:
        tls_dir = config_dir / "contexts" / "tls" / digest / "docker"
        tls_dir.mkdir(parents=True)
        for source, target in ((tls.ca, "ca.pem"), (tls.client_cert, "cert.pem"), (tls.client_key, "key.pem")):
            shutil.copy(source, tls_dir / target)
    if current:
        (config_dir / "config.json").write_text(json.dumps({"auths": {}, "currentContext": name}))


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config_dir = tmp_path / "dot-docker"
    config_dir.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    for name in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "SOPHIA_DOCKER_HOST"):
        monkeypatch.delenv(name, raising=False)
    return config_dir


async def _list(settings: DockerSettings) -> dict[str, object]:
    with anyio.fail_after(30):
        async with connect(build_server(settings), principal=Principal("t", Role.VIEWER, kind="test")) as client:
            result = await client.call("docker_list_containers", {"all": True})
    assert not result.is_error, result.content
    return structured(result)


async def test_the_current_docker_context_is_the_engine(docker_engine: Engine, docker_config: Path) -> None:
    _context(docker_config, "private", docker_engine.url)
    listed = await _list(DockerSettings(timeout_s=30))
    assert listed["engine"] == f"{docker_engine.url} (docker context 'private')"


async def test_a_tls_context_uses_its_own_certificates(docker_engine: Engine, docker_config: Path) -> None:
    assert docker_engine.tcp_url and docker_engine.tls
    _context(docker_config, "remote-tls", docker_engine.tcp_url, tls=docker_engine.tls)
    listed = await _list(DockerSettings(timeout_s=30))
    assert "docker context 'remote-tls'" in str(listed["engine"])


def test_settings_then_docker_host_then_docker_context_then_config(
    docker_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert resolve_engine(DockerSettings()).source == "default socket"
    _context(docker_config, "current", "unix:///current.sock")
    _context(docker_config, "chosen", "unix:///chosen.sock", current=False)
    assert resolve_engine(DockerSettings()).address == "unix:///current.sock"
    monkeypatch.setenv("DOCKER_CONTEXT", "chosen")
    assert resolve_engine(DockerSettings()).label == "unix:///chosen.sock (DOCKER_CONTEXT 'chosen')"
    monkeypatch.setenv("DOCKER_CONTEXT", "default")
    assert resolve_engine(DockerSettings()).source == "default socket"
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2376")
    assert resolve_engine(DockerSettings()).label == "tcp://127.0.0.1:2376 (DOCKER_HOST)"
    assert resolve_engine(DockerSettings(host="unix:///mine.sock")).source == "SOPHIA_DOCKER_HOST"
