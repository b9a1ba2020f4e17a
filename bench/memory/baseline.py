"""Today's embedder, side by side with the new one: the local MiniLM as it shipped before issue 19
(commit 92a5aa9, `sophia_shared.memory.embeddings`), kept here unchanged so bench/memory measures
the new model against the real baseline in one run. Not used anywhere else.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sophia_shared.memory.embeddings import (
    LOCAL_DIMENSIONS,
    LOCAL_MODEL_ID,
    MAX_TOKENS,
    _model_zip,
    _read_safetensors,
)

BASELINE_GRAPH_VERSION = "3"
_HEADS = 12
_LAYERS = 6
_LN_EPS = 1e-12


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


class BaselineMiniLM:
    """The local embedder as it shipped before issue 19: plain-operator float graph, padded batches of 64,
    intra-op threads over the cores."""

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
        key = hashlib.sha256(f"{info.CRC}:{info.file_size}:{BASELINE_GRAPH_VERSION}".encode()).hexdigest()[:16]
        return self._models_dir / f"baseline-all-MiniLM-L6-v2-{key}.onnx"

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
