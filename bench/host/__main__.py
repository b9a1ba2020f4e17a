"""bench/host: the host against mcp-proxy (PyPI 0.13.0, the reference gateway), both in front of the same
trivial child, in one run.

Two children serve the same `add` tool. bench/host/child.py is a bare SDK MCPServer, what a real child
looks like; but alone, with pipelined requests, it caps near 1,000 calls/s on these 2 cores, so in front
of it capacity measures the child and no gateway could show 3x another. bench/host/minimal_child.py is a
stdlib loop speaking the same wire protocol at tens of thousands of calls/s, so in front of it capacity
measures the gateways themselves: the capacity target is judged on `minimal_child.capacity_ratio`.

1. hop overhead over stdio: `add` called directly on the child and through `sophia up --transport stdio`,
   sequentially, interleaved in blocks so both see the same machine load (mcp-proxy has no stdio→stdio
   mode; its hop is measured over HTTP in 2).
2. latency over streamable HTTP: sequential calls with the real SDK client, through the host and mcp-proxy.
3. capacity: closed-loop calls/s over streamable HTTP with W keep-alive connections, host vs mcp-proxy,
   driven by wrk (C; apt package, installed here if missing) with the exact requests the SDK client sends,
   because a Python load generator costs about as much CPU per call as the gateways on these 2 cores.
   2 and 3 run in front of both children: the SDK child's results at the top level, the minimal child's
   under `minimal_child`, each with its own `capacity_ratio` (best host / best mcp-proxy calls/s).
4. many clients: 1,000 clients, each its own keep-alive connection, held open against the host, with an
   open-loop offered load of 300 calls/s spread across them for 60 s (WireClient: the SDK client's
   requests without its per-call Python work); latency counted from each call's scheduled time.
1 and 4 run in front of the SDK child.
5. connect (issue 13): spawn → complete tools/list, the first one after initialize. Each of the six Sophia
   servers alone (a cold start each: its own process, a fresh SOPHIA_HOME), then `sophia up --transport
   stdio` composing all six: cold (no catalogue in SOPHIA_HOME: the first tools/list waits for the
   children) and warm (the catalogue the cold run left: it answers from it at once), and cold again with
   every child spawned instead of forked from the host's fork server (SOPHIA_HOST_FORK_SERVER=false), for
   comparison. Median of BENCH_CONNECT_RUNS runs. Targets: warm ≤ 1.5 s; cold ≤ the slowest server's own
   cold start.
6. real child (issue 13): capacity in front of a real Sophia child, memory_stats of sophia-memory (SQLite
   store, synchronous audit append per call): the child's own calls/s (pipelined over stdio, and over its
   own streamable HTTP with wrk), the host's and mcp-proxy's in front of it (wrk). Target: host / the
   child's own stdio calls/s ≥ 0.9. Each figure carries `cpu_ms_per_call` of every process involved
   (user + system CPU from /proc over the run, divided by the calls): on a shared 2-core machine it is
   far steadier than calls/s, and says which process a gap comes from. Each lane runs at 4, 16 and 64
   calls in flight and counts its best: behind a gateway, part of what is in flight sits in the
   gateway, so the child needs more of them to stay as busy as when called directly. The host is measured once its
   start-up work is done (every child's standby spare up, both checks run: `_until_steady`).

Targets (issue 6; 5 and 6 above: issue 13): hop adds ≤ 0.5 ms p50 and ≤ 2 ms p99; capacity ≥ 3× mcp-proxy;
many clients: 0 errors, p99 ≤ 200 ms, peak RSS reported. Loopback only; the host runs with bearer tokens
and audit on, as shipped.
mcp-proxy needs mcp<2, so it lives in its own venv (bench/.venv-mcp-proxy, gitignored), made here.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import psutil
from anyio.abc import Process
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from bench.common import RESULTS, peak_rss_mb, percentiles, write_result

ROOT = Path(__file__).resolve().parents[2]
PROXY_VENV = ROOT / "bench" / ".venv-mcp-proxy"
PROXY_VERSION = "0.13.0"
SOPHIA = str(Path(sys.executable).with_name("sophia"))
CHILD = [sys.executable, "-m", "bench.host.child"]
MINIMAL_CHILD = [sys.executable, "-m", "bench.host.minimal_child"]

CALLS = int(os.environ.get("BENCH_CALLS", "2000"))
HTTP_CALLS = int(os.environ.get("BENCH_HTTP_CALLS", "1000"))
CAPACITY_S = float(os.environ.get("BENCH_CAPACITY_S", "12"))
WORKERS = [int(w) for w in os.environ.get("BENCH_WORKERS", "8,32,96").split(",")]
MANY_CLIENTS = int(os.environ.get("BENCH_MANY_CLIENTS", "1000"))
MANY_RATE = float(os.environ.get("BENCH_MANY_RATE", "300"))
MANY_S = float(os.environ.get("BENCH_MANY_S", "60"))
CONNECT_RUNS = int(os.environ.get("BENCH_CONNECT_RUNS", "3"))
REAL_WORKERS = [int(w) for w in os.environ.get("BENCH_REAL_WORKERS", "4,16,64").split(",")]
SUITE = ("memory", "snowflake", "docker", "pulumi", "gong", "retool")
REAL_CHILD = [str(Path(sys.executable).with_name("sophia-memory"))]
REAL_TOOL = "memory_stats"
WARM_UP_CALLS = 20
BLOCK = 200
ALL_PHASES = ("hop", "http", "many", "connect", "real")
PHASES = os.environ.get("BENCH_PHASES", ",".join(ALL_PHASES)).split(",")
CONNECT_CONCURRENCY = 25
READ_TIMEOUT_S = 60.0
MODERN = "2026-07-28"
HANDSHAKE = "2025-11-25"
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


def _when() -> dict[str, Any]:
    return {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(home: Path, config: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "SOPHIA_HOME": str(home), "PYTHONPATH": str(ROOT)}
    if config is not None:
        env["SOPHIA_CONFIG"] = str(config)
    return env


def _ensure_proxy() -> Path:
    binary = PROXY_VENV / "bin" / "mcp-proxy"
    if not binary.exists():
        subprocess.run(["uv", "venv", "-q", str(PROXY_VENV)], check=True)
        subprocess.run(["uv", "pip", "install", "-q", "--python", str(PROXY_VENV / "bin" / "python"),
                        f"mcp-proxy=={PROXY_VERSION}"], check=True)
    return binary


def _config(directory: Path, child: list[str]) -> Path:
    path = directory / "sophia.toml"
    path.write_text(
        "[host]\nsemantic_search = false\ninstalled_servers = false\n\n[servers.bench]\n"
        f"command = {json.dumps(child)}\nenv = {{ PYTHONPATH = {json.dumps(str(ROOT))} }}\n"
    )
    return path


async def _until_listed(client: Client, tool: str = "add", timeout: float = 120) -> None:
    with anyio.fail_after(timeout):
        while tool not in {t.name for t in (await client.list_tools(cache_mode="bypass")).tools}:
            await anyio.sleep(0.2)


async def _sequential(client: Client, n: int) -> list[float]:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        result = await client.call_tool("add", {"a": i, "b": 1})
        samples.append(time.perf_counter() - start)
        if result.is_error:
            raise RuntimeError(f"add failed: {result.content}")
    return samples


async def hop_over_stdio(home: Path, config: Path) -> dict[str, Any]:
    direct = Client(StdioServerParameters(command=CHILD[0], args=CHILD[1:], env=_env(home)))
    hosted = Client(StdioServerParameters(command=SOPHIA, args=["up", "--transport", "stdio"],
                                          env=_env(home, config)))
    samples: dict[str, list[float]] = {"direct": [], "host": []}
    async with direct, hosted:
        await _until_listed(hosted)
        for client in (direct, hosted):
            await _sequential(client, 100)  # warm-up
        for _ in range(max(1, CALLS // BLOCK)):
            samples["direct"] += await _sequential(direct, BLOCK)
            samples["host"] += await _sequential(hosted, BLOCK)
    d, h = percentiles(samples["direct"]), percentiles(samples["host"])
    return {
        "direct": d, "host": h,
        "added_p50_ms": round(h["p50_ms"] - d["p50_ms"], 4), "added_p99_ms": round(h["p99_ms"] - d["p99_ms"], 4),
    }


@asynccontextmanager
async def host_http(
    home: Path, child: list[str], tool: str = "add"
) -> AsyncIterator[tuple[str, dict[str, str], Process]]:
    from sophia_shared.auth import Role, TokenStore

    os.environ["SOPHIA_HOME"] = str(home)
    _record, token = TokenStore(home / "tokens.json").create(f"bench-{time.time_ns()}", Role.DEVELOPER)
    port = _port()
    with tempfile.TemporaryDirectory() as tmp:
        process = await anyio.open_process([SOPHIA, "up", "--port", str(port)],
                                           env=_env(home, _config(Path(tmp), child)),
                                           stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        try:
            assert process.stderr is not None
            seen = b""
            with anyio.fail_after(120):
                async for chunk in process.stderr:
                    seen += chunk
                    if b"serving on" in seen:
                        break
            headers = {"Authorization": f"Bearer {token}"}
            url = f"http://127.0.0.1:{port}/mcp"
            async with _client(url, headers) as client:
                await _until_listed(client, tool)
            await _until_steady(home)
            yield url, headers, process
        finally:
            process.terminate()
            with anyio.move_on_after(30):
                await process.wait()


async def _until_steady(home: Path, timeout: float = 180) -> bool:
    """Wait until the host's start-up work is done: every child's standby spare is up (it is kept only
    after its own check ran, which follows the active child's first check). Until then a spare's start
    and both checks (sophia-memory's loads its embedder) compete with the calls for the 2 cores, which
    is start-up cost, not capacity. False if it did not settle in `timeout` (standby off, or a child
    without one)."""
    status = home / "host" / "status.json"
    with anyio.move_on_after(timeout):
        while True:
            try:
                servers = json.loads(status.read_text()).get("servers", [])
            except (OSError, ValueError):
                servers = []
            if servers and all(s.get("standby_pid") for s in servers):
                await anyio.sleep(1.0)  # the spare's own check has just finished
                return True
            await anyio.sleep(0.5)
    return False


@asynccontextmanager
async def proxy_http(
    home: Path, child: list[str], tool: str = "add"
) -> AsyncIterator[tuple[str, dict[str, str], Process]]:
    binary = _ensure_proxy()
    port = _port()
    process = await anyio.open_process(
        [str(binary), "--port", str(port), "--host", "127.0.0.1", "--log-level", "WARNING", "--pass-environment",
         "--", *child], env=_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        with anyio.fail_after(120):
            while True:
                try:
                    async with _client(url, {}) as client:
                        await _until_listed(client, tool)
                        break
                except (OSError, httpx2.HTTPError, RuntimeError, ExceptionGroup):
                    await anyio.sleep(0.3)
        yield url, {}, process
    finally:
        process.terminate()
        with anyio.move_on_after(30):
            await process.wait()


@asynccontextmanager
async def _client(url: str, headers: dict[str, str]) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60.0)) as http, \
            Client(streamable_http_client(url, http_client=http), cache=None,
                   read_timeout_seconds=READ_TIMEOUT_S) as client:
        # A response that never comes counts as an error after READ_TIMEOUT_S instead of stalling the run.
        yield client


class WireClient:
    """One connection sending tools/call as the SDK client puts it on the wire, with none of its
    per-call Python work: on 2 cores the SDK client would otherwise cost more CPU than the gateway
    it measures. 2026-era (the host): stateless POSTs with the _meta envelope; handshake-era
    (mcp-proxy, mcp<2): an initialize, then POSTs in its session."""

    def __init__(self, url: str, headers: dict[str, str], modern: bool, tool: str = "add"):
        self.url = url
        self.modern = modern
        self.tool = tool
        self.http = httpx2.AsyncClient(
            headers={**headers, "Accept": "application/json, text/event-stream", "Content-Type": "application/json"},
            timeout=httpx2.Timeout(READ_TIMEOUT_S), limits=httpx2.Limits(max_connections=1),
        )
        self.next_id = 0

    async def open(self) -> WireClient:
        if self.modern:
            self.http.headers.update({"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call",
                                      "Mcp-Name": self.tool})
            return self
        init = await self.http.post(self.url, json={
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": HANDSHAKE, "capabilities": {},
                       "clientInfo": {"name": "bench", "version": "0"}},
        })
        init.raise_for_status()
        self.http.headers.update({"Mcp-Session-Id": init.headers["mcp-session-id"], "MCP-Protocol-Version": HANDSHAKE})
        done = await self.http.post(self.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        done.raise_for_status()
        return self

    async def add(self, a: int) -> bool:
        self.next_id += 1
        params: dict[str, Any] = {"name": "add", "arguments": {"a": a, "b": 1}}
        if self.modern:
            params["_meta"] = MODERN_META
        response = await self.http.post(self.url, content=json.dumps(
            {"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call", "params": params}))
        body = response.text
        if body.startswith("event:") or body.startswith("data:"):
            body = next(line[5:] for line in body.splitlines() if line.startswith("data:"))
        message = json.loads(body)
        return response.status_code == 200 and "result" in message and not message["result"].get("isError")

    async def aclose(self) -> None:
        await self.http.aclose()


async def http_latency(url: str, headers: dict[str, str]) -> dict[str, float]:
    async with _client(url, headers) as client:
        await _sequential(client, 100)
        return percentiles(await _sequential(client, HTTP_CALLS))


WRK_SCRIPT = """
local counter = 0
local failed = 0
local headers = HEADERS
function setup(thread) end
function request()
  counter = counter + 1
  local body = string.format(BODY, counter, counter)
  return wrk.format("POST", nil, headers, body)
end
function response(status, hdrs, body)
  if status ~= 200 or not string.find(body, '"isError":false', 1, true) then failed = failed + 1 end
end
function done(summary, latency, requests)
  io.write(string.format('{"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p99_us": %d}\\n', summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


async def _session_headers(url: str, headers: dict[str, str], modern: bool, tool: str = "add") -> dict[str, str]:
    client = await WireClient(url, headers, modern, tool).open()
    try:
        return {k: v for k, v in client.http.headers.items() if k.lower() not in ("accept-encoding", "user-agent")}
    finally:
        await client.aclose()


async def capacity(url: str, headers: dict[str, str], workers: int, modern: bool,
                   tool: str = "add") -> dict[str, Any]:
    """Closed-loop calls/s with `workers` connections, driven by wrk (C, one thread): a Python load
    generator on the same 2 cores would cost about as much CPU per call as the gateway it measures.
    `tool` other than add is called without arguments."""
    wire = await _session_headers(url, headers, modern, tool)
    meta: dict[str, Any] = dict(MODERN_META) if modern else {}
    if tool == "add":
        params: dict[str, Any] = {"name": tool, "arguments": {"a": 0, "b": 1}}
    else:
        # The Lua script formats two numbers into every body: add's `a`, or here a _meta key no server reads.
        params = {"name": tool, "arguments": {}}
        meta["bench/n"] = 0
    if meta:
        params["_meta"] = meta
    body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "tools/call", "params": params})
    # Every request gets its own id (a handshake-era session matches responses by id).
    body = body.replace('"id": 0', '"id": %d').replace('"a": 0', '"a": %d').replace('"bench/n": 0', '"bench/n": %d')
    lua_headers = "{" + ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in wire.items()) + "}"
    script = WRK_SCRIPT.replace("HEADERS", lua_headers).replace("BODY", json.dumps(body))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    try:
        run = await anyio.run_process(["wrk", "-t1", f"-c{workers}", f"-d{CAPACITY_S:g}s", "--timeout", "30s",
                                       "-s", fh.name, url], check=True)
    finally:
        os.unlink(fh.name)
    line = [x for x in run.stdout.decode().splitlines() if x.startswith("{")][-1]
    stats = json.loads(line)
    seconds = stats["duration_us"] / 1e6
    return {"workers": workers, "calls": stats["requests"], "errors": stats["non_2xx"] + stats["socket_errors"],
            "calls_per_s": round(stats["requests"] / seconds, 1), "p50_ms": stats["p50_us"] / 1000,
            "p99_ms": stats["p99_us"] / 1000}


def _ensure_wrk() -> None:
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)


