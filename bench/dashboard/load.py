"""The offered load (bench/scale's open-loop raw POSTs) and a sampler of the host's RSS."""

from __future__ import annotations

import statistics
from typing import Any

import anyio
import psutil

from bench.scale.__main__ import Caller, drive

__all__ = ["Caller", "Sampler", "drive"]
SAMPLE_S = 0.5


class Sampler:
    """The host process's RSS every SAMPLE_S while a phase runs (the host alone: its child is the same either way)."""

    def __init__(self, pid: int):
        self.process = psutil.Process(pid)
        self.samples: list[float] = []

    async def run(self) -> None:
        while True:
            self.samples.append(self.process.memory_info().rss / 2**20)
            await anyio.sleep(SAMPLE_S)

    def summary(self) -> dict[str, Any]:
        if not self.samples:
            return {}
        return {"max": round(max(self.samples), 1), "mean": round(statistics.fmean(self.samples), 1),
                "last": round(self.samples[-1], 1)}
