"""bench/recovery: a real Sophia child killed (SIGKILL) under load, and how soon calls succeed again.

The host runs in this process with the real `sophia-memory` server as its child (stdio, the SQLite
default in a fresh SOPHIA_HOME). W clients call `memory_stats` (a read tool) in a closed loop through
the host's request path; once they are flowing, the child's process is killed, KILLS times per mode,
each kill a first crash (the child has been up longer than healthy_after_s, so no backoff applies).

Measured per kill: recovery = from the kill to the first successful call *sent after* the kill (and,
for reference, serving_again = until the host routes to a new process); every
call is counted as ok, `unavailable` (the clean answer while the child is down) or wrong (anything
else: a lost call). Two modes side by side: `standby` (the default: a spare process, already
initialised, takes over) and `cold` (standby off: the first crash restarts at once, a cold start).
Target (issue 14): recovery ≤ 1 s, 0 calls lost.

    uv run --frozen python -m bench.recovery          # BENCH_KILLS=3 BENCH_WORKERS=4 BENCH_SERVER=memory
"""

from __future__ import annotations

import os
import signal
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from bench.common import write_result

KILLS = int(os.environ.get("BENCH_KILLS", "3"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "4"))
SERVER = os.environ.get("BENCH_SERVER", "memory")
TOOL = os.environ.get("BENCH_TOOL", "memory_stats")
HEALTHY_AFTER_S = 1.0
START_S = 180.0


class Load:
    """Closed-loop callers; each outcome is (sent, answered, code)."""

    def __init__(self) -> None:
        self.outcomes: list[tuple[float, float, str | None]] = []
        self.done = False

    async def caller(self, client: Any) -> None:
        from sophia_shared.testing import error_code

        while not self.done:
            sent = time.monotonic()
            result = await client.call(TOOL, {})
            self.outcomes.append((sent, time.monotonic(), error_code(result)))


def _serving_again(child: Any, old_pid: int) -> bool:
    from sophia_host.children import State

    return child.state is State.ready and child.pid not in (None, old_pid)


async def one_mode(standby: bool) -> dict[str, Any]:
    from sophia_host.children import State
    from sophia_host.config import HostSettings, installed_servers
    from sophia_host.server import HostServer
    from sophia_shared.testing import connect

    entries = [s for s in installed_servers() if s.name == SERVER]
    if not entries:
        raise SystemExit(f"bench/recovery: sophia-{SERVER} is not installed")
    settings = HostSettings(semantic_search=False, standby=standby, standby_after_s=0.0,
                            healthy_after_s=HEALTHY_AFTER_S)
    host = HostServer(settings, entries)
    child = host.children[0]
    kills: list[dict[str, Any]] = []
    load = Load()
    async with host.running():
        with anyio.fail_after(START_S):
            await host.wait_ready()
        async with connect(host) as client, anyio.create_task_group() as tg:
            for _ in range(WORKERS):
                tg.start_soon(load.caller, client)
            for _ in range(KILLS):
                with anyio.fail_after(START_S):
                    await host.until(lambda: child.state is State.ready)
                    if standby:
                        await child.wait_standby()
                    # Up longer than healthy_after_s: this kill is a first crash, restarted at once.
                    await anyio.sleep(HEALTHY_AFTER_S + 0.2)
                assert child.process is not None
                seen = len(load.outcomes)
                old_pid = child.process.pid
                killed_at = time.monotonic()
                os.kill(old_pid, signal.SIGKILL)
                with anyio.fail_after(START_S):
                    await host.until(partial(_serving_again, child, old_pid))
                    ready_at = time.monotonic()
                    while not any(sent > killed_at and code is None for sent, _, code in load.outcomes[seen:]):
                        await anyio.sleep(0.005)
                first_ok = min(done for sent, done, code in load.outcomes[seen:] if sent > killed_at and code is None)
                kills.append({"recovery_ms": round((first_ok - killed_at) * 1000, 1),
                              "serving_again_ms": round((ready_at - killed_at) * 1000, 1)})
            load.done = True
    codes = [code for _, _, code in load.outcomes]
    recoveries = [k["recovery_ms"] for k in kills]
    return {
        "kills": kills, "recovery_ms_median": statistics.median(recoveries), "recovery_ms_max": max(recoveries),
        "calls": len(codes), "ok": codes.count(None), "unavailable": codes.count("unavailable"),
        "lost": sum(1 for c in codes if c not in (None, "unavailable")), "restarts": child.restarts,
    }


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="sophia-bench-recovery-") as home:
        os.environ["SOPHIA_HOME"] = str(Path(home))
        results = {"standby": await one_mode(True), "cold": await one_mode(False)}
    warm, cold = results["standby"], results["cold"]
    summary = (
        f"{SERVER} child killed under load ({WORKERS} clients, {KILLS} kills): first ok call after "
        f"{warm['recovery_ms_median']:.0f} ms median / {warm['recovery_ms_max']:.0f} ms max with the standby, "
        f"{cold['recovery_ms_median']:.0f} / {cold['recovery_ms_max']:.0f} ms cold; "
        f"lost {warm['lost'] + cold['lost']} of {warm['calls'] + cold['calls']} calls"
    )
    write_result("recovery", {"server": SERVER, "tool": TOOL, "workers": WORKERS, **results}, summary)


if __name__ == "__main__":
    anyio.run(main)
