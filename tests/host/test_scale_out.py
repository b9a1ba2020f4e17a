"""Two hosts on one PostgreSQL (the scale-out path): real `sophia up --transport http` processes, each with
its own SOPHIA_HOME, sharing SOPHIA_DATABASE_URL; the real SDK client over HTTP; the real memory server.

Tokens made once work on both, concurrent calls on both keep one audit chain with a record per call,
a memory written through one is found through the other, and PostgreSQL stopped and restarted
mid-stream refuses calls cleanly and serves again without restarting the hosts.
"""

from __future__ import annotations

import subprocess
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx2
import psycopg
import pytest
from fixtures.postgres import RestartablePostgres
from fixtures.sophia_hosts import (
    AUDIT_KEY,
    SOPHIA,
    START_S,
    HostProcess,
    connect,
    create_token,
    start_hosts,
    wait_for_tools,
)
from mcp.client import Client
from mcp.shared.exceptions import MCPError
from pydantic import SecretStr
from sophia_shared.audit import AuditLog
from sophia_shared.settings import SuiteSettings
from sophia_shared.testing import error_code, structured

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.integration]

# Short enough to wait out in a test, long enough that a burst of calls reuses the cached check.
TOKEN_CACHE_S = 1.5
# How long a call waits for a pooled memory connection while the database is down.
POOL_TIMEOUT_S = 2.0
CALL_S = 60.0


@dataclass
class ScaleOut:
    pg: RestartablePostgres
    dsn: str
    hosts: list[HostProcess]
    token: str
    base: Path

    def ensure_running(self) -> None:
        stopped = [h for h in self.hosts if h.process is None or h.process.poll() is not None]
        for host in stopped:
            host.serving.clear()
            host.start()
        for host in stopped:
            host.wait_serving()

    def sophia(self, *args: str, host: int = 0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SOPHIA, *args], env=self.hosts[host].env, capture_output=True, text=True,
                              timeout=120, check=False)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def scale(postgres_restartable: RestartablePostgres, tmp_path_factory: pytest.TempPathFactory,
          models_dir: Path) -> Iterator[ScaleOut]:
    with psycopg.connect(postgres_restartable.dsn, autocommit=True) as conn:
        conn.execute("CREATE DATABASE scale_out")
    dsn = postgres_restartable.database_dsn("scale_out")
    base = tmp_path_factory.mktemp("scale-out")
    hosts = start_hosts(base, dsn, models_dir, SOPHIA_TOKEN_CACHE_S=str(TOKEN_CACHE_S),
                        SOPHIA_MEMORY_POOL_TIMEOUT_S=str(POOL_TIMEOUT_S))
    try:
        # Made once, with host 1's settings: it lives in the shared database.
        token = create_token(hosts[0], "dana")
        yield ScaleOut(postgres_restartable, dsn, hosts, token, base)
    finally:
        for host in hosts:
            host.stop()


async def _ready(scale: ScaleOut) -> None:
    await anyio.to_thread.run_sync(scale.ensure_running)
    for host in scale.hosts:
        async with connect(host.url, scale.token) as client:
            await wait_for_tools(client)
    await _until_served(scale, scale.token, lambda c: c.call_tool("memory_list", {"limit": 1}))


async def _until_served(scale: ScaleOut, token: str, call: Callable[[Client], Any]) -> list[Any]:
    """`call` on both hosts, repeated until both answer without an error code (bounded). After an outage
    a host refuses calls for up to SOPHIA_AUDIT's re-probe interval (0.5 s) from the failure it remembers."""
    with anyio.fail_after(START_S):
        while True:
            results = await _on_both(scale, token, call)
            if all(error_code(r) is None for r in results):
                return results
            await anyio.sleep(0.2)


async def _on_both(scale: ScaleOut, token: str, call: Callable[[Client], Any]) -> list[Any]:
    results = []
    for host in scale.hosts:
        async with connect(host.url, token) as client:
            with anyio.fail_after(CALL_S):
                results.append(await call(client))
    return results


async def _status(url: str, token: str) -> int:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        response = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                   headers={"Accept": "application/json, text/event-stream",
                                            "MCP-Protocol-Version": "2026-07-28"})
        return response.status_code


async def test_a_token_created_once_works_on_both_hosts_and_a_revocation_reaches_both(scale: ScaleOut) -> None:
    await _ready(scale)
    viewer = create_token(scale.hosts[1], f"vic-{uuid.uuid4().hex[:6]}", role="viewer")
    stats = await _on_both(scale, viewer, lambda c: c.call_tool("memory_stats", {}))
    assert [r.is_error for r in stats] == [False, False]
    # The role travels with the token on both hosts.
    denied = await _on_both(scale, viewer, lambda c: c.call_tool("memory_store", {"text": "not allowed"}))
    assert [error_code(r) for r in denied] == ["forbidden", "forbidden"]
    name = next(line.split()[1] for line in scale.sophia("token", "list").stdout.splitlines() if "vic-" in line)
    assert scale.sophia("token", "revoke", name, host=0).returncode == 0
    # The documented bound (SOPHIA_TOKEN_CACHE_S): waited out, the revocation holds on both hosts.
    await anyio.sleep(TOKEN_CACHE_S)
    assert [await _status(h.url, viewer) for h in scale.hosts] == [401, 401]
    still = await _on_both(scale, scale.token, lambda c: c.call_tool("memory_stats", {}))
    assert [r.is_error for r in still] == [False, False]
    assert not any((h.home / "tokens.json").exists() for h in scale.hosts)


