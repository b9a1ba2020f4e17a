"""The operators' endpoints beside the dashboard: /healthz, /readyz, /metrics.

/healthz answers without a token: it says only that the process serves HTTP, and a liveness probe
that needed the token store would restart a healthy host whenever that store is slow. /readyz and
/metrics name servers and tools, so they need a token (a bearer or a dashboard session) like /mcp.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from ..children import State
from .core import SECURITY_HEADERS, Dashboard, answer


async def healthz(dash: Dashboard, request: Request) -> Response:
    refused = await dash.checked(request)
    if refused is not None:
        return refused
    return answer({"status": "ok"})


async def readyz(dash: Dashboard, request: Request) -> Response:
    """200 once every enabled server is ready or has reported why not (failed, not configured); else 503."""
    allowed = await dash.admit(request)
    if isinstance(allowed, Response):
        return allowed
    host = dash.host
    waiting = [c.name for c in host.children if c.state is State.starting and c.restarts == 0]
    servers = {s["name"]: s.get("health") or s["state"] for s in host.children_status()}
    ready = not waiting and host.fatal is None and dash.feed.started.is_set()
    body = {"ready": ready, "servers": servers, "starting": waiting, "fatal": host.fatal}
    return answer(body, status=200 if ready else 503)


async def metrics(dash: Dashboard, request: Request) -> Response:
    allowed = await dash.admit(request)
    if isinstance(allowed, Response):
        return allowed
    return Response(generate_latest(dash.registry), media_type=CONTENT_TYPE_LATEST,
                    headers={"cache-control": "no-store", "x-content-type-options": SECURITY_HEADERS[
                        "x-content-type-options"]})
