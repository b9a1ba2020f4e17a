"""Memory store benchmark: both backends at 10k and 100k memories of 384 dimensions.

Measured, per backend and size: insert throughput without embedding (vectors precomputed) and
with it (the local MiniLM), vector-search p50/p95 with the query embedding excluded, hybrid
search p50/p95 with and without it, recall@10 of the vector search against exact brute force;
once: embedding sentences/s and model load time, cold start to tools/list of `sophia-memory`
against a bare SDK server, and this process's peak RSS.

The corpus: generated sentences embedded by the real model (the "base" set), and 100k vectors
made from them the way real memories cluster (a base vector + 0.35 x another + noise,
renormalised), each with its own text. Queries are other generated sentences, embedded for real.

Side by side in the same run (bench/memory/models.py): today's embedder (before issue 19) against
the new float and int8 graphs: sentences/s, query-embedding latency, BFCL v4 retrieval quality,
RSS of a process loading each; then `sophia-memory`'s RSS after start, after model load and its
load peak (VmHWM) per model, and the suite's total RSS under `sophia up` with tool search, memory
and Gong warmed (bench/memory/rss.py). The store measurements use the new default model.

Run: uv run --frozen python -m bench.memory [--sizes 10000,100000] [--backends sqlite,postgres]
Smoke: uv run --frozen python -m bench.memory --smoke   (tiny counts, to show it runs end to end)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import numpy as np
import numpy.typing as npt
from sophia_shared.memory import MemoryInput, MemorySettings, MemoryStore, open_store
from sophia_shared.memory.embeddings import LOCAL_MODEL_ID, LocalMiniLM

from bench.common import peak_rss_mb, percentiles, write_result
from bench.memory.coldstart import cold_start
from bench.memory.corpus import Corpus, make_corpus
from bench.memory.models import compare
from bench.memory.rss import memory_server_rss, suite_rss

Vector = npt.NDArray[np.float32]
BATCH = 1_000


class PrecomputedEmbedder:
    """Answers with the corpus' precomputed vectors; anything else (queries) goes to the real model."""

    def __init__(self, table: dict[str, Vector], model: LocalMiniLM):
        self._table = table
        self._model = model

    @property
    def model_id(self) -> str:
        return LOCAL_MODEL_ID

    @property
    def dimensions(self) -> int:
        return 384

    def embed(self, texts: Sequence[str]) -> Vector:
        known = [self._table.get(t) for t in texts]
        if all(v is not None for v in known):
            return np.vstack(known)  # type: ignore[arg-type]
        return self._model.embed(texts)


async def _insert(store: MemoryStore, corpus: Corpus, start: int, stop: int, ids: list[str]) -> float:
    began = time.perf_counter()
    for offset in range(start, stop, BATCH):
        items = [
            MemoryInput(text=corpus.texts[i], namespace="bench", tags=[corpus.tags[i]])
            for i in range(offset, min(stop, offset + BATCH))
        ]
        results = await store.put_many("bench", items)
        ids.extend(r.memory.id for r in results)
    return time.perf_counter() - began


async def _measure(store: MemoryStore, corpus: Corpus, ids: list[str], size: int) -> dict[str, Any]:
    index = {memory_id: i for i, memory_id in enumerate(ids)}
    queries = corpus.query_vectors
    # The first search after writes may load caches (SQLite's vector matrix): timed on its own.
    began = time.perf_counter()
    await store.search("bench", "", k=10, mode="vector", query_embedding=queries[0])
    first = time.perf_counter() - began
    for q in queries[:5]:
        await store.search("bench", "", k=10, mode="vector", query_embedding=q)

    vector_s: list[float] = []
    found: list[set[int]] = []
    for q in queries:
        began = time.perf_counter()
        hits = await store.search("bench", "", k=10, mode="vector", query_embedding=q)
        vector_s.append(time.perf_counter() - began)
        found.append({index[h.memory.id] for h in hits})
    # Exact answers computed after the timed loop, so their BLAS threads never compete with it.
    matrix = corpus.vectors[:size]
    recalls = [
        len(set(np.argsort(-(matrix @ q), kind="stable")[:10].tolist()) & got) / 10
        for q, got in zip(queries, found, strict=True)
    ]

    hybrid_s: list[float] = []
    for text, q in zip(corpus.query_texts, queries, strict=True):
        began = time.perf_counter()
        await store.search("bench", text, k=10, query_embedding=q)
        hybrid_s.append(time.perf_counter() - began)

    embedded_s: list[float] = []
    for text in corpus.query_texts[:100]:
        began = time.perf_counter()
        await store.search("bench", text, k=10)
        embedded_s.append(time.perf_counter() - began)

    return {
        "memories": size,
        "first_search_after_writes_ms": round(first * 1000, 2),
        "vector_search_without_query_embedding": percentiles(vector_s),
        "hybrid_search_without_query_embedding": percentiles(hybrid_s),
        "hybrid_search_with_query_embedding": percentiles(embedded_s),
        "recall_at_10": round(float(np.mean(recalls)), 4),
    }


