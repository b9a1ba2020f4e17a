"""bench/gong: sync 1,000 calls with transcripts from the local Gong v2 contract server (real HTTP on
127.0.0.1, Gong's 3 req/s enforced on both sides) into the offline cache, then search it.

1. API scan: the sync's Gong traffic alone (details pages + transcript batches, no indexing):
   requests made against the minimum possible, and wall time against the 3 req/s floor.
2. Full first sync through the `gong_sync` tool (in-memory MCP client, full request path): calls
   and transcripts indexed into the real SQLite + sqlite-vec memory store with the local MiniLM
   (the default model): wall time, requests, and the time spent embedding; meanwhile a second
   client searches the cache every 0.5 s, to show indexing does not block the server's other tools.
3. An incremental sync right after (nothing new): the overlap window's cost in requests.
4. `gong_search_calls` latency over the cache (p50/p95/p99), no Gong requests.

No timing is asserted anywhere; the numbers go to bench/results/gong.json.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from sophia_gong.cache import CallCache
from sophia_gong.client import GongClient
from sophia_gong.settings import GongSettings
from sophia_gong.sync import SyncStore, run_sync
from sophia_gong.tools import build_server
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect, structured

from bench.common import peak_rss_mb, percentiles, write_result

if TYPE_CHECKING:
    from servers.gong.gong_contract_server import GongContractServer

ROOT = Path(__file__).resolve().parents[2]
CALLS = int(os.environ.get("BENCH_GONG_CALLS", "1000"))
SEARCHES = int(os.environ.get("BENCH_GONG_SEARCHES", "200"))
RATE = 3.0
QUESTIONS = [
    "what did {account} say about pricing",
    "{account} security review SOC 2",
    "which competitors did {account} mention",
    "{account} budget and discount",
    "integration with Salesforce concerns",
    "legal review and procurement timeline",
    "objections about per-seat price",
    "data residency in the EU",
]


class NoCache(CallCache):
    """Measurement stand-in for step 1: knows no call and stores nothing, so only Gong traffic is timed."""

    def __init__(self) -> None:
        super().__init__(self._never)

    @staticmethod
    async def _never() -> Any:
        raise RuntimeError("the API-only scan never opens a store")

    async def cached_ids(self, tenant: str) -> set[str]:
        return set()

    async def put_calls(self, tenant: str, calls: Sequence[Any], max_batch: int) -> int:
        return 0


def settings_for(server: GongContractServer) -> GongSettings:
    return GongSettings(
        base_url=server.base_url,
        access_key=server.access_key,
        access_key_secret=server.access_key_secret,
        rate_limit_per_second=RATE,
        sync_initial_days=40,
    )


async def api_scan(server: GongContractServer) -> dict[str, Any]:
    server.reset()
    client = GongClient(settings_for(server))
    started = time.perf_counter()
    report = await run_sync(
        client,
        NoCache(),
        SyncStore(Path(tempfile.mkdtemp()) / "sync"),
        "bench",
        since=None,
        workspace_id=None,
        max_pages=None,
        max_batch=1000,
    )
    wall = time.perf_counter() - started
    await client.aclose()
    requests = server.requests()
    minimum = 2 * math.ceil(CALLS / 100)
    arrivals = [r.t for r in requests]
    # At 3 req/s, n requests cannot span less than (n - 3) / 3 s after the first burst of 3.
    floor = max(0.0, (len(requests) - RATE) / RATE)
    return {
        "calls": report.calls_seen,
        "requests": len(requests),
        "minimum_requests": minimum,
        "status_429": sum(1 for r in requests if r.status == 429),
        "wall_s": round(wall, 2),
        "rate_floor_s": round(floor, 2),
        "wall_over_floor": round(wall / floor, 3) if floor else None,
        "first_to_last_request_s": round(arrivals[-1] - arrivals[0], 2),
        "max_requests_in_any_second": _max_in_second(arrivals),
    }


def _max_in_second(times: list[float]) -> int:
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


class TimedEmbedder:
    """The configured embedder, timing every call (the sync's embedding share)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.texts = 0

    @property
    def model_id(self) -> str:
        return str(self.inner.model_id)

    @property
    def dimensions(self) -> int:
        return int(self.inner.dimensions)

    def embed(self, texts: Sequence[str]) -> Any:
        began = time.perf_counter()
        try:
            return self.inner.embed(texts)
        finally:
            self.seconds += time.perf_counter() - began
            self.texts += len(texts)


async def _search_meanwhile(client: Any, done: anyio.Event, samples: list[float]) -> None:
    while not done.is_set():
        began = time.perf_counter()
        await client.call("gong_search_calls", {"query": "pricing and discount", "limit": 5})
        samples.append(time.perf_counter() - began)
        with anyio.move_on_after(0.5):
            await done.wait()


async def full_sync_and_search(server: GongContractServer) -> dict[str, Any]:
    from sophia_shared.memory import MemorySettings, MemoryStore, open_store
    from sophia_shared.memory.embeddings import embedder_from_settings

    server.reset()
    settings = settings_for(server)
    memory_settings = MemorySettings()
    timed = TimedEmbedder(embedder_from_settings(memory_settings))

    async def opener() -> MemoryStore:
        return await open_store(memory_settings, embedder=timed)

    app = build_server(settings, memory=opener)
    who = Principal("bench", Role.DEVELOPER, kind="bench")
    accounts = sorted({c.account for c in server.dataset.calls})
    samples: list[float] = []
    during: list[float] = []
    async with connect(app, principal=who) as client, connect(app, principal=who) as other:
        await other.call("gong_search_calls", {"query": "warm the model up", "limit": 1})
        timed.seconds, timed.texts = 0.0, 0
        done = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(_search_meanwhile, other, done, during)
            started, cpu = time.perf_counter(), time.process_time()
            first = structured(await client.call("gong_sync", {"max_seconds": 3600}))
            sync_wall = time.perf_counter() - started
            sync_cpu = time.process_time() - cpu
            done.set()
        first_requests = len(server.requests())
        embedding_s, embedded = timed.seconds, timed.texts

        server.reset()
        started = time.perf_counter()
        again = structured(await client.call("gong_sync", {}))
        incremental_wall = time.perf_counter() - started
        incremental_requests = len(server.requests())

        server.reset()
        hits = 0
        for index in range(SEARCHES):
            question = QUESTIONS[index % len(QUESTIONS)].format(account=accounts[index % len(accounts)])
            started = time.perf_counter()
            result = await client.call("gong_search_calls", {"query": question, "limit": 10})
            samples.append(time.perf_counter() - started)
            hits += len(structured(result)["hits"])
        search_requests = len(server.requests())
    return {
        "first_sync": {
            "status": first["status"],
            "calls_new": first["calls_new"],
            "chunks_written": first["chunks_written"],
            "requests": first_requests,
            "wall_s": round(sync_wall, 2),
            # CPU seconds of this process (embedding dominates): less sensitive to a busy machine.
            "process_cpu_s": round(sync_cpu, 2),
            "chunks_per_s": round(first["chunks_written"] / sync_wall, 1),
            "embedding_model": timed.model_id,
            "embedding_s": round(embedding_s, 2),
            "texts_embedded": embedded,
            "embedding_share_of_wall": round(embedding_s / sync_wall, 3),
            "searches_during_sync": percentiles(during) if during else None,
        },
        "incremental_sync_no_changes": {
            "status": again["status"],
            "calls_seen": again["calls_seen"],
            "calls_new": again["calls_new"],
            "requests": incremental_requests,
            "wall_s": round(incremental_wall, 2),
        },
        "search": {
            **percentiles(samples),
            "avg_hits": round(hits / max(1, SEARCHES), 2),
            "gong_requests": search_requests,
        },
    }


async def main() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from servers.gong.gong_contract_server import GongContractServer
    from servers.gong.gong_dataset import generate

    logging.getLogger("sophia").setLevel(logging.ERROR)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    home = tempfile.mkdtemp(prefix="bench-gong-")
    os.environ["SOPHIA_HOME"] = home
    end = datetime.now(UTC) - timedelta(minutes=5)
    dataset = generate(calls=CALLS, users=60, seed=3, end=end, days=30, turns=(8, 16), late_fraction=0.0)
    server = GongContractServer(dataset, rate_limit=RATE)
    server.start()
    try:
        scan = await api_scan(server)
        full = await full_sync_and_search(server)
    finally:
        server.stop()
    turns = sum(len(c.transcript) for c in dataset.calls)
    result = {
        "dataset": {"calls": CALLS, "speaker_turns": turns, "rate_limit_per_s": RATE, "page_size": 100},
        "api_scan": scan,
        **full,
        "peak_rss_mb": peak_rss_mb(),
        "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
    }
    summary = (
        f"{CALLS} calls: {scan['requests']} requests (minimum {scan['minimum_requests']}), API scan "
        f"{scan['wall_s']} s vs 3 req/s floor {scan['rate_floor_s']} s, max {scan['max_requests_in_any_second']}"
        f" req in any second; full sync with MiniLM indexing {full['first_sync']['wall_s']} s "
        f"({full['first_sync']['chunks_written']} chunks, {full['first_sync']['embedding_s']} s embedding, "
        f"{full['first_sync']['requests']} requests; search during sync p50 "
        f"{(full['first_sync']['searches_during_sync'] or {}).get('p50_ms')} ms); no-change resync "
        f"{full['incremental_sync_no_changes']['requests']} requests; search p50 {full['search']['p50_ms']} ms "
        f"p95 {full['search']['p95_ms']} ms, 0 Gong requests"
        if full["search"]["gong_requests"] == 0
        else "search sent Gong requests (bug)"
    )
    write_result("gong", result, summary)


if __name__ == "__main__":
    anyio.run(main)
