"""The host's fast path on streamable HTTP (see fastpath.py); imported only when the host serves HTTP."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import RequireAuthMiddleware
from mcp.server.streamable_http import check_accept_headers
from mcp.server.transport_security import RequestBodyLimitMiddleware, TransportSecurityMiddleware
from mcp.shared.inbound import InboundLadderRejection, classify_inbound_request, find_duplicated_routing_header
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from sophia_shared.auth import principal_from_access_token
from starlette.requests import Request

from .fastpath import FastPath, error_line, parse, response_line, usable_id

log = logging.getLogger("sophia.host")


class HttpEdge:
    """The fast path on streamable HTTP: an ASGI wrapper inside the SDK's auth middleware.

    It takes only 2026-era single-exchange POSTs of tools/call (the `Mcp-Method` header says so
    before the body is read) and answers them as `application/json`. The SDK's own pieces run
    first — the body cap, Host/Origin checks, the Accept check, the routing-header ladder — and any
    request they would refuse, or the fast path would not take, is replayed to the SDK handler.
    """

    def __init__(self, fast: FastPath, inner: Any, security: Any, max_body_bytes: int):
        self.fast = fast
        self.inner = inner
        self.security = TransportSecurityMiddleware(security)
        self.limited = RequestBodyLimitMiddleware(self._handle, max_body_bytes)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not _is_modern_call(scope):
            await self.inner(scope, receive, send)
            return
        await self.limited(scope, receive, send)

    async def _handle(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        body = await request.body()
        headers = request.headers
        message = parse(body)
        params = message.get("params")
        params = params if isinstance(params, dict) else {}
        routed = self.fast.route(params) if self.fast.enabled and message.get("method") == "tools/call" else None
        if (
            routed is None or not usable_id(message.get("id"))
            or await self.security.validate_request(request, is_post=True) is not None
            or not check_accept_headers(request)[0]
            or find_duplicated_routing_header(headers.items()) is not None
            or any(h.startswith("mcp-param-") for h in headers)
            or "progressToken" in (params.get("_meta") or {})  # route() took only a dict `_meta`
            or isinstance(classify_inbound_request(message, headers=dict(headers)), InboundLadderRejection)
        ):
            await self.inner(scope, _replay(body, receive), send)
            return
        token = get_access_token()
        principal, correlation = self.fast.identify(
            params, principal_from_access_token(token) if token is not None else None)
        try:
            payload = response_line(message["id"], await self.fast.forward(*routed, params, principal, correlation))
        except Exception:  # the boundary: the request path recorded it; the caller still gets an answer
            log.exception("HTTP fast lane failed on %s", routed[1].name)
            payload = error_line(message["id"], "internal error in the host; it logged the details")
        headers_out = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers_out})
        await send({"type": "http.response.body", "body": payload})


def _is_modern_call(scope: Mapping[str, Any]) -> bool:
    method = version = None
    for key, value in scope["headers"]:
        if key == b"mcp-method":
            method = value
        elif key == b"mcp-protocol-version":
            version = value
        elif key == b"mcp-session-id":
            return False
    return method == b"tools/call" and version is not None and version.decode() in MODERN_PROTOCOL_VERSIONS


def _replay(body: bytes, receive: Any) -> Callable[[], Any]:
    """A receive that gives the already-read body once, then the connection's own events."""
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def install_http_edge(app: Any, fast: FastPath, security: Any, max_body_bytes: int, path: str = "/mcp") -> None:
    """Put the HTTP fast path in front of the SDK handler of `app`'s MCP route, inside its auth."""
    for route in app.routes:
        if getattr(route, "path", None) != path:
            continue
        holder = route.app if isinstance(route.app, RequireAuthMiddleware) else route
        holder.app = HttpEdge(fast, holder.app, security, max_body_bytes)
        return
    raise LookupError(f"no route {path} in the HTTP app")
