"""Per-tool figures of the host's calls, derived from the audit records the feed reads.

Two views of the same records: Prometheus metrics (/metrics: calls, errors, latency histograms per
tool) and rolling per-minute windows for the dashboard's p50/p99 and error rate over the last 5 and
60 minutes. Only the host's own edge records count (each call once; a child's record of the same
call is its copy), and a tool name the host does not route is counted as `other`, so a caller
inventing names cannot grow either.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

OTHER = "other"
# Latency buckets of the rolling windows: 0.05 ms × 1.25^i (a percentile is good to about ±12 %).
_BOUNDS_MS = [0.05 * 1.25**i for i in range(72)]
_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
WINDOWS_MIN = (5, 60)
OK_OUTCOMES = frozenset({"ok", "input_required", "pending", "cancelled"})


class _Minute:
    __slots__ = ("calls", "errors", "hist")

    def __init__(self) -> None:
        self.calls = 0
        self.errors = 0
        self.hist = [0] * (len(_BOUNDS_MS) + 1)


class ToolStats:
    """Counts and latency of the host's calls per tool: Prometheus metrics and 60 one-minute windows."""

    def __init__(self, host_name: str, known: Callable[[str], bool], registry: CollectorRegistry):
        self.host_name = host_name
        self.known = known
        self.calls = Counter("sophia_calls", "Tool calls through the host, by tool and outcome.",
                             ["tool", "outcome"], registry=registry)
        self.errors = Counter("sophia_call_errors", "Tool calls that failed, by tool and stable error code.",
                              ["tool", "code"], registry=registry)
        self.latency = Histogram("sophia_call_duration_seconds", "Tool call duration at the host's edge.",
                                 ["tool"], buckets=_SECONDS_BUCKETS, registry=registry)
        self._minutes: dict[int, dict[str, _Minute]] = {}

    def label(self, tool: str) -> str:
        return tool if self.known(tool) else OTHER

    def observe(self, records: Iterable[dict[str, Any]]) -> None:
        """Count the host's edge records of a batch the feed read."""
        for record in records:
            if record.get("server") != self.host_name:
                continue
            tool = self.label(str(record.get("tool")))
            outcome = str(record.get("outcome"))
            duration_ms = float(record.get("duration_ms") or 0.0)
            failed = outcome not in OK_OUTCOMES
            self.calls.labels(tool, outcome).inc()
            self.latency.labels(tool).observe(duration_ms / 1000)
            if failed:
                self.errors.labels(tool, str(record.get("error_code") or "none")).inc()
            self._count(tool, float(record.get("ts") or time.time()), duration_ms, failed)

    def _count(self, tool: str, ts: float, duration_ms: float, failed: bool) -> None:
        minute = int(ts // 60)
        per_tool = self._minutes.get(minute)
        if per_tool is None:
            per_tool = self._minutes[minute] = {}
            for old in [m for m in self._minutes if m <= minute - max(WINDOWS_MIN)]:
                del self._minutes[old]
        slot = per_tool.get(tool)
        if slot is None:
            slot = per_tool[tool] = _Minute()
        slot.calls += 1
        slot.errors += failed
        slot.hist[bisect.bisect_left(_BOUNDS_MS, duration_ms)] += 1

    def windows(self, now: float | None = None) -> list[dict[str, Any]]:
        """Per tool, for each window: calls, errors, error rate, p50 and p99 (ms)."""
        current = int((now if now is not None else time.time()) // 60)
        tools = sorted({t for m, per in self._minutes.items() if m > current - max(WINDOWS_MIN) for t in per})
        out = []
        for tool in tools:
            row: dict[str, Any] = {"tool": tool}
            for span in WINDOWS_MIN:
                row[f"{span}m"] = self._window(tool, current, span)
            out.append(row)
        return out

    def _window(self, tool: str, current: int, span: int) -> dict[str, Any]:
        calls = errors = 0
        hist = [0] * (len(_BOUNDS_MS) + 1)
        for minute in range(current - span + 1, current + 1):
            slot = self._minutes.get(minute, {}).get(tool)
            if slot is None:
                continue
            calls += slot.calls
            errors += slot.errors
            hist = [a + b for a, b in zip(hist, slot.hist, strict=True)]
        return {"calls": calls, "errors": errors, "error_rate": round(errors / calls, 4) if calls else 0.0,
                "p50_ms": _quantile(hist, calls, 0.50), "p99_ms": _quantile(hist, calls, 0.99)}


def _quantile(hist: list[int], total: int, q: float) -> float | None:
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index, count in enumerate(hist):
        seen += count
        if seen >= rank:
            if index == 0:
                return round(_BOUNDS_MS[0], 3)
            if index >= len(_BOUNDS_MS):
                return round(_BOUNDS_MS[-1], 3)
            return round(math.sqrt(_BOUNDS_MS[index - 1] * _BOUNDS_MS[index]), 3)  # the bucket's middle
    return None


class HostCollector(Collector):
    """Children's state and the feed's figures, read from the host at each scrape."""

    def __init__(self, children: Callable[[], list[dict[str, Any]]], streams: Callable[[], int],
                 head: Callable[[], int]):
        self.children = children
        self.streams = streams
        self.head = head

    def collect(self) -> Iterable[GaugeMetricFamily]:
        up = GaugeMetricFamily("sophia_server_up", "1 while the composed server is ready.", labels=["server"])
        state = GaugeMetricFamily("sophia_server_state", "The composed server's state (1 for its current one).",
                                  labels=["server", "state"])
        restarts = GaugeMetricFamily("sophia_server_restarts", "Restarts of the composed server since the host "
                                     "started.", labels=["server"])
        tools = GaugeMetricFamily("sophia_server_tools", "Tools the composed server offers.", labels=["server"])
        for child in self.children():
            name = str(child["name"])
            up.add_metric([name], 1.0 if child["state"] == "ready" else 0.0)
            state.add_metric([name, str(child.get("health") or child["state"])], 1.0)
            restarts.add_metric([name], float(child["restarts"]))
            tools.add_metric([name], float(child["tools"]))
        yield from (up, state, restarts, tools)
        yield GaugeMetricFamily("sophia_dashboard_streams", "Open dashboard event streams.", value=self.streams())
        yield GaugeMetricFamily("sophia_audit_head_seq", "The last audit seq the host has read.", value=self.head())
