"""bench/request_path: a trivial tool through SophiaServer (audit on) against a bare MCPServer, over stdio.

2,000 sequential calls each (p50/p99 and their ratio) and cold start (spawn → initialize result),
interleaved so both see the same machine load. Targets: p50 ratio ≤ 1.25, cold-start ratio ≤ 1.2.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from bench.common import percentiles, write_result

CALLS = int(os.environ.get("BENCH_CALLS", "2000"))
COLD_RUNS = int(os.environ.get("BENCH_COLD_RUNS", "10"))
ROOT = Path(__file__).resolve().parents[2]


def _params(kind: str, home: str) -> StdioServerParameters:
    env = {**os.environ, "SOPHIA_HOME": home, "PYTHONPATH": str(ROOT)}
    return StdioServerParameters(command=sys.executable, args=["-m", "bench.request_path.servers", kind], env=env)


async def _calls(kind: str, home: str) -> list[float]:
    samples: list[float] = []
    async with Client(_params(kind, home)) as client:
        for i in range(50):  # warm-up
            await client.call_tool("add", {"a": i, "b": 1})
        for i in range(CALLS):
            start = time.perf_counter()
            result = await client.call_tool("add", {"a": i, "b": 1})
            samples.append(time.perf_counter() - start)
            assert not result.is_error
    return samples


async def _cold(kind: str, home: str) -> float:
    start = time.perf_counter()
    async with Client(_params(kind, home)):
        elapsed = time.perf_counter() - start
    return elapsed


async def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        bare_calls = await _calls("bare", home)
        sophia_calls = await _calls("sophia", home)
        cold: dict[str, list[float]] = {"bare": [], "sophia": []}
        for _ in range(COLD_RUNS):
            for kind in ("bare", "sophia"):
                cold[kind].append(await _cold(kind, home))
        from sophia_shared.audit import AuditLog

        audited = len(AuditLog(home=Path(home)).records())
    bare_p, sophia_p = percentiles(bare_calls), percentiles(sophia_calls)
    cold_ms = {k: round(statistics.median(v) * 1000, 1) for k, v in cold.items()}
    result = {
        "calls": CALLS,
        "bare": bare_p,
        "sophia": sophia_p,
        "p50_ratio": round(sophia_p["p50_ms"] / bare_p["p50_ms"], 3),
        "p99_ratio": round(sophia_p["p99_ms"] / bare_p["p99_ms"], 3),
        "audit_records_written": audited,
        "cold_start_median_ms": cold_ms,
        "cold_start_ratio": round(cold_ms["sophia"] / cold_ms["bare"], 3),
        "cold_runs": COLD_RUNS,
        "targets": {"p50_ratio": 1.25, "cold_start_ratio": 1.2},
    }
    summary = (
        f"p50 {sophia_p['p50_ms']:.3f} vs {bare_p['p50_ms']:.3f} ms (ratio {result['p50_ratio']}), "
        f"p99 {sophia_p['p99_ms']:.3f} vs {bare_p['p99_ms']:.3f} ms, cold start {cold_ms['sophia']} vs "
        f"{cold_ms['bare']} ms (ratio {result['cold_start_ratio']}), {audited} audit records"
    )
    write_result("request_path", result, summary)


if __name__ == "__main__":
    anyio.run(main)
