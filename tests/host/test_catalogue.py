"""Every tool at connect: the catalogue of each child's last-known tools (catalogue.py), the first
tools/list waiting (bounded) for children with none, calls waiting for a child that is starting, and
tools/list showing a caller only what its role may call."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.to_thread
import mcp_types as types
import pytest
from sophia_host.catalogue import Catalogue, catalogue_key
from sophia_host.children import State
from sophia_host.config import ServerEntry
from sophia_host.server import HostServer
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect, error_code, error_of, structured

from .conftest import START_S, child_entry, host_settings, ready, running_host, settle

pytestmark = pytest.mark.anyio

ALICE = Principal("alice", Role.DEVELOPER, kind="token")
ALPHA_TOOLS = {"alpha_echo", "alpha_slow", "alpha_delete", "alpha_crash", "alpha_hang", "alpha_cancelled",
               "alpha_grow"}


def _tool(name: str) -> types.Tool:
    return types.Tool(name=name, input_schema={"type": "object"}, _meta={"sophia": {"role": "viewer"}})


# -- the catalogue file -------------------------------------------------------------------------


def test_a_saved_catalogue_loads_under_the_same_key_and_is_private(sophia_home: Path) -> None:
    entry = ServerEntry(name="alpha", command=[sys.executable, "-m", "sophia_memory"])
    catalogue = Catalogue()
    catalogue.save(entry, {"SOPHIA_X": "1"}, [_tool("alpha_one"), _tool("alpha_two")])
    path = sophia_home / "host" / "catalogue" / "alpha.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    loaded = catalogue.load(entry, {"SOPHIA_X": "1"})
    assert loaded is not None and [t.name for t in loaded] == ["alpha_one", "alpha_two"]
    assert loaded[0].meta == {"sophia": {"role": "viewer"}}
    # No temporary file is left beside it.
    assert [p.name for p in path.parent.iterdir()] == ["alpha.json"]


def test_a_changed_install_or_config_invalidates_the_catalogue(tmp_path: Path, sophia_home: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "server.py"
    script.write_text("# v1\n")
    entry = ServerEntry(name="alpha", command=[sys.executable, str(script)], env={"SOPHIA_ALPHA_X": "1"})
    env = {"SOPHIA_ALPHA_READ_ONLY": "false", "SOPHIA_GONG_ACCESS_KEY": "k1", "PATH": "/bin"}
    catalogue = Catalogue()
    catalogue.save(entry, env, [_tool("alpha_one")])
    assert catalogue.load(entry, env) is not None
    # Not in the key: variables that are not Sophia settings, and a secret's value (only its presence).
    assert catalogue.load(entry, {**env, "PATH": "/usr/bin", "SOPHIA_GONG_ACCESS_KEY": "k2"}) is not None
    assert "k1" not in (sophia_home / "host" / "catalogue" / "alpha.json").read_text()

    assert catalogue.load(entry, {**env, "SOPHIA_ALPHA_READ_ONLY": "true"}) is None
    assert catalogue.load(entry, {k: v for k, v in env.items() if k != "SOPHIA_GONG_ACCESS_KEY"}) is None
    assert catalogue.load(entry.model_copy(update={"env": {"SOPHIA_ALPHA_X": "2"}}), env) is None
    assert catalogue.load(entry.model_copy(update={"toolsets": ["alpha"]}), env) is None
    assert catalogue.load(entry.model_copy(update={"command": [sys.executable, str(script), "--x"]}), env) is None
    # The code the command runs changed (a reinstall, an edit): its file times differ.
    before = script.stat()
    os.utime(script, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    assert catalogue.load(entry, env) is None
    catalogue.save(entry, env, [_tool("alpha_one")])
    # So does sophia.toml.
    config = tmp_path / "sophia.toml"
    config.write_text("[alpha]\n")
    monkeypatch.setenv("SOPHIA_CONFIG", str(config))
    assert catalogue.load(entry, env) is None


def test_a_server_packages_code_is_in_the_key(sophia_home: Path) -> None:
    script = ServerEntry(name="memory", command=["/somewhere/bin/sophia-memory"])
    module = ServerEntry(name="memory", command=[sys.executable, "-m", "sophia_memory"])
    other = ServerEntry(name="memory", command=[sys.executable, "-m", "sophia_gong"])
    keys = {catalogue_key(e, {}) for e in (script, module, other)}
    assert len(keys) == 3
    assert catalogue_key(module, {}) == catalogue_key(module, {})


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"key": "x"}', b"\xff\xfe", b'{"tools": [{"name": 5}]}'])
def test_a_damaged_catalogue_is_ignored(sophia_home: Path, body: bytes) -> None:
    entry = ServerEntry(name="alpha", command=["x"])
    catalogue = Catalogue()
    catalogue.save(entry, {}, [_tool("alpha_one")])
    path = catalogue.path("alpha")
    if body.startswith(b'{"tools"'):
        data = json.loads(path.read_text())
        data["tools"] = [{"name": 5}]
        body = json.dumps(data).encode()
    path.write_bytes(body)
    assert catalogue.load(entry, {}) is None


# -- the host at connect ------------------------------------------------------------------------


class Gate:
    """A FIFO a `--hold` child waits on before it serves: it stays `starting` until released."""

    def __init__(self, directory: Path):
        self.path = directory / "gate"
        os.mkfifo(self.path)

    def entry(self, name: str = "alpha", **extra: object) -> ServerEntry:
        return child_entry(name, "--hold", str(self.path), **extra)  # type: ignore[arg-type]

    async def release(self) -> None:
        # Opening for writing blocks until the child opens its end; closing lets it serve.
        with anyio.fail_after(START_S):
            await anyio.to_thread.run_sync(lambda: open(self.path, "wb").close(), abandon_on_cancel=True)


@asynccontextmanager
async def held_host(gate: Gate, **settings: object) -> AsyncIterator[HostServer]:
    async with running_host([gate.entry(), child_entry("beta")], wait=False, **settings) as host:
        yield host


async def _warm(gate: Gate) -> None:
    """Run a host once so the held child's catalogue exists."""
    async with held_host(gate) as host:
        await gate.release()
        await settle(host, lambda: all(ready(c) for c in host.children))
    assert Catalogue().path("alpha").is_file()


