"""A local fake model provider over real HTTP (uvicorn on 127.0.0.1), replaying wire fixtures with faults.

A stand-in for the hosted APIs, which cannot be reached here: it speaks their wire formats from the
fixtures in tests/agent/wire (each validated against the official SDK's types in test_wire.py) and
injects the faults of the matrix: an error status, a cut connection, a stall, a malformed chunk.
The real local model server (llama.cpp) is exercised in test_local_llm.py.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from sophia_shared.testing import serve_in_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

WIRE = Path(__file__).with_name("wire")


class Cut(Exception):
    """Raised inside a streaming body: uvicorn drops the connection without the closing chunk."""


@dataclass
class Plan:
    """One answer. `chunks` are sent in order (stream); `stall_at`/`cut_at`: before which chunk to stall or cut."""

    chunks: list[bytes] = field(default_factory=list)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/event-stream"
    stall_at: int | None = None
    cut_at: int | None = None


def fixture(name: str) -> str:
    return (WIRE / name).read_text()


def sse_chunks(text: str) -> list[bytes]:
    """A fixture's SSE events, one chunk each (as servers flush them)."""
    return [(block + "\n\n").encode() for block in text.strip().split("\n\n")]


def stream_plan(name: str, **kwargs: Any) -> Plan:
    return Plan(chunks=sse_chunks(fixture(name)), **kwargs)


def json_plan(payload: Any, **kwargs: Any) -> Plan:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Plan(chunks=[body], content_type="application/json", **kwargs)


class FakeProvider:
    """The server's state: the plans still to answer with, and every request body it received."""

    def __init__(self) -> None:
        self.plans: deque[Plan] = deque()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()

    def queue(self, *plans: Plan) -> None:
        with self._lock:
            self.plans.extend(plans)

    async def handle(self, request: Request) -> Response:
        body = await request.json()
        with self._lock:
            self.requests.append(body)
            self.headers.append(dict(request.headers))
            plan = self.plans.popleft() if self.plans else Plan(status=500, chunks=[b'{"error": "no plan"}'],
                                                                content_type="application/json")
        if plan.stall_at == 0 and plan.content_type != "text/event-stream":
            await anyio.sleep_forever()  # ended by the client's timeout (disconnect) or the server's exit
        if plan.content_type != "text/event-stream" or plan.status != 200:
            if plan.cut_at is not None:
                return StreamingResponse(_body(plan), status_code=plan.status, headers=plan.headers,
                                         media_type=plan.content_type)
            return Response(b"".join(plan.chunks), status_code=plan.status, headers=plan.headers,
                            media_type=plan.content_type)
        return StreamingResponse(_body(plan), status_code=plan.status, headers=plan.headers,
                                 media_type=plan.content_type)


async def _body(plan: Plan) -> AsyncIterator[bytes]:
    for index, chunk in enumerate(plan.chunks):
        if plan.stall_at == index:
            await anyio.sleep_forever()
        if plan.cut_at == index:
            raise Cut("connection cut by the fake provider")
        if plan.cut_at is not None and plan.cut_at < 0 and index == len(plan.chunks) - 1:
            yield chunk[: len(chunk) // 2]
            raise Cut("connection cut mid-body")
        yield chunk


def app(provider: FakeProvider) -> Starlette:
    routes = [Route(path, provider.handle, methods=["POST"])
              for path in ("/v1/chat/completions", "/v1/messages", "/v1/responses")]
    return Starlette(routes=routes)


@contextmanager
def fake_provider() -> Iterator[tuple[FakeProvider, str]]:
    """A running fake provider and its base URL (…/v1)."""
    provider = FakeProvider()
    with serve_in_thread(app(provider)) as url:
        yield provider, f"{url}/v1"
