"""Changing the embedding model: mixing is refused clearly, `sophia memory reembed` migrates the store.

The new model is served by the stand-in OpenAI-compatible endpoint (8 dimensions, not 384), so the
migration also changes the vector dimension; both backends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from sophia_shared.memory import MemoryInput, MemorySettings, ModelMismatch, open_store
from sophia_shared.memory.cli import memory_app
from sophia_shared.memory.embeddings import embedder_from_settings
from typer.testing import CliRunner


def _run(step: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        with anyio.fail_after(60):
            await step()

    anyio.run(bounded)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def test_model_change_is_refused_until_reembed(
    backend: str,
    memory_settings_for: Callable[[str], MemorySettings],
    openai_endpoint: tuple[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local = memory_settings_for(backend)
    url, _ = openai_endpoint
    remote = local.model_copy(
        update={"embedding_provider": "openai", "embedding_url": url, "embedding_model": "tiny-embed"}
    )

    async def seed() -> None:
        store = await open_store(local)
        try:
            await store.put_many("alice", [MemoryInput(text=t) for t in ("red apples", "green pears", "blue sky")])
        finally:
            await store.close()

    async def refused() -> None:
        store = await open_store(remote)
        try:
            with pytest.raises(ModelMismatch, match="reembed"):
                await store.put("alice", MemoryInput(text="yellow bananas"))
            with pytest.raises(ModelMismatch, match="reembed"):
                await store.search("alice", "fruit")
            assert (await store.stats("alice")).total == 3  # nothing written
        finally:
            await store.close()

    _run(seed)
    _run(refused)

    assert local.dsn is not None
    monkeypatch.setenv("SOPHIA_MEMORY_DSN", local.dsn.get_secret_value())
    monkeypatch.setenv("SOPHIA_MEMORY_MODELS_DIR", str(local.models_dir))
    result = CliRunner().invoke(
        memory_app, ["reembed", "--provider", "openai", "--url", url, "--model", "tiny-embed", "--batch-size", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "reembedded 3 memories" in result.output and "openai:tiny-embed" in result.output

    async def migrated() -> None:
        store = await open_store(remote)
        try:
            stats = await store.stats("alice")
            assert (stats.embedding_model, stats.dimensions) == ("openai:tiny-embed", 8)
            hits = await store.search("alice", "blue sky", k=1, mode="vector")
            assert hits[0].memory.text == "blue sky" and hits[0].similarity == pytest.approx(1.0, abs=1e-4)
            assert (await store.put("alice", MemoryInput(text="yellow bananas"))).action == "created"
            assert {m.embedding_model for m in (await store.list("alice")).items} == {"openai:tiny-embed"}
        finally:
            await store.close()
        old = await open_store(local, embedder=embedder_from_settings(local))
        try:
            with pytest.raises(ModelMismatch):
                await old.put("alice", MemoryInput(text="the old model is refused now"))
        finally:
            await old.close()

    _run(migrated)


def test_reembed_cli_reports_bad_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(memory_app, ["reembed", "--provider", "openai"])
    assert result.exit_code == 1
    assert "SOPHIA_MEMORY_EMBEDDING_URL" in result.output
    bad = CliRunner().invoke(memory_app, ["reembed", "--provider", "carrier-pigeon"])
    assert bad.exit_code == 2


class StopsAfter:
    """The real local model, failing once it has embedded `limit` texts: a reembed killed midway."""

    def __init__(self, inner: Any, limit: int):
        self._inner = inner
        self._limit = limit
        self.embedded = 0

    @property
    def model_id(self) -> str:
        return str(self._inner.model_id)

    @property
    def dimensions(self) -> int:
        return int(self._inner.dimensions)

    def embed(self, texts: Any) -> Any:
        if self.embedded + len(texts) > self._limit:
            raise KeyboardInterrupt("stopped midway")
        self.embedded += len(texts)
        return self._inner.embed(texts)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def test_reembed_resumes_where_a_stopped_run_left_off(
    backend: str, memory_settings_for: Callable[[str], MemorySettings], openai_endpoint: tuple[str, Any]
) -> None:
    local = memory_settings_for(backend)
    url, _ = openai_endpoint
    remote = local.model_copy(
        update={"embedding_provider": "openai", "embedding_url": url, "embedding_model": "tiny-embed"}
    )
    texts = [f"memory number {n} about topic {n % 7}" for n in range(10)]

    async def scenario() -> None:
        store = await open_store(local)
        try:
            await store.put_many("alice", [MemoryInput(text=t) for t in texts])
            stopping = StopsAfter(embedder_from_settings(remote), limit=4)
            with pytest.raises(KeyboardInterrupt):
                await store.reembed(stopping, batch_size=2)
            assert stopping.embedded == 4
            # Stopped midway: the store still serves its old model, over the rows not yet migrated.
            stats = await store.stats("alice")
            assert stats.embedding_model == store.embedder.model_id and stats.dimensions == 384
            hits = await store.search("alice", "memory number 9 about topic 2", k=3, mode="vector")
            assert hits and hits[0].memory.text == texts[9]
            assert sum(m.embedding_model == "openai:tiny-embed" for m in (await store.list("alice")).items) == 4
        finally:
            await store.close()
        resumed = await open_store(remote, migrate=True)
        try:
            again = StopsAfter(embedder_from_settings(remote), limit=100)
            report = await resumed.reembed(again, batch_size=3)
            assert (report.reembedded, report.already_done, again.embedded) == (6, 4, 6)
            stats = await resumed.stats("alice")
            assert (stats.embedding_model, stats.dimensions, stats.total) == ("openai:tiny-embed", 8, 10)
            hits = await resumed.search("alice", texts[3], k=1, mode="vector")
            assert hits[0].memory.text == texts[3] and hits[0].similarity == pytest.approx(1.0, abs=1e-4)
        finally:
            await resumed.close()

    _run(scenario)
