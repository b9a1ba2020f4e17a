"""HTTP transports (SSE, streamable HTTP): loopback by default, Host/Origin checked, bodies capped,
bearer tokens (Sophia tokens or OAuth 2.1 JWTs) required unless explicitly allowed on loopback."""

from __future__ import annotations

from typing import Any

from mcp.server.transport_security import TransportSecuritySettings
from starlette.authentication import AuthenticationError
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response

from .auth import JwtVerifier, SophiaTokenVerifier, TokenStoreUnavailable, token_store
from .errors import ErrorCode, Forbidden
from .settings import SuiteSettings


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
    # What a wrapper of the MCP route (the host's fast path) must check exactly as the SDK does.
    app.state.sophia_security = security
    app.state.sophia_max_body_bytes = suite.http_max_body_bytes
    return app


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
