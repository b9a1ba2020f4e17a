"""Memory store fixtures: every store test runs on both real backends (SQLite file, PostgreSQL)."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sophia_shared.memory import MemorySettings, MemoryStore, open_store


@pytest.fixture
def memory_settings_for(
    request: pytest.FixtureRequest, tmp_path: Path, models_dir: Path
) -> Callable[[str], MemorySettings]:
    """`make(backend) -> settings` of a fresh, empty store on "sqlite" or "postgres"."""

    def make(backend: str) -> MemorySettings:
        if backend == "sqlite":
            dsn = f"sqlite://{tmp_path / 'memory.db'}"
        else:
            factory: Callable[[str], str] = request.getfixturevalue("postgres_database_factory")
            dsn = factory(request.node.name)
        return MemorySettings(dsn=dsn, models_dir=models_dir)

    return make


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def memory_settings(
    request: pytest.FixtureRequest, memory_settings_for: Callable[[str], MemorySettings]
) -> MemorySettings:
    """Settings for a fresh, empty store on each backend."""
    return memory_settings_for(str(request.param))


@pytest.fixture
async def store(memory_settings: MemorySettings) -> AsyncIterator[MemoryStore]:
    opened = await open_store(memory_settings)
    try:
        yield opened
    finally:
        await opened.close()


class OpenAIStandIn:
    """Stand-in OpenAI-compatible embeddings server: deterministic vectors, records requests."""

    def __init__(self, dims: int = 8):
        self.dims = dims
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.shuffle = False

    def vectors(self, texts: list[str]) -> list[list[float]]:
        out = []
        for text in texts:
            rng = np.random.default_rng(abs(hash(text)) % (2**32))
            out.append((rng.standard_normal(self.dims) * 3).tolist())  # deliberately not normalised
        return out


@pytest.fixture
def openai_endpoint() -> Iterator[tuple[str, OpenAIStandIn]]:
    """A stand-in OpenAI-compatible `POST /v1/embeddings` server on 127.0.0.1 (no real service runs here)."""
    state = OpenAIStandIn()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            if state.status != 200:
                self.send_response(state.status)
                self.end_headers()
                self.wfile.write(b'{"error": {"message": "model overloaded"}}')
                return
            data = [
                {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(state.vectors(body["input"]))
            ]
            if state.shuffle:
                data.reverse()
            payload = json.dumps({"object": "list", "data": data, "model": body["model"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
