"""client.py against the real dockerd: error translation, capped log reading, reachability and recovery."""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from servers.docker.conftest import ContainerFactory
from servers.docker.engine import Engine, start_engine
from sophia_docker.client import DockerClient, _frames, _TailBuffer
from sophia_docker.settings import DockerSettings
from sophia_shared.errors import Conflict, InvalidArgument, NotConfigured, NotFound, Unavailable

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def test_tail_buffer_keeps_newest_bytes_and_drops_partial_first_line() -> None:
    buffer = _TailBuffer(limit=10)
    for line in (b"first\n", b"second\n", b"third\n"):
        buffer.add(line)
    result = buffer.result()
    assert result.truncated
    assert result.text == "third\n"
    assert result.bytes_seen == len(b"first\nsecond\nthird\n")
    assert buffer.size <= 10


def test_tail_buffer_cut_on_a_line_boundary_keeps_the_first_whole_line() -> None:
    buffer = _TailBuffer(limit=12)
    for line in (b"aaaaa\n", b"bbbbb\n", b"ccccc\n"):
        buffer.add(line)
    assert buffer.result().text == "bbbbb\nccccc\n"
    assert buffer.result().truncated


def test_tail_buffer_under_limit_is_untouched() -> None:
    buffer = _TailBuffer(limit=100)
    buffer.add(b"a\nb\n")
    assert buffer.result().text == "a\nb\n"
    assert not buffer.result().truncated


def test_tail_buffer_redacts_secrets() -> None:
    buffer = _TailBuffer(limit=1000)
    buffer.add(b"connecting with password=hunter2 to postgres://app:s3cret@db/x\n")
    text = buffer.result().text
    assert "hunter2" not in text
    assert "s3cret" not in text


def test_frames_split_across_reads() -> None:
    def frame(stream: int, payload: bytes) -> bytes:
        return struct.pack(">BxxxL", stream, len(payload)) + payload

    raw = frame(1, b"out line\n") + frame(2, b"err line\n") + frame(1, b"x" * 70_000)
    chunks = [raw[i : i + 7] for i in range(0, len(raw), 7)]
    parsed = list(_frames(iter(chunks)))
    assert b"".join(data for data, _ in parsed) == b"out line\nerr line\n" + b"x" * 70_000
    assert sum(count for _, count in parsed) == 3


async def test_unknown_container_is_not_found(docker_settings: DockerSettings) -> None:
    client = DockerClient(docker_settings)
    with anyio.fail_after(30), pytest.raises(NotFound) as exc:
        await client.inspect_container("no-such-container-xyz")
    assert "no-such-container-xyz" in exc.value.message


async def test_bad_filter_value_is_invalid_argument(docker_settings: DockerSettings) -> None:
    """The engine itself rejects the filter (HTTP 400); the message keeps its reason."""
    client = DockerClient(docker_settings)
    with anyio.fail_after(30), pytest.raises(InvalidArgument) as exc:
        await client.list_containers(all_states=True, filters={"health": ["bogus"]})
    assert "health" in exc.value.message


async def test_removing_running_container_without_force_is_conflict(
    docker_settings: DockerSettings, sleeper: str
) -> None:
    client = DockerClient(docker_settings)
    with anyio.fail_after(30), pytest.raises(Conflict):
        await client.remove_container(sleeper, force=False, volumes=False)


async def test_whole_log_of_a_long_log_is_read_by_growing_tails(
    docker_settings: DockerSettings, make_container: ContainerFactory
) -> None:
    """Whole-log requests stop once the cap is filled; the result is the same newest bytes either way."""
    name = make_container(["seq", "1", "100000"])
    client = DockerClient(docker_settings)
    kwargs: dict[str, Any] = {"stdout": True, "stderr": True, "since": None, "timestamps": False}
    with anyio.fail_after(120):
        whole = await client.logs(name, tail=None, until=None, max_bytes=5000, **kwargs)
        # With `until` the log is read from its start: the reference for the same newest bytes.
        reference = await client.logs(name, tail=None, until=time.time() + 3600, max_bytes=5000, **kwargs)
        small = await client.logs(name, tail=None, until=None, max_bytes=10_000_000, **kwargs)
    assert whole.truncated and whole.text == reference.text and whole.text.endswith("100000\n")
    assert whole.bytes_seen < reference.bytes_seen == sum(len(f"{i}\n") for i in range(1, 100001))
    assert not small.truncated and small.text.startswith("1\n2\n") and small.text.endswith("100000\n")


