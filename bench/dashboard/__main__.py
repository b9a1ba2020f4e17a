"""bench/dashboard: the live dashboard under load — how fast a call reaches the screen, and what it costs.

One real `sophia up --transport http` serving the test child (tests/host/child_server.py), offered
`--rate` calls/s of `demo_echo` (open loop, raw 2026-era POSTs on keep-alive connections, as in
bench/scale). First a baseline with nothing watching (`--baseline-seconds`), then `--seconds` with
one headless chromium (Playwright, Debian's build) logged in on /ui and `--sse-clients` plain SSE
clients on /ui/events, and `--reconnects` forced reconnects of the page spread over the run.

Measured: for every call record the page renders, the time from the record's own timestamp (taken
in the host when the call ended) to the row being in the DOM; events the page lost or got twice
across the reconnects (its ids are audit seqs, so a gap is a lost event); the host's RSS and CPU
(the host process alone, and with its child) in both phases; the bench's own CPU.

Targets (issue 18): render p95 ≤ 500 ms, 0 events lost across 10 forced reconnects.
Run: uv run --frozen python -m bench.dashboard [--seconds 60] [--rate 300]   (smoke: --seconds 5 --rate 50)
`--screenshot docs/dashboard.png` also saves the page as the README shows it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx

from bench.common import cpu_used, percentiles, tree_cpu_s, write_result

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from fixtures.dashboard_host import CHROMIUM, CHROMIUM_ARGS, DashboardHost, start_dashboard_host

from bench.dashboard.load import Caller, Sampler, drive
from bench.dashboard.watchers import browse, sse_client

CALL = ("demo_echo", {"text": "dashboard bench"})


async def phase(host: DashboardHost, caller: Caller, rate: float, seconds: float) -> dict[str, Any]:
    """Offer the load for `seconds` while sampling the host's RSS and CPU."""
    pid = host.process.process.pid if host.process.process is not None else os.getpid()
    sampler = Sampler(pid)
    tree_before, own_before = tree_cpu_s(pid), tree_cpu_s(pid, descendants=False)
    bench_before = tree_cpu_s(os.getpid(), descendants=False)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sampler.run)
        load = await drive(caller, rate, seconds, anyio.current_time() + 0.1)
        tg.cancel_scope.cancel()
    host_cpu = sum(cpu_used(own_before, tree_cpu_s(pid, descendants=False)).values())
    tree_cpu = sum(cpu_used(tree_before, tree_cpu_s(pid)).values())
    bench_cpu = sum(cpu_used(bench_before, tree_cpu_s(os.getpid(), descendants=False)).values())
    return {"load": load, "host_rss_mb": sampler.summary(), "host_cpu_pct": round(100 * host_cpu / seconds, 1),
            "host_and_child_cpu_pct": round(100 * tree_cpu / seconds, 1),
            "bench_cpu_pct": round(100 * bench_cpu / seconds, 1)}


async def run(args: argparse.Namespace, host: DashboardHost) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    caller = Caller(host.base + "/mcp", host.tokens["caller"], *CALL, connections=args.connections)
    await caller.open()
    try:
        for _ in range(20):  # warm the connections and the child before the clock starts
            await caller.call()
        baseline = await phase(host, caller, args.rate, args.baseline_seconds)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                watched = await watched_phase(args, host, caller, browser)
            finally:
                await browser.close()
    finally:
        await caller.aclose()
    return {"baseline": baseline, **watched}


