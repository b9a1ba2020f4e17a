"""Dashboard sessions: a token given once at login, an HttpOnly SameSite=Strict cookie after.

The cookie holds a random session id (stored here only as its hash); the token stays in the host's
memory and is verified again on every request with the same verifier as /mcp, so a revoked token
or an expired JWT ends its sessions at once and a role change shows on the next request.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sophia_shared.auth import Principal, principal_from_access_token

COOKIE = "sophia_session"
MAX_TOKEN_CHARS = 4096


@dataclass
class Session:
    token: str
    principal: Principal
    expires: float


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    """The live sessions of one host (in memory: a restart logs everyone out, which is fine)."""

    def __init__(self, verifier: Any, *, ttl_s: float, max_sessions: int):
        self.verifier = verifier
        self.ttl_s = ttl_s
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    async def principal_of(self, token: str) -> Principal | None:
        """The principal a bearer token stands for (None: not a valid token now)."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        access = await self.verifier.verify_token(token)
        return principal_from_access_token(access) if access is not None else None

    async def login(self, token: str) -> tuple[str, Session] | None:
        """A new session for a valid token: (the cookie's value, the session); None for a bad token."""
        principal = await self.principal_of(token.strip())
        if principal is None:
            return None
        self._expire()
        while len(self._sessions) >= self.max_sessions:
            self._sessions.popitem(last=False)  # the oldest goes: its browser logs in again
        session_id = secrets.token_urlsafe(32)
        session = Session(token=token.strip(), principal=principal, expires=time.time() + self.ttl_s)
        self._sessions[_key(session_id)] = session
        return session_id, session

    async def resolve(self, session_id: str | None) -> Principal | None:
        """The principal of a live session, its token verified again now; None ends the session."""
        if not session_id or len(session_id) > 100:
            return None
        key = _key(session_id)
        session = self._sessions.get(key)
        if session is None:
            return None
        if session.expires <= time.time():
            del self._sessions[key]
            return None
        principal = await self.principal_of(session.token)
        if principal is None:
            self._sessions.pop(key, None)
            return None
        session.principal = principal
        return principal

    def logout(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(_key(session_id), None)

    def _expire(self) -> None:
        now = time.time()
        for key in [k for k, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[key]

    def __len__(self) -> int:
        return len(self._sessions)


def cookie_header(session_id: str, *, max_age: int, secure: bool) -> str:
    """The Set-Cookie value: HttpOnly (no script reads it), SameSite=Strict, only for /ui."""
    flags = f"{COOKIE}={session_id}; Path=/ui; Max-Age={max_age}; HttpOnly; SameSite=Strict"
    return flags + ("; Secure" if secure else "")


def clear_cookie_header(*, secure: bool) -> str:
    return cookie_header("", max_age=0, secure=secure)