async def test_tty_logs_are_read_raw(docker_settings: DockerSettings, make_container: ContainerFactory) -> None:
    name = make_container(["sh", "-c", "echo hello from a tty"], tty=True)
    client = DockerClient(docker_settings)
    with anyio.fail_after(60):
        output = await client.logs(
            name, stdout=True, stderr=True, tail=10, since=None, until=None, timestamps=False, max_bytes=5000
        )
    assert "hello from a tty" in output.text
    assert not output.truncated


async def test_exec_timeout_returns_without_waiting_for_the_command(
    docker_settings: DockerSettings, sleeper: str, docker_api: Any
) -> None:
    client = DockerClient(docker_settings)
    with anyio.fail_after(60):
        outcome = await client.exec(
            sleeper,
            ["sh", "-c", "echo started; sleep 300"],
            user=None,
            workdir=None,
            env={},
            timeout_s=1,
            max_bytes=5000,
        )
    assert outcome.timed_out
    assert outcome.exit_code is None
    assert "started" in outcome.output.text


async def test_unreachable_engine_is_unavailable_naming_the_address(tmp_path: Path) -> None:
    address = f"unix://{tmp_path}/nothing-listens.sock"
    client = DockerClient(DockerSettings(host=address, timeout_s=10))
    with anyio.fail_after(30), pytest.raises(Unavailable) as exc:
        await client.ping()
    assert address in exc.value.message
    assert exc.value.data["address"] == address


async def test_engine_going_away_and_coming_back(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A second real dockerd: answered, stopped (unavailable), restarted on the same socket (answers again)."""
    engine = start_engine(tmp_path_factory.mktemp("dockerd-restart"))
    try:
        client = DockerClient(DockerSettings(host=engine.url, timeout_s=10))
        with anyio.fail_after(60):
            assert await client.ping()
            engine.stop()
            with pytest.raises(Unavailable) as exc:
                await client.ping()
            assert engine.url in exc.value.message
            engine = start_engine(engine.daemon.log.parent, engine.exec_root)
            assert await client.ping()
    finally:
        engine.stop()


def _tls_settings(engine: Engine, **overrides: Any) -> DockerSettings:
    assert engine.tcp_url is not None and engine.tls is not None
    values: dict[str, Any] = {
        "host": engine.tcp_url,
        "tls_verify": True,
        "tls_ca_cert": str(engine.tls.ca),
        "tls_client_cert": str(engine.tls.client_cert),
        "tls_client_key": str(engine.tls.client_key),
        "timeout_s": 10,
    }
    values.update(overrides)
    return DockerSettings(**values)


async def test_tcp_with_tls_and_client_certificate(docker_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine's own CA is trusted even where REQUESTS_CA_BUNDLE points elsewhere (it would win in requests)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    client = DockerClient(_tls_settings(docker_engine))
    with anyio.fail_after(30):
        assert await client.ping()
        assert isinstance(await client.list_containers(all_states=True, filters={}), list)


async def test_tls_without_client_certificate_is_unavailable(docker_engine: Engine) -> None:
    client = DockerClient(_tls_settings(docker_engine, tls_client_cert=None, tls_client_key=None))
    with anyio.fail_after(30), pytest.raises(Unavailable) as exc:
        await client.ping()
    assert str(docker_engine.tcp_url) in exc.value.message


async def test_tls_with_missing_files_is_not_configured(docker_engine: Engine, tmp_path: Path) -> None:
    client = DockerClient(_tls_settings(docker_engine, tls_client_cert=str(tmp_path / "absent.pem")))
    with anyio.fail_after(30), pytest.raises(NotConfigured) as exc:
        await client.ping()
    assert "SOPHIA_DOCKER_TLS_CLIENT_CERT" in exc.value.message


async def test_cancelled_call_returns_without_waiting_for_the_engine(
    docker_settings: DockerSettings, sleeper: str, docker_api: Any
) -> None:
    """A wait on a container that never exits, cancelled: the call gives up at once, the container is untouched."""
    client = DockerClient(docker_settings)
    with anyio.fail_after(20):
        with anyio.move_on_after(1) as scope:
            await client.wait(sleeper, timeout_s=600)
        assert scope.cancelled_caught
        assert await client.ping()
    assert docker_api.inspect_container(sleeper)["State"]["Running"]
