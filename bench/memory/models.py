"""Today's embedder against the new ones, side by side in one run: throughput, query-embedding
latency, retrieval quality on BFCL v4 and memory (RSS after start, after load, the load peak).

Models: "baseline" (the embedder before issue 19, bench/memory/baseline.py), "float" (the new float
graph, sentence-transformers' vectors) and "int8" (the new default).

Quality: BFCL v4 `live_multiple`, read as data from the `bfcl-eval` wheel: an installed copy if
there is one, else `pip download --no-deps` of the wheel into bench/.cache (its pinned dependencies
are never installed, nothing of it is imported). The corpus
is every distinct function documentation of the set (name, description, parameter names and
descriptions), the queries are its user questions, and a question's relevant documents are the
functions of its ground truth. Ranking is exact cosine over the corpus: MRR@10 and recall@5.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from sophia_shared.memory.embeddings import LocalMiniLM

from bench.common import percentiles
from bench.memory.baseline import BaselineMiniLM

Vector = npt.NDArray[np.float32]
BFCL_SET = "BFCL_v4_live_multiple.json"
BFCL_VERSION = "2026.3.23"
CACHE = Path(__file__).resolve().parents[1] / ".cache"
MODELS = ("baseline", "float", "int8")


class Model(Protocol):
    def load(self) -> None: ...

    def embed(self, texts: Sequence[str]) -> Vector: ...


def make_model(name: str, models_dir: Path) -> Model:
    """One of MODELS, not loaded yet."""
    if name == "baseline":
        return BaselineMiniLM(models_dir)
    return LocalMiniLM(models_dir, variant="all-MiniLM-L6-v2" if name == "float" else "all-MiniLM-L6-v2-int8")


def throughput(model: Model, texts: Sequence[str], rounds: int = 3) -> dict[str, Any]:
    """Sentences per second embedding `texts` in batches of 256, best and median of `rounds`."""
    model.embed(list(texts[:32]))  # warm-up
    rates: list[float] = []
    cpu: list[float] = []
    for _ in range(rounds):
        began, began_cpu = time.perf_counter(), time.process_time()
        for start in range(0, len(texts), 256):
            model.embed(list(texts[start : start + 256]))
        rates.append(len(texts) / (time.perf_counter() - began))
        cpu.append(len(texts) / max(time.process_time() - began_cpu, 1e-9))
    return {
        "texts": len(texts),
        "sentences_per_s": round(max(rates), 1),
        "median_per_s": round(sorted(rates)[len(rates) // 2], 1),
        # Per CPU second of this process (all its threads): the figure a busy, shared machine moves least.
        "sentences_per_cpu_s": round(sorted(cpu)[len(cpu) // 2], 1),
    }


def query_latency(model: Model, queries: Sequence[str]) -> dict[str, float]:
    """Embedding one query at a time (what every search pays)."""
    samples: list[float] = []
    for query in queries:
        began = time.perf_counter()
        model.embed([query])
        samples.append(time.perf_counter() - began)
    return percentiles(samples)


def bfcl_data(limit: int | None = None) -> tuple[list[str], list[str], list[set[int]]] | None:
    """(documents, questions, relevant document indexes per question), or None if bfcl-eval is absent.

    `limit`: only the first that many entries of the set (smoke runs)."""
    read = _bfcl_reader()
    if read is None:
        return None
    answers = {
        row["id"]: row["ground_truth"] for row in map(json.loads, read("possible_answer/" + BFCL_SET).splitlines())
    }
    documents: dict[str, int] = {}
    texts: list[str] = []
    questions: list[str] = []
    relevant: list[set[int]] = []
    for row in map(json.loads, read(BFCL_SET).splitlines()[:limit]):
        for function in row["function"]:
            if function["name"] not in documents:
                documents[function["name"]] = len(texts)
                texts.append(_document(function))
        wanted = {documents[name] for call in answers.get(row["id"], []) for name in call if name in documents}
        user = [turn["content"] for turn in row["question"][0] if turn.get("role") == "user"]
        if wanted and user:
            questions.append(user[-1])
            relevant.append(wanted)
    return texts, questions, relevant


def _bfcl_reader() -> Callable[[str], str] | None:
    """Reads a file under bfcl_eval/data/: from an installed copy, else from the downloaded wheel."""
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is not None and spec.origin is not None:
        data = Path(spec.origin).parent / "data"
        return lambda name: (data / name).read_text()
    CACHE.mkdir(parents=True, exist_ok=True)
    wheels = sorted(CACHE.glob(f"bfcl_eval-{BFCL_VERSION}-*.whl"))
    if not wheels:
        pip = [sys.executable, "-m", "pip"] if importlib.util.find_spec("pip") else [shutil.which("pip") or "pip"]
        command = [*pip, "download", "--no-deps", "--only-binary", ":all:", "-d", str(CACHE)]
        done = subprocess.run([*command, f"bfcl-eval=={BFCL_VERSION}"], capture_output=True, text=True, check=False)
        wheels = sorted(CACHE.glob(f"bfcl_eval-{BFCL_VERSION}-*.whl"))
        if done.returncode != 0 or not wheels:
            print(f"bench/memory: bfcl-eval could not be downloaded: {done.stderr[-300:]}", file=sys.stderr)
            return None
    archive = zipfile.ZipFile(wheels[-1])
    return lambda name: archive.read("bfcl_eval/data/" + name).decode()


def _document(function: dict[str, Any]) -> str:
    properties = (function.get("parameters") or {}).get("properties") or {}
    params = "; ".join(f"{name}: {spec.get('description', '')}" for name, spec in properties.items())
    return f"{function['name']}: {function.get('description', '')} Parameters: {params}"


def bfcl_quality(model: Model, data: tuple[list[str], list[str], list[set[int]]]) -> dict[str, Any]:
    """MRR@10 and recall@5 of exact cosine ranking over the pooled function docs."""
    documents, questions, relevant = data
    doc_vectors = model.embed(documents)
    query_vectors = model.embed(questions)
    scores = query_vectors @ doc_vectors.T
    reciprocal: list[float] = []
    recall: list[float] = []
    for row, wanted in zip(scores, relevant, strict=True):
        top = np.argsort(-row, kind="stable")[:10].tolist()
        first = next((rank for rank, doc in enumerate(top, start=1) if doc in wanted), None)
        reciprocal.append(1.0 / first if first else 0.0)
        recall.append(len(set(top[:5]) & wanted) / len(wanted))
    return {
        "documents": len(documents),
        "questions": len(questions),
        "mrr_at_10": round(float(np.mean(reciprocal)), 4),
        "recall_at_5": round(float(np.mean(recall)), 4),
    }


_RSS_PROBE = """
import json, sys, time
from pathlib import Path

