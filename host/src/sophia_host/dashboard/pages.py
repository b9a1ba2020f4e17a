"""The dashboard's pages: login, logout, the page itself, its two static files, and the event stream."""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from string import Template
from typing import Any
from urllib.parse import parse_qs

import anyio
from sophia_shared.auth import Role
from sophia_shared.errors import ErrorCode
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from .core import SECURITY_HEADERS, Dashboard, refusal
from .sessions import COOKIE, clear_cookie_header, cookie_header
from .stream import serve_stream, start_seq

MAX_LOGIN_BYTES = 8192
# How many recent records a freshly opened page shows (replayed through the same stream).
BACKFILL = 200
FEED_START_WAIT_S = 10.0
STATIC = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}


@cache
def _asset(folder: str, name: str) -> str:
    return resources.files(__package__).joinpath(folder, name).read_text(encoding="utf-8")


def _page(name: str, status: int = 200, **values: str) -> HTMLResponse:
    body = Template(_asset("templates", name)).substitute({k: html.escape(v) for k, v in values.items()})
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


async def login_page(dash: Dashboard, request: Request) -> Response:
    refused = await dash.checked(request)
    if refused is not None:
        return refused
    if await dash.principal(request) is not None:
        return RedirectResponse("/ui", status_code=303, headers=SECURITY_HEADERS)
    return _page("login.html", error="")


async def login(dash: Dashboard, request: Request) -> Response:
    """Take the token once (a form POST: never in the URL) and answer with the session cookie."""
    refused = await dash.checked(request, changes=True)
    if refused is not None:
        return refused
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return refusal(ErrorCode.INVALID_ARGUMENT, "log in with the form at /ui/login", 415)
    body = await _capped_body(request, MAX_LOGIN_BYTES)
    token = (parse_qs(body.decode("utf-8", "replace")).get("token") or [""])[0] if body is not None else ""
    made = await dash.sessions.login(token)
    if made is None:
        return _page("login.html", status=401, error="That token was not accepted (unknown, revoked or mistyped).")
    session_id, _session = made
    response = RedirectResponse("/ui", status_code=303, headers=SECURITY_HEADERS)
    response.headers.append("set-cookie", cookie_header(session_id, max_age=int(dash.settings.dashboard_session_ttl_s),
                                                        secure=dash.settings.dashboard_cookie_secure))
    return response


async def logout(dash: Dashboard, request: Request) -> Response:
    refused = await dash.checked(request, changes=True)
    if refused is not None:
        return refused
    dash.sessions.logout(request.cookies.get(COOKIE))
    response = RedirectResponse("/ui/login", status_code=303, headers=SECURITY_HEADERS)
    response.headers.append("set-cookie", clear_cookie_header(secure=dash.settings.dashboard_cookie_secure))
    return response


async def index(dash: Dashboard, request: Request) -> Response:
    refused = await dash.checked(request)
    if refused is not None:
        return refused
    principal = await dash.principal(request)
    if principal is None:
        return RedirectResponse("/ui/login", status_code=303, headers=SECURITY_HEADERS)
    with anyio.move_on_after(FEED_START_WAIT_S):  # the head must be known, or the page would replay the whole log
        await dash.feed.started.wait()
    # Admin-only panels are not sent to anyone else at all (their endpoints refuse them too).
    admin = _asset("templates", "admin.html") if principal.role >= Role.ADMIN else ""
    body = Template(_asset("templates", "index.html")).substitute(
        start=str(max(0, dash.feed.head - BACKFILL)), host=html.escape(dash.host.name),
        role=principal.role.label, user=html.escape(principal.name), admin_panels=admin,
    )
    return HTMLResponse(body, headers=SECURITY_HEADERS)


async def static(dash: Dashboard, request: Request) -> Response:
    name = str(request.path_params.get("name", ""))
    if name not in STATIC:
        return Response("not found", status_code=404)
    headers = {**SECURITY_HEADERS, "cache-control": "no-cache"}
    return Response(_asset("static", name), media_type=STATIC[name], headers=headers)


async def _capped_body(request: Request, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class EventsEndpoint:
    """GET /ui/events: the audit feed as server-sent events (raw ASGI, see stream.py)."""

    def __init__(self, dash: Dashboard):
        self.dash = dash

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        allowed = await self.dash.admit(request)
        if isinstance(allowed, Response):
            await allowed(scope, receive, send)
            return
        feed = self.dash.feed
        if feed.streams >= self.dash.settings.dashboard_max_streams:
            busy = refusal(ErrorCode.UNAVAILABLE, "too many open dashboard streams; retry shortly", 503)
            busy.headers["retry-after"] = "5"
            await busy(scope, receive, send)
            return
        await feed.started.wait()
        # The log's own head, not only the feed's last poll: an id read from the log (another host on
        # it, or a record the feed has not polled yet) is honoured, not clamped back and replayed twice.
        head = max(feed.head, await anyio.to_thread.run_sync(feed.audit.last_seq))
        start = start_seq(request.headers.get("last-event-id"), request.query_params.get("after"), head)
        await serve_stream(feed, start, self.dash.settings.dashboard_stream_max_s, receive, send)