def _tree_rss_mb(pid: int) -> tuple[float, float]:
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
        own = root.memory_info().rss
        total = 0
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        return own / 2**20, total / 2**20
    except psutil.Error:
        return 0.0, 0.0


async def many_clients(url: str, headers: dict[str, str], host_pid: int) -> dict[str, Any]:
    """Each client lives in its own task (flat, not nested: 1,000 nested task groups overflow the stack)."""
    latencies: list[float] = []
    errors = {"call": 0, "connect": 0}
    peak = {"host": 0.0, "tree": 0.0}
    total = int(MANY_RATE * MANY_S)
    connected = 0
    all_connected = anyio.Event()
    finished = anyio.Event()
    connecting = anyio.Semaphore(CONNECT_CONCURRENCY)
    streams = [anyio.create_memory_object_stream[tuple[float, int]](total) for _ in range(MANY_CLIENTS)]

    async def one(client: WireClient, at: float, i: int) -> None:
        try:
            ok = await client.add(i)
        except Exception:  # a failed call is a result of this benchmark
            errors["call"] += 1
            return
        if not ok:
            errors["call"] += 1
            return
        latencies.append(anyio.current_time() - at)

    async def hold(index: int) -> None:
        nonlocal connected
        _send, receive = streams[index]
        client: WireClient | None = None
        try:
            async with connecting:
                client = await WireClient(url, headers, modern=True).open()
                # The connection opens with the first request: make it now, as a held-open client would.
                if not await client.add(-1):
                    errors["connect"] += 1
        except Exception:  # a refused connection is a result of this benchmark
            errors["connect"] += 1
            client = None
        connected += 1
        if connected == MANY_CLIENTS:
            all_connected.set()
        if client is None:
            async with receive:
                async for _ in receive:
                    errors["call"] += 1
            return
        try:
            async with receive, anyio.create_task_group() as calls:
                async for at, i in receive:
                    calls.start_soon(one, client, at, i)
        finally:
            await client.aclose()

    async def sample_rss() -> None:
        while not finished.is_set():
            own, tree = _tree_rss_mb(host_pid)
            peak["host"], peak["tree"] = max(peak["host"], own), max(peak["tree"], tree)
            with anyio.move_on_after(0.5):
                await finished.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(sample_rss)
        async with anyio.create_task_group() as holders:
            connect_started = anyio.current_time()
            for index in range(MANY_CLIENTS):
                holders.start_soon(hold, index)
            await all_connected.wait()
            connect_s = anyio.current_time() - connect_started
            started = anyio.current_time() + 0.5
            for i in range(total):
                at = started + i / MANY_RATE
                delay = at - anyio.current_time()
                if delay > 0:
                    await anyio.sleep(delay)
                streams[i % MANY_CLIENTS][0].send_nowait((at, i))
            for send, _receive in streams:
                await send.aclose()
            # Leaving waits for the calls still in flight; each client closes when its stream runs dry.
        elapsed = anyio.current_time() - started
        finished.set()
    return {
        "clients": MANY_CLIENTS, "offered_per_s": MANY_RATE, "seconds": MANY_S, "calls": total,
        "errors": errors["call"], "connect_errors": errors["connect"],
        "completed_per_s": round(len(latencies) / elapsed, 1), "latency": percentiles(latencies or [0.0]),
        "connect_all_s": round(connect_s, 2), "peak_rss_mb": {"host": round(peak["host"], 1),
                                                             "host_and_children": round(peak["tree"], 1)},
    }