async def test_cold_the_first_list_waits_for_starting_children_and_lists_them_all(tmp_path: Path) -> None:
    gate = Gate(tmp_path)
    async with held_host(gate) as host:
        alpha = host.children[0]
        assert not alpha.tools and not alpha.from_catalogue
        async with connect(host, principal=ALICE) as client, anyio.create_task_group() as tg:
            listed: list[set[str]] = []

            async def list_now() -> None:
                listed.append({t.name for t in await client.list_tools()})

            tg.start_soon(list_now)
            # The listing is held while alpha (no catalogue) starts; releasing alpha lets it answer.
            await settle(host, lambda: ready(host.children[1]))
            assert not listed and alpha.state is State.starting
            await gate.release()
        assert listed[0] >= ALPHA_TOOLS and "beta_echo" in listed[0]
    assert Catalogue().load(gate.entry(), host.children[0].child_env()) is not None


async def test_cold_the_wait_is_bounded(tmp_path: Path) -> None:
    gate = Gate(tmp_path)
    async with held_host(gate, start_wait_s=0.2) as host:
        await settle(host, lambda: ready(host.children[1]))
        async with connect(host, principal=ALICE) as client:
            names = {t.name for t in await client.list_tools()}
            assert "beta_echo" in names and not names & ALPHA_TOOLS
            # A name no catalogue knows is not routed anywhere: not_found, at once.
            assert error_code(await client.call("alpha_echo", {"text": "x"})) == "not_found"
        await gate.release()


async def test_warm_the_first_list_answers_from_the_catalogue_and_an_early_call_waits(tmp_path: Path) -> None:
    gate = Gate(tmp_path)
    await _warm(gate)
    async with held_host(gate) as host:
        alpha = host.children[0]
        assert alpha.from_catalogue and alpha.state is State.starting
        async with connect(host, principal=ALICE) as client:
            # alpha is held: everything below happens while it is still starting.
            names = {t.name for t in await client.list_tools()}
            assert names >= ALPHA_TOOLS
            assert alpha.state is State.starting
            async with anyio.create_task_group() as tg:
                results = []

                async def call_now() -> None:
                    results.append(await client.call("alpha_echo", {"text": "early"}))

                tg.start_soon(call_now)
                await settle(host, lambda: ready(host.children[1]))
                assert not results
                await gate.release()
            assert structured(results[0])["text"] == "early"
            assert structured(results[0])["principal"] == "alice"


