"""The host's live surfaces on its HTTP app: the dashboard under /ui, and /healthz, /readyz, /metrics.

`install_dashboard` adds the routes to the app `sophia_shared.http.http_app` built (so the SDK's
bearer middleware has run for them) and runs the audit feed in the app's lifespan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.transport_security import TransportSecurityMiddleware
from prometheus_client import CollectorRegistry
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import api, ops, pages
from .core import Dashboard
from .feed import AuditFeed
from .sessions import Sessions
from .stats import HostCollector, ToolStats

if TYPE_CHECKING:
    from ..server import HostServer

__all__ = ["Dashboard", "install_dashboard"]

Handler = Callable[[Dashboard, Request], Awaitable[Response]]


def build_dashboard(host: HostServer, security: Any) -> Dashboard:
    settings = host.host_settings
    registry = CollectorRegistry()
    stats = ToolStats(host.name, lambda tool: tool in host.specs, registry)
    feed = AuditFeed(host.audit, keep=settings.dashboard_replay_events, poll_s=settings.dashboard_poll_s,
                     limit=settings.dashboard_client_buffer, observers=[stats.observe])
    registry.register(HostCollector(host.children_status, lambda: feed.streams, lambda: feed.head))
    verifier = getattr(host, "_token_verifier", None)
    sessions = Sessions(verifier, ttl_s=settings.dashboard_session_ttl_s, max_sessions=settings.dashboard_max_sessions)
    return Dashboard(host=host, settings=settings, feed=feed, sessions=sessions, stats=stats, registry=registry,
                     security=TransportSecurityMiddleware(security))


def install_dashboard(app: Any, host: HostServer) -> Dashboard | None:
    """Serve the dashboard and the operators' endpoints on `app` (None when `[host] dashboard = false`).

    Needs the app's bearer auth: with --allow-unauthenticated there is no token to log in with, so the
    dashboard is not served (it would show every user's calls to anyone on the machine).
    """
    if not host.host_settings.dashboard:
        return None
    dash = build_dashboard(host, app.state.sophia_security)
    verifier = AuditVerifierRoute(dash)

    def route(path: str, handler: Handler, methods: tuple[str, ...] = ("GET",)) -> Route:
        async def endpoint(request: Request) -> Response:
            return await handler(dash, request)

        return Route(path, endpoint, methods=list(methods))

    routes = [
        route("/healthz", ops.healthz), route("/readyz", ops.readyz), route("/metrics", ops.metrics),
    ]
    if dash.sessions.verifier is not None:
        routes += [
            route("/ui", pages.index), route("/ui/login", pages.login_page), route("/ui/login", pages.login, ("POST",)),
            route("/ui/logout", pages.logout, ("POST",)), route("/ui/static/{name}", pages.static),
            Route("/ui/events", pages.EventsEndpoint(dash)),
            route("/ui/api/servers", api.servers), route("/ui/api/stats", api.stats),
            route("/ui/api/audit", verifier.get), route("/ui/api/audit/verify", verifier.post, ("POST",)),
            route("/ui/api/approvals", api.approvals),
            route("/ui/api/approvals/{id}/{verb}", api.decide_approval, ("POST",)),
            route("/ui/api/figures", api.figures), route("/ui/api/runs", api.runs),
        ]
    app.router.routes.extend(routes)
    _run_feed_in_lifespan(app, dash.feed)
    return dash


class AuditVerifierRoute:
    def __init__(self, dash: Dashboard):
        self.verifier = api.AuditVerifier()
        self.get = partial(api.audit, verifier=self.verifier)
        self.post = self.get


def _run_feed_in_lifespan(app: Any, feed: AuditFeed) -> None:
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        async with inner(application) as state, anyio.create_task_group() as tg:
            tg.start_soon(feed.run)
            yield state
            tg.cancel_scope.cancel()

    app.router.lifespan_context = lifespan