async def http_phase(home: Path, child: list[str]) -> dict[str, Any]:
    """HTTP latency and capacity through the host, then mcp-proxy, both in front of `child`."""
    measured = _when()
    out: dict[str, Any] = {}
    async with host_http(home, child) as (url, headers, _process):
        out["http_latency_host"] = {**await http_latency(url, headers), **measured}
        out["capacity_host"] = [await capacity(url, headers, w, modern=True) for w in WORKERS]
    async with proxy_http(home, child) as (url, headers, _process):
        out["http_latency_mcp_proxy"] = {**await http_latency(url, headers), **measured}
        out["capacity_mcp_proxy"] = [await capacity(url, headers, w, modern=False) for w in WORKERS]
    return out


# -- 5. connect: spawn → complete tools/list ------------------------------------------------------------


async def _spawn_to_list(command: list[str], env: dict[str, str]) -> tuple[float, set[str]]:
    """Seconds from spawning `command` to the end of its first tools/list, and the servers it listed."""
    started = time.perf_counter()
    async with Client(StdioServerParameters(command=command[0], args=command[1:], env=env), cache=None,
                      read_timeout_seconds=READ_TIMEOUT_S) as client:
        tools = (await client.list_tools(cache_mode="bypass")).tools
        elapsed = time.perf_counter() - started
    return elapsed, {t.name.split("_", 1)[0] for t in tools}


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[len(ordered) // 2], 3)


async def connect_phase(directory: Path) -> dict[str, Any]:
    """Each server's own cold start, then the host composing all six, cold and warm."""
    none = directory / "no-sophia.toml"  # no sophia.toml: every installed server on its defaults, as `make run`
    children: dict[str, list[float]] = {name: [] for name in SUITE}
    host: dict[str, list[float]] = {"cold": [], "warm": [], "cold_spawned": []}
    complete = {"cold": True, "warm": True, "cold_spawned": True}
    for run in range(CONNECT_RUNS):
        for name in SUITE:
            home = directory / f"child-{name}-{run}"
            home.mkdir()
            env = {**_env(home, none), "SOPHIA_STDIO_ROLE": "admin"}
            seconds, _servers = await _spawn_to_list([str(Path(sys.executable).with_name(f"sophia-{name}"))], env)
            children[name].append(seconds)
        home = directory / f"host-{run}"
        home.mkdir()
        env = {**_env(home, none), "SOPHIA_STDIO_ROLE": "admin"}
        spawned = directory / f"host-spawned-{run}"
        spawned.mkdir()
        # The cold run leaves the catalogue the warm run answers from; cold_spawned is a cold start
        # with every child spawned (SOPHIA_HOST_FORK_SERVER=false), for comparison in the same run.
        for kind, kind_env in (("cold", env), ("warm", env), ("cold_spawned", {
                **_env(spawned, none), "SOPHIA_STDIO_ROLE": "admin", "SOPHIA_HOST_FORK_SERVER": "false"})):
            seconds, servers = await _spawn_to_list([SOPHIA, "up", "--transport", "stdio"], kind_env)
            host[kind].append(seconds)
            # Unconfigured Retool lists no tool, so five servers' prefixes (and the host's own) must show.
            complete[kind] &= set(SUITE) - {"retool"} <= servers
    slowest = max(_median(v) for v in children.values())
    return {
        "runs": CONNECT_RUNS, **_when(),
        "child_cold_s": {name: _median(v) for name, v in children.items()},
        "slowest_child_cold_s": slowest,
        "host_cold_s": _median(host["cold"]), "host_warm_s": _median(host["warm"]),
        "host_cold_over_slowest_child": round(_median(host["cold"]) / slowest, 2),
        "host_cold_spawned_s": _median(host["cold_spawned"]),
        "host_cold_spawned_over_slowest_child": round(_median(host["cold_spawned"]) / slowest, 2),
        "every_server_listed": complete, "samples_s": {"host": host, "children": children},
    }


# -- 6. capacity in front of a real Sophia child ---------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc: far less sensitive to other
    load on the machine than wall time, so a run on a busy machine still says where the time goes."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _active_child(home: Path) -> int | None:
    """The pid of the host's (only) child serving calls, as its status says (its standby is another)."""
    try:
        servers = json.loads((home / "host" / "status.json").read_text()).get("servers", [])
    except (OSError, ValueError):
        return None
    pid = servers[0].get("pid") if servers else None
    return pid if isinstance(pid, int) else None


def _busiest_child(pid: int) -> int | None:
    """mcp-proxy's child (it has one), or the busiest of a process's children."""
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return None
    return max(kids, key=lambda p: _cpu_s(p.pid)).pid if kids else None


def _cpu_ms_per_call(before: dict[str, float], pids: dict[str, int], calls: int) -> dict[str, float]:
    return {name: round((_cpu_s(pid) - before[name]) * 1000 / max(calls, 1), 3) for name, pid in pids.items()}


async def _metered(pids: dict[str, int], run: Any) -> dict[str, Any]:
    """`await run()` (a capacity figure) with each named process's CPU-ms per call during it."""
    before = {name: _cpu_s(pid) for name, pid in pids.items()}
    measured: dict[str, Any] = await run()
    measured["cpu_ms_per_call"] = _cpu_ms_per_call(before, pids, measured["calls"])
    return measured


async def stdio_capacity(command: list[str], env: dict[str, str], tool: str, workers: int) -> dict[str, Any]:
    """The child's own calls/s: `workers` tools/call kept in flight on its stdio for CAPACITY_S (the
    driver is a few lines of asyncio per call; the child's per-call work is far larger)."""
    import asyncio

    proc = await asyncio.create_subprocess_exec(*command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                stderr=subprocess.DEVNULL, limit=2**24)
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    async def request(message: dict[str, Any]) -> None:
        stdin.write(json.dumps(message).encode() + b"\n")
        await stdin.drain()

    try:
        await request({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": HANDSHAKE, "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}})
        await asyncio.wait_for(stdout.readline(), 120)
        await request({"jsonrpc": "2.0", "method": "notifications/initialized"})
        for warm in range(1, WARM_UP_CALLS + 1):  # the first call opens the store: not part of the rate
            await request({"jsonrpc": "2.0", "id": -warm, "method": "tools/call",
                           "params": {"name": tool, "arguments": {}}})
            while json.loads(await asyncio.wait_for(stdout.readline(), READ_TIMEOUT_S)).get("id") != -warm:
                pass
        next_id, done, errors, latencies = 0, 0, 0, []
        sent_at: dict[int, float] = {}

        async def send_one() -> None:
            nonlocal next_id
            next_id += 1
            sent_at[next_id] = time.perf_counter()
            await request({"jsonrpc": "2.0", "id": next_id, "method": "tools/call",
                           "params": {"name": tool, "arguments": {}}})

        for _ in range(workers):
            await send_one()
        cpu_before = _cpu_s(proc.pid)
        started = time.perf_counter()
        while time.perf_counter() - started < CAPACITY_S:
            line = await asyncio.wait_for(stdout.readline(), READ_TIMEOUT_S)
            message = json.loads(line)
            if "id" not in message or message["id"] not in sent_at:
                continue  # a notification
            latencies.append(time.perf_counter() - sent_at.pop(message["id"]))
            done += 1
            if "result" not in message or message["result"].get("isError"):
                errors += 1
            await send_one()
        elapsed = time.perf_counter() - started
        cpu = {"child": round((_cpu_s(proc.pid) - cpu_before) * 1000 / max(done, 1), 3)}
    finally:
        stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    stats = percentiles(latencies or [0.0])
    return {"workers": workers, "calls": done, "errors": errors, "calls_per_s": round(done / elapsed, 1),
            "p50_ms": stats["p50_ms"], "p99_ms": stats["p99_ms"], "cpu_ms_per_call": cpu}


