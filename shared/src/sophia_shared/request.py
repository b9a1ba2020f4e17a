"""The one request path of every tools/call: a server's own, and every call the host forwards.

principal → role → read-only → audit writable → run (validation → confirmation → tool, or a
forward to a child) → result cap → audit record, with one outcome per call. `SophiaServer.call_tool`
runs `serve` around the SDK's tool call; the host's fast lane runs the same `serve` around a
forward over its child's raw pipe. The lanes differ only in their `run` step and in the form of
the result: an SDK model on one, the JSON dict straight off the child's pipe on the other (no
model work on the hot path). Everything else is these functions.

One trust rule for `_meta`: the principal and the correlation id are taken from it only when the
server trusts its parent (the host, over its own stdio pipe to its child); from anyone else they
are ignored.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from . import tracing
from .audit import AuditEvent
from .audit_records import Outcome
from .auth import Principal, local_principal
from .errors import (
    ERROR_META_KEY,
    ConfirmationRequired,
    ErrorCode,
    Forbidden,
    NotFound,
    SophiaError,
    Unavailable,
    error_code,
)
from .redact import clip, get_logger, redact

if TYPE_CHECKING:
    from .server import SophiaServer, ToolSpec

__all__ = [
    "CORRELATION_META_KEY",
    "PRINCIPAL_META_KEY",
    "Call",
    "Outcome",
    "current_correlation_id",
    "current_principal",
    "error_result",
    "forward_meta",
    "identify",
    "serve",
    "text_chars",
]

log = get_logger("sophia")

PRINCIPAL_META_KEY = "sophia/principal"
CORRELATION_META_KEY = "sophia/correlation_id"
# Set by a host on a confirmed call whose caller can answer a prompt: the child then answers with a
# token the host turns into that prompt (trusted parents only), instead of a pending approval.
ELICITS_META_KEY = "sophia/caller_elicits"
# A forwarded correlation id is ours (16 hex characters); anything longer is not taken.
MAX_CORRELATION_CHARS = 64

R = TypeVar("R")

_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("sophia_principal", default=None)
_correlation: contextvars.ContextVar[str] = contextvars.ContextVar("sophia_correlation", default="")


def outcome_of(code: str | None) -> Outcome:
    """The outcome of a call that answered with `code` (None: it succeeded)."""
    if code is None:
        return Outcome.OK
    if code == ErrorCode.APPROVAL_REQUIRED:
        return Outcome.PENDING
    return Outcome.DENIED if code == ErrorCode.FORBIDDEN else Outcome.ERROR


def current_principal() -> Principal:
    """The principal of the call being served (the local user outside a call)."""
    principal = _principal.get()
    return principal if principal is not None else local_principal()


def current_correlation_id() -> str:
    return _correlation.get()


def new_correlation_id() -> str:
    return uuid.uuid4().hex[:16]


def identify(
    meta: object, *, trusted: bool, authenticated: Principal | None, local: Principal
) -> tuple[Principal, str]:
    """Who is calling and the call's correlation id.

    A verified token wins; otherwise the principal comes from `_meta` only when `trusted` (the
    server's parent is the host), else it is the local user. The correlation id follows the same
    rule: a trusted parent's, else a new one. Any shape of `meta` is accepted; junk counts as absent.
    """
    principal = authenticated
    correlation: str | None = None
    if trusted and isinstance(meta, Mapping):
        if principal is None:
            principal = Principal.from_meta(meta.get(PRINCIPAL_META_KEY))
        forwarded = meta.get(CORRELATION_META_KEY)
        if isinstance(forwarded, str) and 0 < len(forwarded) <= MAX_CORRELATION_CHARS:
            correlation = forwarded
    return principal or local, correlation or new_correlation_id()


def forward_meta(principal: Principal, correlation_id: str, *, elicits: bool = False) -> dict[str, Any]:
    """The `_meta` a host gives its child for one call: its own principal and correlation id (and
    whether it will ask its caller to confirm), never the caller's `_meta`."""
    meta: dict[str, Any] = {PRINCIPAL_META_KEY: principal.as_meta(), CORRELATION_META_KEY: correlation_id}
    if elicits:
        meta[ELICITS_META_KEY] = True
    if tracing.active:
        parent = tracing.current_traceparent()
        if parent is not None:
            meta[tracing.TRACEPARENT_META_KEY] = parent
    return meta


@dataclass(slots=True)
class Call:
    """One tools/call on its way through the path; `outcome` and `code` are set as it ends."""

    tool: str
    arguments: Mapping[str, Any]
    principal: Principal
    correlation_id: str
    started: float = field(default_factory=time.perf_counter)
    spec: ToolSpec | None = None
    outcome: Outcome = Outcome.OK
    code: str | None = None
    # The W3C traceparent a trusted parent sent (tracing.py): this call's span continues its trace.
    traceparent: str | None = None


async def serve(
    server: SophiaServer,
    call: Call,
    run: Callable[[ToolSpec], Awaitable[R]],
    as_result: Callable[[dict[str, Any]], R],
) -> R:
    """Take `call` through the request path of `server`, with `run` as its step that executes.

    `run` gets the admitted tool's spec and returns a result in its lane's form (a CallToolResult
    or InputRequiredResult, or their JSON dicts); it raises SophiaError for a failure the caller
    should see. `as_result` turns an error result's JSON form into that lane's form. Cancellation
    is recorded as `cancelled` and re-raised: a cancelled request gets no answer.
    """
    tracer = getattr(server, "tracer", None)
    if tracer is not None:
        with tracing.call_span(tracer, server.name, call):
            return await _serve(server, call, run, as_result)
    return await _serve(server, call, run, as_result)


async def _serve(
    server: SophiaServer,
    call: Call,
    run: Callable[[ToolSpec], Awaitable[R]],
    as_result: Callable[[dict[str, Any]], R],
) -> R:
    # Not `with bound(call)`: on the fast lane's hop a generator context manager per call shows.
    p_token = _principal.set(call.principal)
    c_token = _correlation.set(call.correlation_id)
    try:
        try:
            spec = admit(server, call)
            result = await run(spec)
            if is_input_required(result):
                call.outcome = Outcome.INPUT_REQUIRED
            else:
                server.check_result_size(call.tool, text_chars(result))
                call.code = error_code(result)
                call.outcome = outcome_of(call.code)
        except SophiaError as exc:
            call.code = exc.code.value
            call.outcome = outcome_of(call.code)
            result = as_result(error_result(exc, verbose=server.server_settings.verbose_errors))
        except BaseException as exc:
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                call.outcome, call.code = Outcome.CANCELLED, None
            else:
                call.outcome, call.code = Outcome.ERROR, ErrorCode.INTERNAL.value
            with anyio.CancelScope(shield=True):  # a cancelled call is recorded all the same
                await record(server, call)
            raise
        failure = await record(server, call)
        if failure is not None:
            return as_result(error_result(failure, verbose=False))
        return result
    finally:
        _principal.reset(p_token)
        _correlation.reset(c_token)


@contextlib.contextmanager
def bound(call: Call) -> Iterator[None]:
    """current_principal() and current_correlation_id() are the call's while it runs."""
    p_token = _principal.set(call.principal)
    c_token = _correlation.set(call.correlation_id)
    try:
        yield
    finally:
        _principal.reset(p_token)
        _correlation.reset(c_token)


def admit(server: SophiaServer, call: Call) -> ToolSpec:
    """The checks before anything runs: a known tool, not hidden by read-only mode, a role that
    allows it, and an audit log that can take the record."""
    name = call.tool
    spec = server.specs.get(name)
    if spec is None:
        raise NotFound(f"unknown tool {clip(name)!r}; list the tools to see what this server offers")
    call.spec = spec
    if not server.visible(spec):
        raise Forbidden(
            f"{name} is not available: this server runs in read-only mode "
            f"(setting SOPHIA_{server.name.upper()}_READ_ONLY or --read-only)"
        )
    principal = call.principal
    if principal.role < spec.role:
        raise Forbidden(
            f"{name} needs role {spec.role.label} or higher; {principal.name} has role {principal.role.label}"
        )
    try:
        server.check_audit()
    except SophiaError:
        raise
    except Exception as exc:  # noqa: BLE001 - the boundary: any backend failure means the record cannot be written
        log.warning("audit log not writable before %s.%s: %s", server.name, name, type(exc).__name__)
        raise Unavailable(f"audit unavailable: the audit log cannot be written ({type(exc).__name__}); "
                          f"{name} was not run") from None
    return spec


async def record(server: SophiaServer, call: Call) -> SophiaError | None:
    """Write the call's audit record; the failure to answer with instead when it cannot be written."""
    principal = call.principal
    event = AuditEvent(
        principal=principal.name, principal_kind=principal.audit_kind, role=principal.role.label,
        server=server.name, tool=call.tool, arguments=server._argument_shape(call.arguments),
        outcome=call.outcome, error_code=call.code, duration_ms=(time.perf_counter() - call.started) * 1000,
        correlation_id=call.correlation_id,
    )
    try:
        await server.write_audit(event)
    except Exception as exc:
        log.error("audit append failed for %s.%s (%s): the call is answered as unavailable",
                  server.name, call.tool, type(exc).__name__, exc_info=exc)
        if isinstance(exc, SophiaError) and exc.code == ErrorCode.UNAVAILABLE:
            return exc
        return Unavailable(f"audit unavailable: the record of {call.tool} could not be written, so its answer "
                           "is withheld; the server logged why")
    return None


def error_result(exc: SophiaError, *, verbose: bool) -> dict[str, Any]:
    """The JSON form of the tool error a SophiaError answers with (one builder for every lane)."""
    # Confirmation messages are ours and carry the token the model must repeat.
    message = exc.message if isinstance(exc, ConfirmationRequired) else redact(exc.message)
    if exc.detail and verbose:
        message = f"{message} (upstream: {redact(exc.detail)})"
    error: dict[str, Any] = {"code": exc.code.value, "message": message}
    if exc.data:
        error["data"] = exc.data
    return {
        "content": [{"type": "text", "text": f"[{exc.code.value}] {message}"}],
        "isError": True,
        "_meta": {ERROR_META_KEY: error},
    }


def is_input_required(result: Any) -> bool:
    if isinstance(result, dict):
        return result.get("resultType") == "input_required"
    return getattr(result, "result_type", None) == "input_required"


def text_chars(result: Any) -> int:
    """The characters of text in a result (either form): what the result cap counts."""
    # The JSON form is plain dicts (a `dict` check is a fraction of an ABC's on the hot path).
    blocks = result.get("content") if isinstance(result, dict) else getattr(result, "content", None)
    total = 0
    for block in blocks if isinstance(blocks, list) else []:
        text = block.get("text") if isinstance(block, dict) else getattr(block, "text", None)
        if isinstance(text, str):
            total += len(text)
    return total
