"""What every benchmark shares: percentiles, peak RSS, and the JSON result + one-line summary."""

from __future__ import annotations

import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def percentiles(samples_s: list[float]) -> dict[str, float]:
    """p50/p95/p99/mean of durations given in seconds, reported in milliseconds."""
    ordered = sorted(samples_s)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    return {
        "n": len(ordered),
        "p50_ms": round(at(0.50), 4),
        "p95_ms": round(at(0.95), 4),
        "p99_ms": round(at(0.99), 4),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 4),
    }


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def write_result(name: str, result: dict[str, Any], summary: str) -> Path:
    """Write bench/results/<name>.json with machine facts, and print the one-line summary."""
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": _cpus()},
        "result": result,
        "summary": summary,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"{name}: {summary}")
    return path


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def tree_cpu_s(root: int, *, descendants: bool = True) -> dict[str, float]:
    """CPU seconds (user + system) used so far by `root` and each live descendant, keyed by
    "<pid> <command name>": sampled before and after a run, it says where the CPU of each call went."""
    import os

    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    stats: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue  # the process ended while we looked
        name, rest = raw[raw.index("(") + 1:raw.rindex(")")], raw[raw.rindex(")") + 2:].split()
        parents[int(entry.name)] = int(rest[1])
        stats[int(entry.name)] = (name, (int(rest[11]) + int(rest[12])) / ticks)
    tree, frontier = {root}, [root] if descendants else []
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return {f"{pid} {stats[pid][0]}": stats[pid][1] for pid in sorted(tree) if pid in stats}


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each process used between two `tree_cpu_s` samples (processes alive at the end)."""
    return {name: round(after[name] - before.get(name, 0.0), 3) for name in after}