async def watched_phase(args: argparse.Namespace, host: DashboardHost, caller: Caller, browser: Any) -> dict[str, Any]:
    page = await browse(browser, host)
    # Count only what happens from now on: the page's first records are a backfill of older calls.
    head = await anyio.to_thread.run_sync(_log_head, host)
    await page.wait_for_function(f"window.sophiaDashboard.lastSeq >= {head}", timeout=60_000)
    await page.evaluate("window.sophiaDashboard.latencies = []")
    clients: list[dict[str, Any]] = []
    async with anyio.create_task_group() as tg:
        for _ in range(args.sse_clients):
            tg.start_soon(sse_client, host, clients)

        async def reconnects() -> None:
            gap = args.seconds / (args.reconnects + 1)
            for _ in range(args.reconnects):
                await anyio.sleep(gap)  # the bench's own schedule, not a synchronisation
                await page.evaluate("window.sophiaDashboard.reconnect()")

        tg.start_soon(reconnects)
        watched = await phase(host, caller, args.rate, args.seconds)
        head = await anyio.to_thread.run_sync(_log_head, host)
        with anyio.fail_after(60):
            await page.wait_for_function(f"window.sophiaDashboard.lastSeq >= {head}", timeout=60_000)
        seen = await page.evaluate("(({lost, duplicates, received, opens, latencies}) => "
                                   "({lost, duplicates, received, opens, latencies}))(window.sophiaDashboard)")
        if args.screenshot:
            await anyio.to_thread.run_sync(_variety, host)
            await page.wait_for_selector("#approvals-body tr")
            await page.screenshot(path=str(args.screenshot), full_page=False)
        tg.cancel_scope.cancel()
    latencies = [ms / 1000 for ms in seen.pop("latencies")]
    return {"watched": watched, "page": {**seen, "render_latency": percentiles(latencies) if latencies else {}},
            "sse_clients": _clients_summary(clients), "log_head": head}


def _variety(host: DashboardHost) -> None:
    """A few calls that end otherwise, for the screenshot: an error, a refusal, a call waiting for approval."""
    with httpx.Client(timeout=60.0) as client:
        host.call(client, "caller", "demo_fail", {"code": "not_found"})
        host.call(client, "caller", "demo_admin", {})
        host.call(client, "caller", "demo_delete", {"item": "build-cache"})


def _log_head(host: DashboardHost) -> int:
    from sophia_shared.audit import AuditLog

    log = AuditLog(home=host.process.home)
    try:
        return log.last_seq()
    finally:
        log.close()


def _clients_summary(clients: list[dict[str, Any]]) -> dict[str, Any]:
    if not clients:
        return {}
    return {"clients": len(clients), "events_min": min(c["events"] for c in clients),
            "bytes_total": sum(c["bytes"] for c in clients), "last_id_min": min(c["last_id"] for c in clients)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the watched run")
    parser.add_argument("--baseline-seconds", type=float, default=20.0, help="length of the run with nothing watching")
    parser.add_argument("--rate", type=float, default=300.0, help="offered calls/s")
    parser.add_argument("--sse-clients", type=int, default=50)
    parser.add_argument("--reconnects", type=int, default=10, help="forced reconnects of the page")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections of the load")
    parser.add_argument("--screenshot", type=Path, default=None, help="save the page as PNG here at the end")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    host = start_dashboard_host(work)
    try:
        host.create_token("caller", "developer")
        host.create_token("watcher", "admin")
        with httpx.Client(timeout=120.0) as client:
            host.tool_names(client, "caller")  # held until the child has listed its tools
        began = time.perf_counter()
        result = anyio.run(run, args, host, backend_options={"use_uvloop": True})
        result["wall_s"] = round(time.perf_counter() - began, 1)
    finally:
        host.stop()
    result.update({"rate": args.rate, "seconds": args.seconds, "baseline_seconds": args.baseline_seconds,
                   "sse_clients": args.sse_clients, "reconnects": args.reconnects, "load_average": os.getloadavg()}
                  | {"sse": result.pop("sse_clients")})
    write_result("dashboard", result, _summary(result))


def _summary(result: dict[str, Any]) -> str:
    page, base, watched = result["page"], result["baseline"], result["watched"]
    p95 = page["render_latency"].get("p95_ms", float("nan"))
    return (
        f"{result['rate']:g} calls/s x {result['seconds']:g} s, 1 browser + {result['sse_clients']} SSE clients: "
        f"render p95 {p95:.0f} ms (target <= 500), {page['lost']} lost / {page['duplicates']} duplicated across "
        f"{result['reconnects']} forced reconnects ({page['opens']} opens); load errors "
        f"{base['load']['errors']}+{watched['load']['errors']}; host CPU {base['host_cpu_pct']:g}% -> "
        f"{watched['host_cpu_pct']:g}%, RSS max {base['host_rss_mb']['max']:g} -> {watched['host_rss_mb']['max']:g} MB "
        f"(without -> with the dashboard open)"
    )


if __name__ == "__main__":
    main()