@asynccontextmanager
async def child_http(home: Path, command: list[str]) -> AsyncIterator[tuple[str, int]]:
    """A Sophia server on its own streamable HTTP (loopback, no tokens)."""
    port = _port()
    process = await anyio.open_process([*command, "serve", "--transport", "http", "--port", str(port),
                                        "--allow-unauthenticated"], env=_env(home),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        with anyio.fail_after(120):
            while True:
                try:
                    async with _client(url, {}) as client:
                        await _until_listed(client, REAL_TOOL)
                        break
                except (OSError, httpx2.HTTPError, RuntimeError, ExceptionGroup):
                    await anyio.sleep(0.3)
        yield url, process.pid
    finally:
        process.terminate()
        with anyio.move_on_after(30):
            await process.wait()


async def _warm_up(url: str, headers: dict[str, str]) -> None:
    """A few calls first: the first one opens the child's store, which is not what capacity measures."""
    async with _client(url, headers) as client:
        for _ in range(WARM_UP_CALLS):
            result = await client.call_tool(REAL_TOOL, {})
            if result.is_error:
                raise RuntimeError(f"{REAL_TOOL} failed: {result.content}")


async def real_child_phase(home: Path) -> dict[str, Any]:
    """memory_stats of sophia-memory: directly (stdio, then its own HTTP), through the host, through mcp-proxy."""
    env = {**_env(home), "SOPHIA_STDIO_ROLE": "admin"}
    out: dict[str, Any] = {"tool": REAL_TOOL, "child": "sophia-memory", **_when()}
    out["direct_stdio"] = [await stdio_capacity(REAL_CHILD, env, REAL_TOOL, w) for w in REAL_WORKERS]
    async with child_http(home, REAL_CHILD) as (url, pid):
        await _warm_up(url, {})
        out["direct_http"] = [await _metered({"child": pid}, lambda w=w: capacity(url, {}, w, modern=True,
                                                                                  tool=REAL_TOOL))
                              for w in REAL_WORKERS]
    async with host_http(home, REAL_CHILD, REAL_TOOL) as (url, headers, process):
        await _warm_up(url, headers)
        child = _active_child(home)
        pids = {"host": process.pid, **({"child": child} if child is not None else {})}
        out["host"] = [await _metered(pids, lambda w=w: capacity(url, headers, w, modern=True, tool=REAL_TOOL))
                       for w in REAL_WORKERS]
    async with proxy_http(home, REAL_CHILD, REAL_TOOL) as (url, headers, process):
        await _warm_up(url, headers)
        child = _busiest_child(process.pid)
        pids = {"mcp_proxy": process.pid, **({"child": child} if child is not None else {})}
        out["mcp_proxy"] = [await _metered(pids, lambda w=w: capacity(url, headers, w, modern=False, tool=REAL_TOOL))
                            for w in REAL_WORKERS]
    best = {k: max(c["calls_per_s"] for c in out[k]) for k in ("direct_stdio", "direct_http", "host", "mcp_proxy")}
    # CPU-ms per call at each lane's best run: what the calls/s ratio comes from (2 cores, shared).
    out["cpu_ms_per_call"] = {k: max(out[k], key=lambda c: c["calls_per_s"])["cpu_ms_per_call"]
                              for k in ("direct_stdio", "direct_http", "host", "mcp_proxy")}
    out["best_calls_per_s"] = best
    out["host_over_direct_stdio"] = round(best["host"] / best["direct_stdio"], 2) if best["direct_stdio"] else None
    out["host_over_direct_http"] = round(best["host"] / best["direct_http"], 2) if best["direct_http"] else None
    out["mcp_proxy_over_direct_stdio"] = (round(best["mcp_proxy"] / best["direct_stdio"], 2)
                                          if best["direct_stdio"] else None)
    return out


def _http_summary(measured: dict[str, Any]) -> str:
    """Sets measured["capacity_ratio"] (best host / best mcp-proxy calls/s) and says it in words."""
    best_host = max(c["calls_per_s"] for c in measured["capacity_host"])
    best_proxy = max(c["calls_per_s"] for c in measured["capacity_mcp_proxy"])
    measured["capacity_ratio"] = round(best_host / best_proxy, 2) if best_proxy else None
    return (f"HTTP p50 host {measured['http_latency_host']['p50_ms']:.2f} vs mcp-proxy "
            f"{measured['http_latency_mcp_proxy']['p50_ms']:.2f} ms; capacity {best_host:.0f} vs {best_proxy:.0f} "
            f"calls/s (x{measured['capacity_ratio']})")


async def main() -> None:
    phases = set(PHASES)
    previous = RESULTS / "host.json"
    # A rerun of some phases keeps the others' last results; each phase says when it ran.
    result: dict[str, Any] = json.loads(previous.read_text())["result"] if phases != set(ALL_PHASES) and \
        previous.exists() else {}
    result.update({"calls": CALLS, "http_calls": HTTP_CALLS})
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        if "hop" in phases:
            print("hop over stdio ...", file=sys.stderr)
            result["hop_stdio"] = {**await hop_over_stdio(home, _config(Path(tmp), CHILD)), **_when()}
            write_result("host", result, "partial: hop over stdio")
        if "http" in phases:
            _ensure_wrk()
            print("http latency and capacity, SDK child: host, then mcp-proxy ...", file=sys.stderr)
            result.update(await http_phase(home, CHILD))
            print("http latency and capacity, minimal child: host, then mcp-proxy ...", file=sys.stderr)
            result["minimal_child"] = await http_phase(home, MINIMAL_CHILD)
            write_result("host", result, "partial: hop, HTTP latency and capacity")
        if "connect" in phases:
            print("connect: spawn -> complete tools/list, each server and the host cold/warm ...", file=sys.stderr)
            result["connect"] = await connect_phase(Path(tmp))
            write_result("host", result, "partial: connect")
        if "real" in phases:
            _ensure_wrk()
            print("capacity in front of a real Sophia child (sophia-memory) ...", file=sys.stderr)
            result["real_child"] = await real_child_phase(home)
            write_result("host", result, "partial: real child")
        if "many" in phases:
            print("many clients ...", file=sys.stderr)
            measured = _when()
            async with host_http(home, CHILD) as (url, headers, process):
                result["many_clients"] = {**await many_clients(url, headers, process.pid), **measured}
    result["mcp_proxy_version"] = PROXY_VERSION
    result["bench_process_peak_rss_mb"] = peak_rss_mb()
    # The capacity target is about the gateways, so it is judged on minimal_child.capacity_ratio.
    result["targets"] = {"added_p50_ms": 0.5, "added_p99_ms": 2.0, "capacity_ratio": 3.0,
                         "many_clients_errors": 0, "many_clients_p99_ms": 200,
                         "host_warm_s": 1.5, "host_cold_over_slowest_child": 1.0, "real_child_host_over_direct": 0.9}
    parts = []
    if "hop_stdio" in result:
        hop = result["hop_stdio"]
        parts.append(f"stdio hop +{hop['added_p50_ms']:.3f} ms p50 / +{hop['added_p99_ms']:.3f} ms p99")
    if "capacity_host" in result and "capacity_mcp_proxy" in result:
        parts.append(f"SDK child: {_http_summary(result)}")
    if "minimal_child" in result:
        parts.append(f"minimal child: {_http_summary(result['minimal_child'])}")
    if "connect" in result:
        c = result["connect"]
        spawned = f" (children spawned, no fork server: {c['host_cold_spawned_s']:.2f} s)" \
            if "host_cold_spawned_s" in c else ""
        parts.append(f"spawn->tools/list: host warm {c['host_warm_s']:.2f} s, cold {c['host_cold_s']:.2f} s{spawned}, "
                     f"slowest server alone {c['slowest_child_cold_s']:.2f} s")
    if "real_child" in result:
        r = result["real_child"]
        cpu = r.get("cpu_ms_per_call") or {"host": {}, "direct_stdio": {"child": 0}}  # absent before it was measured
        parts.append(f"real child ({r['tool']}): host/direct stdio x{r['host_over_direct_stdio']}, "
                     f"mcp-proxy/direct x{r['mcp_proxy_over_direct_stdio']} "
                     f"({r['best_calls_per_s']['host']:.0f} vs {r['best_calls_per_s']['direct_stdio']:.0f} calls/s; "
                     f"CPU-ms/call host {cpu['host'].get('host', 0):.2f} + child {cpu['host'].get('child', 0):.2f} "
                     f"vs child alone {cpu['direct_stdio'].get('child', 0):.2f})")
    if "many_clients" in result:
        many = result["many_clients"]
        parts.append(
            f"{many['clients']} clients @ {many['offered_per_s']:.0f}/s offered: {many['errors']} errors, "
            f"{many['completed_per_s']:.0f}/s completed, p99 {many['latency']['p99_ms']:.1f} ms, "
            f"host RSS {many['peak_rss_mb']['host']} MB"
        )
    write_result("host", result, "; ".join(parts))


if __name__ == "__main__":
    anyio.run(main)
