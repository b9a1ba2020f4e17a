"""Embeddings: the local MiniLM reproduces the real model; the OpenAI-compatible provider speaks the contract.

The OpenAI-compatible endpoint is a stand-in: a tiny local HTTP server following the documented
`POST /v1/embeddings` contract (there is no real embedding service on this machine).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sophia_shared.memory import MemorySettings, embed
from sophia_shared.memory.embeddings import (
    LOCAL_DIMENSIONS,
    LOCAL_MODEL_ID,
    LocalMiniLM,
    OpenAIEmbedder,
    embedder_from_settings,
    local_embedder,
    weights_path,
)
from sophia_shared.memory.errors import EmbeddingNotConfigured, InvalidMemory, StoreUnavailable


@pytest.fixture(scope="module")
def minilm(models_dir: Path) -> LocalMiniLM:
    return local_embedder(models_dir)


@pytest.fixture(scope="module")
def float_minilm(models_dir: Path) -> LocalMiniLM:
    return local_embedder(models_dir, variant="all-MiniLM-L6-v2")


PUBLISHED = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
# sentence-transformers' README prints this matrix for all-MiniLM-L6-v2 on these sentences.
PUBLISHED_MATRIX = np.array([[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]])


def test_float_graph_reproduces_the_published_similarity_matrix(float_minilm: LocalMiniLM) -> None:
    vectors = float_minilm.embed(PUBLISHED)
    assert vectors.shape == (3, LOCAL_DIMENSIONS)
    assert vectors.dtype == np.float32
    assert float_minilm.model_id == LOCAL_MODEL_ID  # stores embedded by the old graph stay valid
    np.testing.assert_allclose(vectors @ vectors.T, PUBLISHED_MATRIX, atol=1e-3)


def test_int8_graph_stays_close_to_the_float_model(models_dir: Path, float_minilm: LocalMiniLM) -> None:
    minilm = local_embedder(models_dir, variant="all-MiniLM-L6-v2-int8")
    minilm.load()
    assert minilm.model_id == f"{LOCAL_MODEL_ID}@int8" and minilm.graph_path() != float_minilm.graph_path()
    assert weights_path(minilm.graph_path()).stat().st_size < weights_path(float_minilm.graph_path()).stat().st_size / 3
    vectors = minilm.embed(PUBLISHED)
    np.testing.assert_allclose(vectors @ vectors.T, PUBLISHED_MATRIX, atol=0.04)
    texts = [*PUBLISHED, "The nightly backup of the prod database", "x " * 600, "Quarterly revenue grew 4%"]
    agreement = np.sum(minilm.embed(texts) * float_minilm.embed(texts), axis=1)
    assert float(agreement.min()) > 0.95


def test_related_sentences_score_clearly_higher_than_unrelated(minilm: LocalMiniLM) -> None:
    anchor, related, unrelated = minilm.embed(
        [
            "The database migration failed during Friday's deployment.",
            "Friday's release broke because a schema migration errored.",
            "My grandmother bakes apple pie every Sunday.",
        ]
    )
    assert float(anchor @ related) > float(anchor @ unrelated) + 0.3


def test_rows_are_unit_length_and_independent_of_batching(minilm: LocalMiniLM) -> None:
    texts = ["short", "a somewhat longer sentence about memory stores and vectors", "x " * 600]
    together = minilm.embed(texts)
    alone = np.vstack([minilm.embed([t]) for t in texts])
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    # Padding to the longest text in a batch must not change any row.
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert minilm.embed([]).shape == (0, LOCAL_DIMENSIONS)


def test_graph_is_cached_by_weights_hash_and_reused(models_dir: Path, minilm: LocalMiniLM) -> None:
    minilm.load()  # the session's first load built the graph into models_dir
    path = minilm.graph_path()
    assert path.parent == models_dir and path.exists()
    assert path.name.startswith("all-MiniLM-L6-v2-") and path.suffix == ".onnx"
    # The weights sit beside the graph, mapped rather than read onto the heap.
    assert weights_path(path).stat().st_size > 10 * path.stat().st_size
    stamp = path.stat().st_mtime_ns
    again = LocalMiniLM(models_dir)
    assert not again.loaded
    again.load()
    assert path.stat().st_mtime_ns == stamp  # loaded, not rebuilt
    assert [p.name for p in models_dir.iterdir() if p.name.endswith(".tmp")] == []
    np.testing.assert_allclose(again.embed(["same vectors"]), minilm.embed(["same vectors"]), atol=1e-6)


def test_module_entry_point_embeds_with_the_local_model(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch, minilm: LocalMiniLM
) -> None:
    monkeypatch.setenv("SOPHIA_MEMORY_MODELS_DIR", str(models_dir))
    vectors = embed(["hello world"])
    np.testing.assert_allclose(vectors, minilm.embed(["hello world"]), atol=1e-6)
    assert vectors.shape == (1, LOCAL_DIMENSIONS)


def test_local_provider_refuses_models_it_does_not_ship(models_dir: Path) -> None:
    with pytest.raises(EmbeddingNotConfigured):
        embedder_from_settings(MemorySettings(embedding_model="bge-large", models_dir=models_dir))
    with pytest.raises(EmbeddingNotConfigured):
        embedder_from_settings(MemorySettings(embedding_provider="openai"))


def test_openai_provider_follows_the_contract(openai_endpoint: tuple[str, Any]) -> None:
    url, state = openai_endpoint
    embedder = embedder_from_settings(
        MemorySettings(
            embedding_provider="openai",
            embedding_url=url,
            embedding_model="nomic-embed-text",
            embedding_api_key="sk-test-not-a-secret",
            embedding_batch_size=2,
        )
    )
    assert isinstance(embedder, OpenAIEmbedder)
    assert embedder.model_id == "openai:nomic-embed-text"
    state.shuffle = True  # the contract orders by `index`, not by position
    vectors = embedder.embed(["a", "b", "c"])
    assert vectors.shape == (3, 8)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    expected = np.asarray(state.vectors(["a", "b", "c"]), dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    # Batched by embedding_batch_size, to /embeddings, with the bearer key and the model name.
    assert [r["body"]["input"] for r in state.requests if r["body"]["input"] != ["dimension probe"]] == [
        ["a", "b"],
        ["c"],
    ]
    assert all(r["path"] == "/v1/embeddings" for r in state.requests)
    assert all(r["auth"] == "Bearer sk-test-not-a-secret" for r in state.requests)
    assert all(r["body"]["model"] == "nomic-embed-text" for r in state.requests)
    assert embedder.dimensions == 8


def test_openai_provider_errors_are_clear(openai_endpoint: tuple[str, Any]) -> None:
    url, state = openai_endpoint
    fixed = OpenAIEmbedder(url, "m", api_key=None, dimensions=16, timeout_s=5)
    with pytest.raises(InvalidMemory, match="16"):
        fixed.embed(["dimension mismatch"])
    state.status = 503
    with pytest.raises(StoreUnavailable, match="HTTP 503"):
        OpenAIEmbedder(url, "m", api_key=None, dimensions=None, timeout_s=5).embed(["x"])
    with pytest.raises(StoreUnavailable, match="cannot be reached"):
        OpenAIEmbedder("http://127.0.0.1:9/v1", "m", api_key=None, dimensions=None, timeout_s=2).embed(["x"])