async def test_a_memory_written_through_one_host_is_found_through_the_other(scale: ScaleOut) -> None:
    await _ready(scale)
    fact = f"The deploy freeze for project {uuid.uuid4().hex[:8]} starts on Friday at noon."
    async with connect(scale.hosts[0].url, scale.token) as one:
        with anyio.fail_after(CALL_S):
            stored = await one.call_tool("memory_store", {"text": fact, "tags": ["scale-out"]})
    assert not stored.is_error, stored
    memory_id = structured(stored)["memory"]["id"]
    async with connect(scale.hosts[1].url, scale.token) as other:
        with anyio.fail_after(CALL_S):
            found = await other.call_tool("memory_search", {"query": fact, "k": 3})
            got = await other.call_tool("memory_get", {"id": memory_id})
    assert not found.is_error, found
    assert memory_id in [hit["memory"]["id"] for hit in structured(found)["hits"]]
    assert structured(got)["memory"]["text"] == fact


async def test_concurrent_calls_on_both_hosts_keep_one_audit_chain_with_a_record_per_call(
    scale: ScaleOut, tmp_path: Path
) -> None:
    await _ready(scale)
    token_name = f"chain-{uuid.uuid4().hex[:6]}"
    token = create_token(scale.hosts[0], token_name, role="viewer")
    per_host, concurrency = 60, 6
    outcomes: list[bool] = []

    async def drive(host: HostProcess) -> None:
        async with connect(host.url, token) as client:
            limiter = anyio.Semaphore(concurrency)

            async def one(i: int) -> None:
                async with limiter:
                    result = await client.call_tool("memory_list", {"limit": 1})
                    outcomes.append(not result.is_error)

            async with anyio.create_task_group() as tg:
                for i in range(per_host):
                    tg.start_soon(one, i)

    with anyio.fail_after(CALL_S * 3):
        async with anyio.create_task_group() as tg:
            for host in scale.hosts:
                tg.start_soon(drive, host)
    calls = 2 * per_host
    assert outcomes.count(True) == calls
    # The hosts write their own records behind (AuditWriter); stopping them drains every batch.
    for host in scale.hosts:
        host.stop()
    auditor = tmp_path / "auditor"
    auditor.mkdir()
    env = {**scale.hosts[0].env, "SOPHIA_HOME": str(auditor)}
    verify = subprocess.run([SOPHIA, "audit", "verify"], env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "audit log intact" in verify.stdout
    records = [r for r in AuditLog(dsn=scale.dsn, home=auditor).records()
               # This test's calls by the token they came with (the principal is now the token's user).
               if r["principal_kind"] == f"token:{token_name}" and r["tool"] == "memory_list"]
    by_writer = Counter(r["server"] for r in records)
    # One record per call at the host's edge, one in the memory server that ran it: none lost, none twice.
    assert by_writer == {"sophia": calls, "memory": calls}
    per_call = Counter(r["correlation_id"] for r in records)
    assert len(per_call) == calls
    assert set(per_call.values()) == {2}


async def test_postgres_stopped_and_restarted_mid_stream(scale: ScaleOut, tmp_path: Path) -> None:
    await _ready(scale)
    async with connect(scale.hosts[0].url, scale.token) as client:
        with anyio.fail_after(CALL_S):
            stored = await client.call_tool("memory_store", {"text": f"restart marker {uuid.uuid4().hex}"})
    memory_id = structured(stored)["memory"]["id"]
    before = await _on_both(scale, scale.token, lambda c: c.call_tool("memory_get", {"id": memory_id}))
    assert [r.is_error for r in before] == [False, False]
    lost_text = f"written during the outage {uuid.uuid4().hex}"
    scale.pg.stop()
    try:
        during = [await _refusal(h.url, scale.token, "memory_get", {"id": memory_id}) for h in scale.hosts]
        during.append(await _refusal(scale.hosts[1].url, scale.token, "memory_store", {"text": lost_text}))
    finally:
        scale.pg.start()
    # Refused cleanly: a tool error `unavailable`, or (the token's cached check expired) HTTP 503.
    assert set(during) <= {"unavailable", "http-unavailable"}, during
    # The hosts were not restarted: their pools and the audit reconnect on their own (within a bounded wait).
    after = await _until_served(scale, scale.token, lambda c: c.call_tool("memory_get", {"id": memory_id}))
    assert [error_code(r) for r in after] == [None, None], after
    again = await _on_both(scale, scale.token, lambda c: c.call_tool("memory_search", {"query": lost_text, "k": 5}))
    assert [r.is_error for r in again] == [False, False]
    # Nothing half-written: the refused write left no memory behind.
    assert all(lost_text not in [h["memory"]["text"] for h in structured(r)["hits"]] for r in again)
    with psycopg.connect(scale.dsn) as conn:
        left = conn.execute("SELECT count(*) FROM memories WHERE text = %s", (lost_text,)).fetchone()
    assert left == (0,)
    report = AuditLog(dsn=scale.dsn, home=tmp_path, suite=SuiteSettings(audit_key=SecretStr(AUDIT_KEY))).verify()
    assert report.intact, report.problems


async def _refusal(url: str, token: str, tool: str, arguments: dict[str, Any]) -> str:
    """How a call made on a new connection while the database is down is refused (see `_outcome`)."""
    refused: list[MCPError] = []
    try:
        async with connect(url, token) as client:
            outcome = await _outcome(client, tool, arguments)
    except* MCPError as group:  # the connection's opening request was refused before the call
        refused = [e for e in _leaves(group) if isinstance(e, MCPError)]
    return _http_refusal(refused[0]) if refused else outcome


def _http_refusal(error: MCPError) -> str:
    return f"http-{error.data.get('code') if isinstance(error.data, dict) else error.message}"


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


class _Stream:
    """Calls made back to back on every host while the test moves through phases; each outcome is kept
    with the phase its call started in."""

    def __init__(self, hosts: list[HostProcess]):
        self.phase = "before"
        self.outcomes: dict[str, list[tuple[str, str]]] = {h.name: [] for h in hosts}
        self.stopped = False
        self._changed = anyio.Event()

    def count(self, phase: str, outcome: str | None = None) -> int:
        return min(sum(1 for p, o in seen if p == phase and (outcome is None or o == outcome))
                   for seen in self.outcomes.values())

    async def until(self, predicate: Callable[[], bool]) -> None:
        with anyio.fail_after(CALL_S * 2):
            while not predicate():
                changed = self._changed
                await changed.wait()

    async def run(self, host: HostProcess, token: str, memory_id: str) -> None:
        async with connect(host.url, token) as client:
            while not self.stopped:
                started = self.phase
                outcome = await _outcome(client, "memory_get", {"id": memory_id})
                self.outcomes[host.name].append((started, outcome))
                self._changed.set()
                self._changed = anyio.Event()
                await anyio.sleep(0.05)  # pacing, so a fast refusal does not spin


async def test_a_stream_of_calls_through_a_postgres_stop_and_restart(scale: ScaleOut, tmp_path: Path) -> None:
    await _ready(scale)
    async with connect(scale.hosts[0].url, scale.token) as client:
        with anyio.fail_after(CALL_S):
            stored = await client.call_tool("memory_store", {"text": f"stream marker {uuid.uuid4().hex}"})
    memory_id = structured(stored)["memory"]["id"]
    stream = _Stream(scale.hosts)
    async with anyio.create_task_group() as tg:
        for host in scale.hosts:
            tg.start_soon(stream.run, host, scale.token, memory_id)
        await stream.until(lambda: stream.count("before", "ok") >= 3)
        stream.phase = "stopping"
        await anyio.to_thread.run_sync(scale.pg.stop)
        stream.phase = "outage"
        try:
            await stream.until(lambda: stream.count("outage") >= 2)
        finally:
            stream.phase = "starting"
            await anyio.to_thread.run_sync(scale.pg.start)
        stream.phase = "after"
        await stream.until(lambda: stream.count("after", "ok") >= 5)
        stream.stopped = True
    refused = {"unavailable", "http-unavailable"}
    for name, seen in stream.outcomes.items():
        by_phase: dict[str, list[str]] = {}
        for phase, outcome in seen:
            by_phase.setdefault(phase, []).append(outcome)
        assert set(by_phase["before"]) == {"ok"}, (name, seen)
        # Every call gets an answer: served, or refused cleanly, never another failure or a hang.
        assert set(by_phase["outage"]) <= refused, (name, seen)
        assert {o for p in ("stopping", "starting", "after") for o in by_phase.get(p, [])} <= refused | {"ok"}
        # Once served again, served from then on: the hosts were not restarted.
        after = by_phase["after"]
        assert set(after[after.index("ok"):]) == {"ok"}, (name, seen)
    assert all(h.process is not None and h.process.poll() is None for h in scale.hosts)
    report = AuditLog(dsn=scale.dsn, home=tmp_path, suite=SuiteSettings(audit_key=SecretStr(AUDIT_KEY))).verify()
    assert report.intact, report.problems


async def _outcome(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    """`ok`, the tool error's code, or `http-<code>` when the host refused the request itself."""
    refused: list[MCPError] = []
    try:
        with anyio.fail_after(CALL_S):
            result = await client.call_tool(tool, arguments)
    except* MCPError as group:
        refused = [e for e in _leaves(group) if isinstance(e, MCPError)]
    return _http_refusal(refused[0]) if refused else error_code(result) or "ok"
