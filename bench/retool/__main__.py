"""bench/retool: the Retool server against the local contract server (real HTTP on 127.0.0.1).

1. List 5,000 users through `retool_list_users` (in-memory MCP client, full request path with
   audit), page by page to the end: requests made and real wall time at a high configured rate
   (6,000/min, so the limiter never waits), and the wall time at the default 45/min, computed by
   running the real limiter on a virtual clock (its waits are exact) plus the measured request time.
2. Overhead of the tool against a bare httpx call: one user by id, sequential, interleaved so all
   three see the same machine load: bare httpx, RetoolClient (throttle + envelope + error mapping),
   and the MCP tool (validation, role, audit, projection).

No timing is asserted anywhere; the numbers go to bench/results/retool.json.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx
from sophia_retool.client import RetoolClient
from sophia_retool.settings import RetoolSettings
from sophia_retool.tools import build_server
from sophia_shared.rest_limits import RateLimiter
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect, structured

from bench.common import peak_rss_mb, percentiles, write_result

if TYPE_CHECKING:
    from servers.retool.contract_server import ContractServer

ROOT = Path(__file__).resolve().parents[2]
USERS = int(os.environ.get("BENCH_RETOOL_USERS", "5000"))
OVERHEAD_CALLS = int(os.environ.get("BENCH_CALLS", "300"))
TOKEN = "retool_01benchtoken"
FAST_RATE = 6_000
DEFAULT_RATE = 45
PAGE = 100


class VirtualClock:
    """Time that moves only when the limiter sleeps; calls here are sequential, so nothing is in flight."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)
        await anyio.sleep(0)


def _settings(server: ContractServer, rate: int) -> RetoolSettings:
    return RetoolSettings(base_url=server.base_url, api_token=TOKEN, rate_limit_per_minute=rate)


async def _list_all(server: ContractServer, client: RetoolClient, rate: int) -> dict[str, Any]:
    settings = _settings(server, rate)
    mcp_server = build_server(settings, client=client)
    server.clear_log()
    seen = 0
    tool_calls = 0
    cursor: str | None = None
    start = time.perf_counter()
    async with connect(mcp_server, principal=Principal("bench", Role.VIEWER, kind="bench")) as mcp:
        while True:
            args: dict[str, Any] = {"limit": PAGE} | ({"cursor": cursor} if cursor else {})
            result = await mcp.call("retool_list_users", args)
            tool_calls += 1
            page = structured(result)
            seen += len(page["users"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
    elapsed = time.perf_counter() - start
    await client.aclose()
    log = server.records("/api/v2/users")
    return {
        "users_listed": seen,
        "tool_calls": tool_calls,
        "requests_made": len(log),
        "requests_429": sum(r.status == 429 for r in log),
        "real_wall_s": round(elapsed, 3),
        "limiter_waited_s": round(client.limiter.waited_s, 3),
    }


async def _overhead(server: ContractServer) -> dict[str, Any]:
    settings = _settings(server, 10_000)
    client = RetoolClient(settings)
    mcp_server = build_server(settings, client=RetoolClient(settings))
    user_id = next(iter(server.org.users))
    url = f"{server.base_url}/api/v2/users/{user_id}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    samples: dict[str, list[float]] = {"bare_httpx": [], "retool_client": [], "mcp_tool": []}
    async with (
        httpx.AsyncClient() as bare,
        connect(mcp_server, principal=Principal("bench", Role.VIEWER, kind="bench")) as mcp,
    ):

        async def bare_call() -> None:
            response = await bare.get(url, params={"includeGroups": "true"}, headers=headers)
            response.raise_for_status()
            assert response.json()["data"]["id"] == user_id

        async def client_call() -> None:
            assert (await client.get_user(user_id))["id"] == user_id

        async def tool_call() -> None:
            assert not (await mcp.call("retool_get_user", {"user_id": user_id})).is_error

        kinds = [("bare_httpx", bare_call), ("retool_client", client_call), ("mcp_tool", tool_call)]
        for i in range(OVERHEAD_CALLS + 20):
            # Rotating the order keeps any after-effect of one kind from landing on the same other kind.
            for name, call in kinds[i % 3 :] + kinds[: i % 3]:
                start = time.perf_counter()
                await call()
                if i >= 20:  # warm-up: connections, imports, first audit writes
                    samples[name].append(time.perf_counter() - start)
    await client.aclose()
    stats = {name: percentiles(values) for name, values in samples.items()}
    bare_p50 = stats["bare_httpx"]["p50_ms"]
    stats["overhead_p50_ms"] = {
        "retool_client_vs_bare": round(stats["retool_client"]["p50_ms"] - bare_p50, 3),
        "mcp_tool_vs_bare": round(stats["mcp_tool"]["p50_ms"] - bare_p50, 3),
    }
    return stats


async def main() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from servers.retool.contract_org import Org
    from servers.retool.contract_server import ContractServer

    all_scopes = {"users:read", "users:write", "groups:read", "apps:read"}
    # The contract server's own limit is set out of the way: the client's limiter is what is measured.
    server = ContractServer(Org(users=USERS), tokens={TOKEN: all_scopes}, rate_limit=1_000_000).start()
    try:
        fast_settings = _settings(server, FAST_RATE)
        fast = await _list_all(server, RetoolClient(fast_settings), FAST_RATE)
        clock = VirtualClock()
        default_settings = _settings(server, DEFAULT_RATE)
        limited_client = RetoolClient(default_settings, clock=clock, limiter=RateLimiter(DEFAULT_RATE, 60.0, clock))
        default = await _list_all(server, limited_client, DEFAULT_RATE)
        default["computed_wall_s"] = round(default["real_wall_s"] + default["limiter_waited_s"], 3)
        overhead = await _overhead(server)
    finally:
        server.stop()
    result = {
        "users": USERS,
        "page_size": PAGE,
        "list_users_fast_rate": {"rate_per_minute": FAST_RATE, **fast},
        "list_users_default_rate": {"rate_per_minute": DEFAULT_RATE, "clock": "virtual for limiter waits", **default},
        "get_user_overhead": overhead,
        "peak_rss_mb": peak_rss_mb(),
    }
    summary = (
        f"{USERS} users: {fast['requests_made']} requests / {fast['tool_calls']} tool calls; "
        f"{fast['real_wall_s']} s at {FAST_RATE}/min, {default['computed_wall_s']} s computed at {DEFAULT_RATE}/min "
        f"({default['limiter_waited_s']} s of limiter waits); get_user p50 bare "
        f"{overhead['bare_httpx']['p50_ms']:.2f} ms, client {overhead['retool_client']['p50_ms']:.2f} ms, "
        f"tool {overhead['mcp_tool']['p50_ms']:.2f} ms"
    )
    write_result("retool", result, summary)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as home:
        # The tool path writes audit records; keep them out of the user's SOPHIA_HOME.
        os.environ["SOPHIA_HOME"] = home
        # httpx logs every request at INFO; 10,000 lines would drown the summary.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        # The contract server shares this process (a thread); with the default 5 ms GIL switch
        # interval every request would wait for a hand-off, and latencies would measure that.
        sys.setswitchinterval(0.0002)
        anyio.run(main)
