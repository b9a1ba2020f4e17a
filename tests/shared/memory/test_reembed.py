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
