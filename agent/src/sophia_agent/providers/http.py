"""HTTP for every adapter: one request, its failure classified for fallback, SSE events as JSON.

Upstream text is hostile: error bodies are read up to a cap, redacted and clipped before they reach
a message; a stream is capped in bytes; a chunk that is not JSON is a `provider_malformed` failure.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import httpx
from httpx_sse import EventSource, SSEError
from sophia_shared.redact import clip, redact

from ..errors import FailureKind, ProviderFailure
from .base import ModelEvent, ModelRequest
from .config import ProviderConfig

ERROR_BODY_BYTES = 8_192
MAX_STREAM_BYTES = 32 * 1024 * 1024
MAX_RETRY_AFTER_S = 3_600.0
_OVERFLOW_NEEDLES = ("context_length_exceeded", "maximum context length", "prompt is too long",
                     "context window", "too many tokens", "exceed_context_size", "context length")


def timeout_for(config: ProviderConfig) -> httpx.Timeout:
    """Connect and each read bounded: a stalled server fails in first_token_timeout_s (else timeout_s)."""
    read = config.first_token_timeout_s or config.timeout_s
    return httpx.Timeout(config.timeout_s, connect=min(config.timeout_s, 10.0), read=read)


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), capped; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (now if now is not None else time.time())
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(seconds, MAX_RETRY_AFTER_S))


def upstream_text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return clip(redact(text), 300)


def classify_status(status: int, body: bytes, headers: httpx.Headers) -> ProviderFailure:
    text = upstream_text(body)
    lowered = body[:ERROR_BODY_BYTES].decode("utf-8", "replace").lower()
    if status in (401, 403):
        return ProviderFailure(FailureKind.AUTH, f"HTTP {status}: {text}", status=status)
    if status == 429:
        return ProviderFailure(FailureKind.RATE_LIMITED, f"HTTP 429: {text}", status=status,
                               retry_after_s=retry_after(headers.get("retry-after")))
    if any(n in lowered for n in _OVERFLOW_NEEDLES):
        return ProviderFailure(FailureKind.CONTEXT_OVERFLOW, f"HTTP {status}: {text}", status=status)
    if status >= 500:
        return ProviderFailure(FailureKind.SERVER, f"HTTP {status}: {text}", status=status,
                               retry_after_s=retry_after(headers.get("retry-after")))
    return ProviderFailure(FailureKind.BAD_REQUEST, f"HTTP {status}: {text}", status=status)


def classify_stream_error(payload: Any) -> ProviderFailure:
    """An error object inside a 200 answer (Anthropic `error` events, OpenAI-compatible `{"error": …}`)."""
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    blob = json.dumps(error, default=str)[:ERROR_BODY_BYTES].lower()
    if any(n in blob for n in _OVERFLOW_NEEDLES):
        return ProviderFailure(FailureKind.CONTEXT_OVERFLOW, upstream_text(blob))
    if "rate_limit" in blob or "overloaded" in blob:
        return ProviderFailure(FailureKind.RATE_LIMITED, upstream_text(blob))
    return ProviderFailure(FailureKind.STREAM_ERROR, upstream_text(blob))


def _transport_failure(exc: httpx.HTTPError) -> ProviderFailure:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return ProviderFailure(FailureKind.CONNECT, f"cannot connect ({type(exc).__name__})")
    if isinstance(exc, httpx.TimeoutException):
        return ProviderFailure(FailureKind.TIMEOUT, f"no answer in time ({type(exc).__name__})")
    return ProviderFailure(FailureKind.CUT, f"the connection failed mid-answer ({type(exc).__name__})")


@asynccontextmanager
async def post(client: httpx.AsyncClient, config: ProviderConfig, path: str, headers: dict[str, str],
               body: dict[str, Any]) -> AsyncIterator[httpx.Response]:
    """POST `body` as JSON; yield the open response once its status is 2xx, else raise ProviderFailure."""
    try:
        async with client.stream("POST", f"{config.url}{path}", json=body, headers=headers,
                                 timeout=timeout_for(config)) as response:
            if response.status_code >= 300:
                body_bytes = await _read_capped(response, ERROR_BODY_BYTES)
                raise classify_status(response.status_code, body_bytes, response.headers)
            yield response
    except httpx.HTTPError as exc:
        raise _transport_failure(exc) from None


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


async def read_json(response: httpx.Response) -> dict[str, Any]:
    """A non-streaming answer's JSON object (capped); an error object in it raises."""
    try:
        raw = await _read_capped(response, MAX_STREAM_BYTES + 1)
    except httpx.HTTPError as exc:
        raise _transport_failure(exc) from None
    if len(raw) > MAX_STREAM_BYTES:
        raise ProviderFailure(FailureKind.MALFORMED, "the answer is larger than the cap")
    try:
        payload = json.loads(raw)
    except ValueError:
        raise ProviderFailure(FailureKind.MALFORMED, "the answer is not JSON") from None
    if not isinstance(payload, dict):
        raise ProviderFailure(FailureKind.MALFORMED, "the answer is not a JSON object")
    if payload.get("error") or payload.get("type") == "error":
        raise classify_stream_error(payload)
    return payload


