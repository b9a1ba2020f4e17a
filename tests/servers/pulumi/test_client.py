"""Client-level behaviour against the STAND-IN CLI: one operation per stack, in-process and across
processes (the backend's lock file), and errors crossing the worker thread intact."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from servers.pulumi.environments import ChangeEnv
from sophia_pulumi.client import PulumiClient
from sophia_pulumi.settings import PulumiSettings
from sophia_pulumi.tools import build_server
from sophia_shared.errors import NotConfigured, NotFound, Unavailable
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect, error_code, error_of, structured

pytestmark = pytest.mark.anyio

DEVOPS = Principal("dana", Role.DEVOPS, kind="test")
STACK = {"project": "app", "stack": "dev"}


@contextlib.asynccontextmanager
async def gated(folder: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Make the stand-in hold its stack lock until released; always release on the way out."""
    folder.mkdir()
    os.mkfifo(folder / "started")
    os.mkfifo(folder / "release")
    monkeypatch.setenv("STANDIN_GATE_DIR", str(folder))
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # ENXIO: nobody waiting, nothing to release
            os.close(os.open(folder / "release", os.O_WRONLY | os.O_NONBLOCK))


async def wait_started(folder: Path) -> None:
    with anyio.fail_after(60):
        await anyio.to_thread.run_sync((folder / "started").read_text, abandon_on_cancel=True)


async def test_second_operation_on_a_busy_stack_is_refused_standin_cli(
    standin_env: ChangeEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = tmp_path / "gate"
    server = build_server(standin_env.settings)
    other_process = build_server(standin_env.settings)  # a second server: its own in-process guard
    results: dict[str, Any] = {}
    with anyio.fail_after(120):
        async with (
            gated(gate, monkeypatch),
            connect(server, principal=DEVOPS) as client,
            connect(other_process, principal=DEVOPS) as other,
            anyio.create_task_group() as tg,
        ):

            async def first() -> None:
                results["first"] = await client.call("pulumi_preview", STACK)

            tg.start_soon(first)
            await wait_started(gate)
            results["preview"] = await client.call("pulumi_preview", STACK)
            results["up"] = await client.call("pulumi_up", STACK)
            results["config"] = await client.call("pulumi_set_config", {**STACK, "key": "a", "value": "b"})
            results["locked"] = await other.call("pulumi_preview", STACK)
            results["read"] = await client.call("pulumi_list_resources", STACK)
            os.close(os.open(gate / "release", os.O_WRONLY))
    for name in ("preview", "up", "config"):
        assert error_code(results[name]) == "conflict", name
        assert error_of(results[name])["data"]["running"] == "preview"
    assert error_code(results["locked"]) == "conflict"  # the stand-in's lock file, via the CLI's error
    assert "lock" in error_of(results["locked"])["message"]
    assert not results["read"].is_error  # reads never wait for or block on operations
    assert not results["first"].is_error
    assert structured(results["first"])["counts"]["create"] >= 5


async def test_errors_from_the_worker_thread_keep_their_type(standin_env: ChangeEnv) -> None:
    client = PulumiClient(standin_env.settings)

    async def sink(change: Any) -> None:
        pass

    with anyio.fail_after(60):
        with pytest.raises(NotFound):
            await client.preview("app", "qa", sink)
        with pytest.raises(NotFound):
            await client.preview("ghost", "dev", None)
    assert client.guard.running("organization/app/qa") is None


async def test_no_cli_is_unavailable_and_names_path(tmp_path: Path) -> None:
    on_path = PulumiSettings(projects_dir=tmp_path)
    client = PulumiClient(on_path.model_copy(update={"cli": tmp_path / "bin" / "pulumi"}))
    with pytest.raises(Unavailable) as caught:
        await client.preview("app", "dev", None)
    assert str(tmp_path / "bin" / "pulumi") in caught.value.message


async def test_cli_outside_a_bin_directory_is_refused(tmp_path: Path) -> None:
    cli = tmp_path / "pulumi"
    cli.write_text("#!/bin/sh\necho v3.200.0\n")
    cli.chmod(0o755)
    client = PulumiClient(PulumiSettings(cli=cli, projects_dir=tmp_path))
    with pytest.raises(Unavailable, match="bin/"):
        client.pulumi_command()


def test_backend_url_defaults_to_sophia_home(sophia_home: Path) -> None:
    client = PulumiClient(PulumiSettings())
    assert client.file_root == sophia_home / "pulumi" / "state"
    assert client.reads_from_state()
    cloud = PulumiClient(PulumiSettings(backend_url="https://api.pulumi.com"))
    assert cloud.file_root is None and not cloud.reads_from_state()
    home = PulumiClient(PulumiSettings(backend_url="file://~/pulumi-state"))
    assert home.file_root == Path("~/pulumi-state").expanduser()


async def test_missing_passphrase_is_not_configured_naming_the_setting_standin_cli(standin_env: ChangeEnv) -> None:
    client = PulumiClient(standin_env.settings.model_copy(update={"passphrase": None}))
    with anyio.fail_after(60), pytest.raises(NotConfigured) as caught:
        await client.preview("app", "dev", None)
    assert caught.value.data == {"setting": "SOPHIA_PULUMI_PASSPHRASE"}
    assert client.guard.running("organization/app/dev") is None
