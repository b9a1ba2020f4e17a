"""The dashboard's JSON: servers, per-tool figures, the audit head and verify, approvals, memory/Gong, runs.

Each reads what already exists — the children's status, the audit log, the approvals store, the
servers' own tools (called through the request path as the person logged in) — and keeps nothing
of its own but the last verify result.
"""

from __future__ import annotations

import re
import time
from typing import Any

import anyio
import anyio.to_thread
import mcp_types as types
from sophia_shared.approvals import ApprovalStore
from sophia_shared.auth import Principal, Role
from sophia_shared.errors import ErrorCode, SophiaError, error_info
from sophia_shared.request import Call, new_correlation_id, serve
from starlette.requests import Request
from starlette.responses import Response

from ..approval_decisions import decide
from .core import Dashboard, answer, refusal

# The figures panel: each server's own summary tool, when the host serves it.
FIGURE_TOOLS = ("memory_stats", "gong_sync_status")
APPROVAL_ID = re.compile(r"^[a-z0-9]{4,16}$")
SERVER_FIELDS = ("name", "state", "health", "reason", "restarts", "tools", "calls", "failures", "up_since",
                 "last_error")


async def servers(dash: Dashboard, request: Request) -> Response:
    allowed = await dash.admit(request)
    if isinstance(allowed, Response):
        return allowed
    return answer({"host": dash.host.name, "fatal": dash.host.fatal,
                   "servers": [{k: s.get(k) for k in SERVER_FIELDS} for s in dash.host.children_status()]})


async def stats(dash: Dashboard, request: Request) -> Response:
    allowed = await dash.admit(request)
    if isinstance(allowed, Response):
        return allowed
    return answer({"tools": dash.stats.windows(), "now": time.time()})


class AuditVerifier:
    """`verify` of the whole log, one run at a time: on the first look, then only when asked (it reads
    every record, so a page load must not start one)."""

    def __init__(self) -> None:
        self.result: dict[str, Any] | None = None
        self.at = 0.0
        self._lock = anyio.Lock()

    async def run(self, dash: Dashboard, *, fresh: bool) -> dict[str, Any]:
        async with self._lock:
            if self.result is None or fresh:
                report = await anyio.to_thread.run_sync(dash.host.audit.verify)
                self.result = {"intact": report.intact, "records": report.records, "problems": report.problems[:20],
                               "notes": report.notes[:5], "at": time.time()}
                self.at = time.time()
            return self.result


def _head(dash: Dashboard) -> dict[str, Any] | None:
    audit = dash.host.audit
    last = audit.last_seq()
    rows = audit.since(last - 1, 1) if last else []
    return {"seq": rows[0]["seq"], "entry_hash": rows[0]["entry_hash"]} if rows else None


async def audit(dash: Dashboard, request: Request, verifier: AuditVerifier) -> Response:
    fresh = request.method == "POST"
    allowed = await dash.admit(request, role=Role.ADMIN, changes=fresh)
    if isinstance(allowed, Response):
        return allowed
    verified = await verifier.run(dash, fresh=fresh)
    return answer({"head": await anyio.to_thread.run_sync(_head, dash), "verify": verified})


def _store(dash: Dashboard) -> ApprovalStore:
    return ApprovalStore.from_settings(dash.host.suite)


async def approvals(dash: Dashboard, request: Request) -> Response:
    allowed = await dash.admit(request, role=Role.ADMIN)
    if isinstance(allowed, Response):
        return allowed
    try:
        found = await anyio.to_thread.run_sync(lambda: _store(dash).list())
    except SophiaError as exc:
        return refusal(exc.code, exc.message, 503)
    return answer({"approvals": [a.as_dict() for a in found]})


async def decide_approval(dash: Dashboard, request: Request) -> Response:
    """POST /ui/api/approvals/{id}/approve|deny: the person's decision (the call itself runs on the model's repeat)."""
    allowed = await dash.admit(request, role=Role.ADMIN, changes=True)
    if isinstance(allowed, Response):
        return allowed
    approval_id, verb = str(request.path_params["id"]), str(request.path_params["verb"])
    if verb not in ("approve", "deny") or not APPROVAL_ID.match(approval_id):
        return refusal(ErrorCode.INVALID_ARGUMENT, "POST /ui/api/approvals/<id>/approve or .../deny", 400)
    principal: Principal = allowed
    try:
        decided = await anyio.to_thread.run_sync(lambda: decide(
            _store(dash), dash.host.audit, approval_id, approve=verb == "approve", by=principal,
            not_by_requester=True))
    except SophiaError as exc:
        status = {ErrorCode.NOT_FOUND: 404, ErrorCode.CONFLICT: 409, ErrorCode.FORBIDDEN: 403}.get(exc.code, 503)
        return refusal(exc.code, exc.message, status)
    return answer({"approval": decided.as_dict()})


async def call_as(dash: Dashboard, principal: Principal, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """One call of a routed tool through the host's request path as `principal` (role, audit and all)."""
    host = dash.host
    call = Call(tool=tool, arguments=arguments, principal=principal, correlation_id=new_correlation_id())

    async def run(_spec: Any) -> types.CallToolResult | types.InputRequiredResult:
        return await host.execute(tool, arguments, None)

    result = await serve(host, call, run, types.CallToolResult.model_validate)
    if isinstance(result, types.CallToolResult) and not result.is_error:
        return {"tool": tool, "ok": True, "data": result.structured_content}
    info = (error_info(result) if isinstance(result, types.CallToolResult) else None) or {}
    return {"tool": tool, "ok": False, "code": info.get("code", ErrorCode.INTERNAL.value),
            "message": str(info.get("message", "no answer"))[:500]}


async def figures(dash: Dashboard, request: Request) -> Response:
    allowed = await dash.admit(request)
    if isinstance(allowed, Response):
        return allowed
    found = [await call_as(dash, allowed, tool, {}) for tool in FIGURE_TOOLS if tool in dash.host.routes]
    return answer({"figures": found})


async def runs(dash: Dashboard, request: Request) -> Response:
    """The host's recent agent runs (`sophia_ask`) with their steps; a non-admin sees only their own."""
    allowed = await dash.admit(request)
    if isinstance(allowed, Response):
        return allowed
    recent = dash.host.agent_runs.recent(50)
    if allowed.role < Role.ADMIN:
        recent = [r for r in recent if r.get("principal") == allowed.name]
    return answer({"available": True, "runs": recent})
