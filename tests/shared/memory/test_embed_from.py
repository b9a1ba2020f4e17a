"""`embed_from`: the vector is made from the end of a text only (a Gong turn without its header lines),
full-text search still reads all of it; a new text is embedded whole; `reembed` keeps the offset.
Both backends; the re-embedding model is the stand-in OpenAI-compatible endpoint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from sophia_shared.memory import InvalidMemory, MemoryInput, MemoryPatch, MemorySettings, MemoryStore, open_store
from sophia_shared.memory.embeddings import embedder_from_settings

pytestmark = pytest.mark.anyio
HEADER = "Speaker: Priya Raman (External, CTO, Globex)\nCall with: Globex, 2026-11-12 at 0:10\n\n"
BODY = "We need the data to stay in the EU before legal signs anything."


async def _similarity(store: MemoryStore, text: str) -> float:
    (vector,) = store.embedder.embed([text])
    hits = await store.search("alice", "", k=1, mode="vector", query_embedding=vector, min_relevance=0.0)
    assert hits and hits[0].similarity is not None
    return hits[0].similarity


async def test_vector_is_of_the_tail_and_text_search_reads_the_header(store: MemoryStore) -> None:
    with anyio.fail_after(60):
        put = await store.put("alice", MemoryInput(text=HEADER + BODY, embed_from=len(HEADER)))
        assert put.memory.text == HEADER + BODY
        assert await _similarity(store, BODY) == pytest.approx(1.0, abs=1e-3)
        assert await _similarity(store, HEADER + BODY) < 0.99
        hits = await store.search("alice", "Globex Priya", mode="text")
        assert [h.memory.id for h in hits] == [put.memory.id] and hits[0].matched_by == ["text"]

        await store.update("alice", put.memory.id, MemoryPatch(text="Globex: " + BODY))
        assert await _similarity(store, "Globex: " + BODY) == pytest.approx(1.0, abs=1e-3)


async def test_embed_from_must_leave_text_to_embed(store: MemoryStore) -> None:
    with anyio.fail_after(60):
        for offset in (len(HEADER + BODY), len(HEADER + BODY) + 10, len(HEADER) - 1):
            text = HEADER + BODY if offset != len(HEADER) - 1 else HEADER + "  "
            with pytest.raises(InvalidMemory) as caught:
                await store.put("alice", MemoryInput(text=text, embed_from=offset))
            assert caught.value.code == "invalid_argument"
        assert (await store.stats("alice")).total == 0


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
async def test_reembed_embeds_the_same_tail(
    backend: str, memory_settings_for: Callable[[str], MemorySettings], openai_endpoint: tuple[str, Any]
) -> None:
    local = memory_settings_for(backend)
    url, stand_in = openai_endpoint
    remote = local.model_copy(
        update={"embedding_provider": "openai", "embedding_url": url, "embedding_model": "tiny-embed"}
    )
    with anyio.fail_after(60):
        store = await open_store(local)
        try:
            await store.put("alice", MemoryInput(text=HEADER + BODY, embed_from=len(HEADER)))
            await store.reembed(embedder_from_settings(remote), batch_size=8)
        finally:
            await store.close()
        sent = [text for request in stand_in.requests for text in request["body"]["input"]]
        assert BODY in sent and HEADER + BODY not in sent
        reopened = await open_store(remote)
        try:
            assert await _similarity(reopened, BODY) == pytest.approx(1.0, abs=1e-4)
        finally:
            await reopened.close()
