"""What every dashboard route shares: the host, the feed, sessions, figures, and who is asking.

A request is authenticated by a bearer token (as on /mcp: the SDK's middleware has verified it) or
by the dashboard's session cookie. Every request's Host (and Origin, when sent) is checked as on
/mcp; a request that changes something with the cookie must also come with this host's Origin
(SameSite=Strict does not tell another port of 127.0.0.1 from this one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcp.server.transport_security import TransportSecurityMiddleware
from prometheus_client import CollectorRegistry
from sophia_shared.auth import Principal, Role, principal_from_access_token
from sophia_shared.errors import ErrorCode
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .feed import AuditFeed
from .sessions import COOKIE, Sessions
from .stats import ToolStats

if TYPE_CHECKING:
    from ..config import HostSettings
    from ..server import HostServer

SECURITY_HEADERS = {
    "content-security-policy": ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                                "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "x-content-type-options": "nosniff",
    # same-origin, not no-referrer: with no-referrer a form POST carries `Origin: null`, which is refused.
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
    "x-frame-options": "DENY",
}


def refusal(code: ErrorCode, message: str, status: int) -> JSONResponse:
    """An error answer in the suite's shape: a stable code and a message that says what to do."""
    return JSONResponse({"error": {"code": code.value, "message": message}}, status_code=status,
                        headers=SECURITY_HEADERS)


def answer(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers=SECURITY_HEADERS)


@dataclass
class Dashboard:
    host: HostServer
    settings: HostSettings
    feed: AuditFeed
    sessions: Sessions
    stats: ToolStats
    registry: CollectorRegistry
    security: TransportSecurityMiddleware

    async def checked(self, request: Request, *, changes: bool = False) -> Response | None:
        """A refusal for a request from the wrong Host or Origin, else None."""
        refused = await self.security.validate_request(request, is_post=False)
        if refused is not None:
            return refused
        if changes and self.bearer(request) is None:
            origin = request.headers.get("origin")
            if not origin or origin == "null":
                return refusal(ErrorCode.FORBIDDEN, "a change made with the session cookie needs this host's Origin",
                               403)
        return None

    @staticmethod
    def bearer(request: Request) -> Principal | None:
        user = request.scope.get("user")
        token = getattr(user, "access_token", None)
        return principal_from_access_token(token) if token is not None else None

    async def principal(self, request: Request) -> Principal | None:
        """Who asks: a verified bearer token, else a live session; None when neither. Without auth
        (--allow-unauthenticated, loopback only) the local user, as on /mcp."""
        if self.sessions.verifier is None:
            return self.host.local_principal
        return self.bearer(request) or await self.sessions.resolve(request.cookies.get(COOKIE))

    async def admit(self, request: Request, *, role: Role = Role.VIEWER,
                    changes: bool = False) -> Principal | Response:
        """The principal of an allowed request, or the answer that refuses it."""
        refused = await self.checked(request, changes=changes)
        if refused is not None:
            return refused
        principal = await self.principal(request)
        if principal is None:
            return refusal(ErrorCode.FORBIDDEN, "log in at /ui/login (or send a bearer token)", 401)
        if principal.role < role:
            return refusal(ErrorCode.FORBIDDEN, f"this needs role {role.label}; {principal.name} has role "
                           f"{principal.role.label}", 403)
        return principal