async def _with_embedding(settings: MemorySettings, corpus: Corpus, model: LocalMiniLM) -> dict[str, Any]:
    """Insert throughput when the store embeds (real model), and single put() latency with dedupe."""
    store = await open_store(settings, embedder=model)
    try:
        texts = corpus.base_texts[:1_000]
        began = time.perf_counter()
        for offset in range(0, len(texts), 250):
            await store.put_many("bench", [MemoryInput(text=t) for t in texts[offset : offset + 250]])
        batch_s = time.perf_counter() - began
        single: list[float] = []
        for text in corpus.query_texts[:30]:
            began = time.perf_counter()
            await store.put("bench", MemoryInput(text=text))
            single.append(time.perf_counter() - began)
    finally:
        await store.close()
    return {
        "inserted": len(texts),
        "per_s": round(len(texts) / batch_s, 1),
        "single_put_with_dedupe": percentiles(single),
    }


def _hnsw(dsn: str, action: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        if action == "drop":
            conn.execute("DROP INDEX IF EXISTS memories_embedding")
        else:
            conn.execute("SET maintenance_work_mem = '1GB'")
            conn.execute(
                "CREATE INDEX memories_embedding ON memories "
                "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
            )
            # What autovacuum would do soon after a load this size: planner and word statistics.
            conn.execute("ANALYZE memories")


async def bench_backend(
    backend: str, dsn_for: Any, corpus: Corpus, sizes: list[int], model: LocalMiniLM, models_dir: Path
) -> dict[str, Any]:
    table = {t: corpus.vectors[i] for i, t in enumerate(corpus.texts[: max(sizes)])}
    dsn_for_main = dsn_for("main")
    settings = MemorySettings(dsn=dsn_for_main, models_dir=models_dir)
    store = await open_store(settings, embedder=PrecomputedEmbedder(table, model))
    out: dict[str, Any] = {"backend": backend, "sizes": {}}
    ids: list[str] = []
    done = 0
    try:
        for step, size in enumerate(sorted(sizes)):
            bulk = backend == "postgres" and step > 0
            if bulk:
                # pgvector maintains HNSW row by row (~10x slower than building it once), so past the
                # first size the bench loads like a migration would: drop, load, rebuild.
                await anyio.to_thread.run_sync(_hnsw, dsn_for_main, "drop")
            elapsed = await _insert(store, corpus, done, size, ids)
            measured: dict[str, Any] = {}
            if bulk:
                began = time.perf_counter()
                await anyio.to_thread.run_sync(_hnsw, dsn_for_main, "create")
                measured["hnsw_build_s"] = round(time.perf_counter() - began, 2)
                measured["insert_mode"] = "HNSW dropped during the load, rebuilt after (hnsw_build_s)"
            else:
                measured["insert_mode"] = "every index maintained on each insert"
            measured |= await _measure(store, corpus, ids, size)
            measured["insert_without_embedding_per_s"] = round((size - done) / elapsed, 1)
            measured["inserted_in_this_step"] = size - done
            out["sizes"][str(size)] = measured
            print(f"  {backend} {size}: {measured}", flush=True)
            done = size
    finally:
        await store.close()
    out["insert_with_embedding"] = await _with_embedding(
        MemorySettings(dsn=dsn_for("embedded"), models_dir=models_dir), corpus, model
    )
    print(f"  {backend} with embedding: {out['insert_with_embedding']}", flush=True)
    return out


def run_sqlite(work: Path, corpus: Corpus, sizes: list[int], model: LocalMiniLM, models_dir: Path) -> Any:
    def dsn(label: str) -> str:
        return f"sqlite://{work / f'{label}.db'}"

    return anyio.run(bench_backend, "sqlite", dsn, corpus, sizes, model, models_dir)


def run_postgres(work: Path, corpus: Corpus, sizes: list[int], model: LocalMiniLM, models_dir: Path) -> Any:
    """On a real PostgreSQL 18 + pgvector started for the run (Unix socket, data under `work`)."""
    import psycopg

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
    from fixtures.postgres import start_postgres, stop_postgres

    instance = start_postgres(Path(tempfile.mkdtemp(prefix="pg-", dir=work)))
    try:

        def dsn(label: str) -> str:
            with psycopg.connect(instance.dsn, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "bench_{label}"')
            return instance.database_dsn(f"bench_{label}")

        return anyio.run(bench_backend, "postgres", dsn, corpus, sizes, model, models_dir)
    finally:
        stop_postgres(instance)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--smoke", action="store_true", help="tiny counts: 300 and 600 memories, SQLite, 20 queries")
    parser.add_argument("--no-suite", action="store_true", help="skip the `sophia up` suite RSS step")
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.backends, args.queries = "300,600", "sqlite", 20
    sizes = [int(s) for s in args.sizes.split(",")]
    backends = args.backends.split(",")
    work = Path(tempfile.mkdtemp(prefix="sophia-bench-memory-"))
    models_dir = work / "models"
    result: dict[str, Any] = {"sizes": sizes, "dimensions": 384, "queries": args.queries}
    try:
        began = time.perf_counter()
        fresh = LocalMiniLM(models_dir)
        fresh.load()
        result["model_first_load_with_graph_build_s"] = round(time.perf_counter() - began, 3)
        began = time.perf_counter()
        model = LocalMiniLM(models_dir)
        model.load()
        result["model_load_cached_graph_s"] = round(time.perf_counter() - began, 3)

        corpus, embed_stats = make_corpus(model, max(sizes), args.queries, bases=min(3_000, max(sizes)))
        result["embedding"] = embed_stats
        print(f"embedding: {embed_stats}", flush=True)

        print("models side by side:", flush=True)
        result["models"] = compare(
            models_dir,
            corpus.base_texts[: 300 if args.smoke else 3_000],
            corpus.query_texts[:100],
            bfcl_limit=40 if args.smoke else None,
        )
        result["memory_server_rss"] = {
            name: memory_server_rss(work, models_dir, name) for name in ("all-MiniLM-L6-v2", "all-MiniLM-L6-v2-int8")
        }
        print(f"sophia-memory RSS: {result['memory_server_rss']}", flush=True)
        if not args.no_suite:
            result["suite_rss"] = suite_rss(work, models_dir, "all-MiniLM-L6-v2-int8")
            print(f"suite RSS: {result['suite_rss']}", flush=True)

        result["backends"] = {}
        for backend in backends:
            runner = run_sqlite if backend == "sqlite" else run_postgres
            result["backends"][backend] = runner(work, corpus, sizes, model, models_dir)
        result["cold_start_to_tools_list"] = cold_start(work, models_dir)
        print(f"cold start: {result['cold_start_to_tools_list']}", flush=True)
        result["peak_rss_mb"] = peak_rss_mb()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    big = str(max(sizes))
    parts = []
    for name, data in result.get("backends", {}).items():
        at = data["sizes"][big]
        parts.append(
            f"{name}@{big}: vector p95 {at['vector_search_without_query_embedding']['p95_ms']} ms, "
            f"recall@10 {at['recall_at_10']}, insert {at['insert_without_embedding_per_s']}/s"
        )
    cold = result["cold_start_to_tools_list"]
    models = result["models"]

    def quality(name: str) -> str:
        found = models[name].get("bfcl_live_multiple")
        return f" MRR@10 {found['mrr_at_10']} R@5 {found['recall_at_5']}" if found else ""

    side = ", ".join(
        f"{name} {models[name]['throughput']['sentences_per_s']}/s{quality(name)}"
        for name in ("baseline", "float", "int8")
    )
    server = result["memory_server_rss"]["all-MiniLM-L6-v2-int8"]
    suite = result.get("suite_rss", {}).get("total_rss_mb", "n/a")
    summary = (
        "; ".join(parts)
        + f"; models: {side} (int8 {models['speedup_vs_baseline']['int8']}x baseline)"
        + f"; sophia-memory int8 RSS start {server['after_start_mb']} / loaded {server['after_model_load_mb']}"
        + f" / peak {server['load_peak_vmhwm_mb']} MB; suite {suite} MB"
        + f"; cold start {cold['ratio']}x bare SDK (CPU {cold['cpu_ratio']}x); peak RSS {result['peak_rss_mb']} MB"
    )
    write_result("memory", result, summary)


if __name__ == "__main__":
    main()