def status():
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {k: round(int(fields[k].split()[0]) / 1024, 1) for k in ("VmRSS", "VmHWM")}

sys.path.insert(0, sys.argv[3])
started = status()
from bench.memory.models import make_model
model = make_model(sys.argv[1], Path(sys.argv[2]))
imported = status()
began = time.perf_counter()
model.load()
model.embed(["warm the model up with one sentence"] * 8)
loaded = status()
print(json.dumps({"start_mb": started["VmRSS"], "imported_mb": imported["VmRSS"], "loaded_mb": loaded["VmRSS"],
                  "peak_mb": loaded["VmHWM"], "load_s": round(time.perf_counter() - began, 3)}))
"""


def rss(name: str, models_dir: Path) -> dict[str, Any]:
    """A fresh process loads the model (graph already cached): RSS before, after load, and VmHWM."""
    root = str(Path(__file__).resolve().parents[2])
    done = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, name, str(models_dir), root],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": root},
    )
    measured: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    measured["peak_over_steady"] = round(measured["peak_mb"] / measured["loaded_mb"], 2)
    return measured


def compare(
    models_dir: Path,
    texts: Sequence[str],
    queries: Sequence[str],
    *,
    bfcl_limit: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every model of MODELS, measured the same way in this one run."""
    data = bfcl_data(bfcl_limit)
    out: dict[str, Any] = {"bfcl": "live_multiple" if data else "bfcl-eval not installed: quality skipped"}
    for name in MODELS:
        model = make_model(name, models_dir)
        began = time.perf_counter()
        model.load()  # builds the graph into models_dir the first time
        measured: dict[str, Any] = {"first_load_with_build_s": round(time.perf_counter() - began, 2)}
        measured["throughput"] = throughput(model, texts)
        measured["query_embedding"] = query_latency(model, queries)
        if data is not None:
            measured["bfcl_live_multiple"] = bfcl_quality(model, data)
        measured["rss"] = rss(name, models_dir)
        out[name] = measured
        log(f"  model {name}: {measured}")
    base = out["baseline"]["throughput"]["sentences_per_s"]
    out["speedup_vs_baseline"] = {n: round(out[n]["throughput"]["sentences_per_s"] / base, 2) for n in MODELS}
    return out
