"""HTTP transports (SSE, streamable HTTP): loopback by default, Host/Origin checked, bodies capped,
bearer tokens (Sophia tokens or OAuth 2.1 JWTs) required unless explicitly allowed on loopback."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mcp.server.auth.middleware.bearer_auth import RequireAuthMiddleware
from mcp.server.transport_security import RequestBodyLimitMiddleware, TransportSecuritySettings
from starlette.authentication import AuthenticationError
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response

from .auth import JwtVerifier, SophiaTokenVerifier, TokenStoreUnavailable, token_store
from .errors import ErrorCode, Forbidden
from .frames import FrameLimits, Rejected, check_frame, error_response
from .redact import get_logger
from .settings import SuiteSettings

log = get_logger("sophia.http")

# Where clients POST JSON-RPC frames: streamable HTTP's endpoint and SSE's message mount.
FRAME_PATHS = ("/mcp", "/messages")


def _local_names(host: str, port: int) -> tuple[list[str], list[str]]:
    names = {host, "127.0.0.1", "localhost", "[::1]"} if host in ("127.0.0.1", "localhost", "::1") else {host}
    hosts = [f"{n}:{port}" for n in names] + list(names)
    origins = [f"{scheme}://{n}:{port}" for n in names for scheme in ("http", "https")]
    return hosts, origins


def http_app(
    server: Any,
    *,
    transport: str,
    host: str,
    port: int,
    allow_unauthenticated: bool = False,
    extra_hosts: list[str] | None = None,
    suite: SuiteSettings | None = None,
) -> Any:
    """The Starlette app for `server` over SSE or streamable HTTP, with Sophia's edge checks."""
    from .cli import is_loopback

    suite = suite or SuiteSettings()
    if allow_unauthenticated and not is_loopback(host):
        raise Forbidden(
            f"--allow-unauthenticated is refused on {host}: HTTP without auth is allowed on loopback only"
        )
    resource_url = f"http://{host}:{port}/mcp"
    if not allow_unauthenticated:
        if suite.auth_mode == "jwt":
            server.configure_auth(JwtVerifier(suite, audience=resource_url), resource_url, suite.jwt_issuer)
        else:
            server.configure_auth(SophiaTokenVerifier(token_store(suite)), resource_url)
    hosts, origins = _local_names(host, port)
    hosts += extra_hosts or []
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )
    if transport == "sse":
        app = server.sse_app(transport_security=security, max_request_body_size=suite.http_max_body_bytes)
    else:
        app = server.streamable_http_app(
            transport_security=security, max_request_body_size=suite.http_max_body_bytes, host=host
        )
    _answer_unavailable_token_store(app)
    install_frame_check(app, FrameLimits.from_settings(suite), suite.http_max_body_bytes)
    # What a wrapper of the MCP route (the host's fast path) must check exactly as the SDK does.
    app.state.sophia_security = security
    app.state.sophia_max_body_bytes = suite.http_max_body_bytes
    return app


class FrameCheck:
    """ASGI: every POST body passes frames.check_frame before the SDK handler reads it.

    A bad frame is answered 400 with the JSON-RPC error (its id when one can be read); the SDK
    would answer some with a parse error, drop others (too deep for its parser, a lone surrogate)
    or fail later while answering. A good body is replayed to the SDK handler unchanged. Installed
    inside the route's auth, so an unauthenticated caller still gets 401 first.
    """

    def __init__(self, inner: Any, limits: FrameLimits, max_body_bytes: int):
        self.inner = inner
        self.limits = limits
        # The SDK's own body cap (413 before anything is buffered past it), in front of the check.
        self.limited = RequestBodyLimitMiddleware(self._check, max_body_bytes)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.inner(scope, receive, send)
            return
        await self.limited(scope, receive, send)

    async def _check(self, scope: Any, receive: Any, send: Any) -> None:
        body, disconnected = await _read_body(receive)
        if disconnected:
            return
        checked = check_frame(body, self.limits)
        if isinstance(checked, Rejected):
            log.debug("refused a frame: %s", checked.reason)  # debug: a flood must not flood the log
            answer = checked.response() or error_response(None, checked.code, checked.reason)
            payload = json.dumps(answer, separators=(",", ":")).encode()
            await send({"type": "http.response.start", "status": 400, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})
            return
        await self.inner(scope, replay_body(body, receive), send)


async def _read_body(receive: Any) -> tuple[bytes, bool]:
    """The request's whole body (already capped by the SDK's limit), and whether the client left."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


def replay_body(body: bytes, receive: Any) -> Callable[[], Any]:
    """A receive that gives the already-read body once, then the connection's own events."""
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def install_frame_check(app: Any, limits: FrameLimits, max_body_bytes: int) -> None:
    """Put FrameCheck in front of the SDK handler of every route clients POST frames to, inside its auth."""
    for route in app.routes:
        if getattr(route, "path", None) not in FRAME_PATHS:
            continue
        holder = route.app if isinstance(route.app, RequireAuthMiddleware) else route
        holder.app = FrameCheck(holder.app, limits, max_body_bytes)


def _auth_failed(_conn: HTTPConnection, exc: AuthenticationError) -> Response:
    # A token store that cannot be asked refuses the request: 503 `unavailable`, never a 401 that
    # would tell the client its token is bad, never a pass.
    unavailable = isinstance(exc, TokenStoreUnavailable)
    code = ErrorCode.UNAVAILABLE.value if unavailable else ErrorCode.FORBIDDEN.value
    return JSONResponse(
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32000, "message": f"[{code}] {exc}",
                                                 "data": {"code": code}}},
        status_code=503 if unavailable else 400, headers={"Retry-After": "1"} if unavailable else None,
    )


def _answer_unavailable_token_store(app: Any) -> None:
    for middleware in getattr(app, "user_middleware", []):
        if middleware.cls is AuthenticationMiddleware:
            middleware.kwargs["on_error"] = _auth_failed


def run_http(app: Any, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning")