async def test_warm_children_start_once_the_first_list_is_answered(tmp_path: Path) -> None:
    # The listing needs no child when the catalogue holds them all: on a small machine, children
    # starting meanwhile would only slow it down.
    gate = Gate(tmp_path)
    await _warm(gate)
    async with held_host(gate, catalogue_head_start_s=600) as host:
        assert all(c.from_catalogue for c in host.children)
        async with connect(host, principal=ALICE) as client:
            assert all(c.state is State.starting and not c._starting for c in host.children)  # none spawned
            names = {t.name for t in await client.list_tools()}
            assert names >= ALPHA_TOOLS and "beta_echo" in names
            await settle(host, lambda: ready(host.children[1]))
            assert structured(await client.call("beta_echo", {"text": "x"}))["text"] == "x"
        await gate.release()


async def test_warm_a_call_to_a_child_that_does_not_come_up_ends_bounded(tmp_path: Path) -> None:
    gate = Gate(tmp_path)
    await _warm(gate)
    async with held_host(gate, start_wait_s=0.2) as host, connect(host, principal=ALICE) as client:
        refused = await client.call("alpha_echo", {"text": "x"})
        assert error_code(refused) == "unavailable"
        assert "starting" in error_of(refused)["message"]
        await gate.release()


async def test_a_failing_child_is_not_waited_for(tmp_path: Path) -> None:
    ghost = child_entry("ghost")
    ghost.command = ["/nonexistent/sophia-ghost"]
    async with running_host([ghost, child_entry("alpha")], wait=False, start_wait_s=600) as host:
        await settle(host, lambda: host.children[0].restarts >= 1 and ready(host.children[1]))
        async with connect(host, principal=ALICE) as client:
            with anyio.fail_after(START_S):
                names = {t.name for t in await client.list_tools()}
                assert error_code(await client.call("ghost_echo", {})) == "not_found"
        assert "alpha_echo" in names


async def test_the_catalogue_can_be_turned_off(tmp_path: Path) -> None:
    async with running_host([child_entry("alpha")], catalogue=False) as host:
        assert ready(host.children[0])
    assert not Catalogue().path("alpha").exists()
    host = HostServer(host_settings(), [child_entry("alpha")])
    assert not host.children[0].tools


# -- only the tools a caller can use --------------------------------------------------------------


async def test_tools_list_shows_each_role_what_it_may_call() -> None:
    async with running_host([child_entry("alpha")]) as host:
        seen = {}
        for role in (Role.VIEWER, Role.DEVELOPER, Role.ADMIN):
            async with connect(host, principal=Principal("p", role, kind="token")) as client:
                seen[role] = {t.name for t in await client.list_tools()}
        # alpha_delete and alpha_grow need developer, alpha_admin needs admin.
        assert "alpha_delete" not in seen[Role.VIEWER] and "alpha_grow" not in seen[Role.VIEWER]
        assert {"sophia_find_tools", "alpha_echo"} <= seen[Role.VIEWER]
        assert seen[Role.DEVELOPER] == seen[Role.VIEWER] | {"alpha_delete", "alpha_grow"}
        assert seen[Role.ADMIN] == seen[Role.DEVELOPER] | {"alpha_admin"}
        host.list_all_tools = True
        async with connect(host, principal=Principal("v", Role.VIEWER, kind="token")) as client:
            assert {t.name for t in await client.list_tools()} == seen[Role.ADMIN]


async def test_a_call_waits_for_a_child_restarting_after_a_crash(tmp_path: Path) -> None:
    # In CI a child once died of a signal just after it was listed; the next call found it restarting and
    # answered `unavailable`. Here the restart is held: a call made meanwhile waits for it instead.
    gate = Gate(tmp_path)
    entry = child_entry("alpha", "--hold-restarts", str(gate.path))
    async with running_host([entry], standby=False) as host, connect(host, principal=ALICE) as client:
        alpha = host.children[0]
        crashed = await client.call("alpha_crash", {})
        assert error_code(crashed) == "unavailable"
        await settle(host, lambda: alpha.restarts == 1 and alpha.state is State.starting)
        assert not alpha.crash_looping
        async with anyio.create_task_group() as tg:
            results = []

            async def call_now() -> None:
                results.append(await client.call("alpha_echo", {"text": "after the crash"}))

            tg.start_soon(call_now)
            await anyio.sleep(0.5)
            assert not results  # waiting, not answered `unavailable`
            await gate.release()
    assert structured(results[0])["text"] == "after the crash"