async def sse_json(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """Each SSE event as (event name, parsed JSON data); ("done", None) for OpenAI's `[DONE]`."""
    content_type = response.headers.get("content-type", "")
    if "text/event-stream" not in content_type:
        # A server that answered 200 with a JSON error instead of a stream.
        payload = await read_json(response)
        raise ProviderFailure(FailureKind.MALFORMED, f"expected a stream, got {upstream_text(str(payload))}")
    size = 0
    try:
        async for sse in EventSource(response).aiter_sse():
            size += len(sse.data)
            if size > MAX_STREAM_BYTES:
                raise ProviderFailure(FailureKind.MALFORMED, "the stream is larger than the cap")
            if not sse.data:
                continue
            if sse.data.strip() == "[DONE]":
                yield "done", None
                continue
            try:
                data = json.loads(sse.data)
            except ValueError:
                raise ProviderFailure(FailureKind.MALFORMED, f"a stream chunk is not JSON: "
                                      f"{upstream_text(sse.data[:80])}") from None
            yield sse.event or "message", data
    except SSEError as exc:
        raise ProviderFailure(FailureKind.MALFORMED, f"not a valid event stream ({exc})") from None
    except httpx.HTTPError as exc:
        raise _transport_failure(exc) from None


def parse_arguments(raw: Any) -> dict[str, Any]:
    """A tool call's arguments: a JSON string (OpenAI) or an object (Ollama, Anthropic); "" means {}."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except ValueError:
            raise ProviderFailure(FailureKind.MALFORMED, "a tool call's arguments are not valid JSON") from None
        if isinstance(value, str):  # double-encoded by some servers
            return parse_arguments(value) if value.strip().startswith("{") else {}
        if isinstance(value, dict):
            return value
    raise ProviderFailure(FailureKind.MALFORMED, "a tool call's arguments are not a JSON object")


def bearer(config: ProviderConfig) -> dict[str, str]:
    key = config.api_key()
    return {"Authorization": f"Bearer {key.get_secret_value()}"} if key is not None else {}


class HttpModel:
    """What every wire adapter shares: its config and client, and one POST read whole or as an SSE stream.

    An adapter names its `path` and supplies the body, the whole-answer reader and the stream reader.
    """

    path: ClassVar[str]

    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient):
        self.config = config
        self.client = client

    @property
    def provider(self) -> str:
        return self.config.name

    @property
    def model(self) -> str:
        return self.config.model

    def headers(self) -> dict[str, str]:
        return bearer(self.config)

    def body(self, request: ModelRequest) -> dict[str, Any]:
        raise NotImplementedError

    def whole(self, payload: dict[str, Any]) -> list[ModelEvent]:
        raise NotImplementedError

    def streamed(self, response: httpx.Response) -> AsyncIterator[ModelEvent]:
        raise NotImplementedError

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        async with post(self.client, self.config, self.path, self.headers(), self.body(request)) as response:
            if not self.config.stream:
                for event in self.whole(await read_json(response)):
                    yield event
                return
            async for event in self.streamed(response):
                yield event
