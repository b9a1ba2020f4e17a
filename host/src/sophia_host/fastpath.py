"""The host's fast lane: framing for a plain forwarded tools/call, without the SDK's model work.

Most calls through the host are plain: a tool of a ready stdio child, no confirmation, no
multi-round input. For those, the edge (stdio here, HTTP in http_edge.py) parses the JSON-RPC
request itself and hands it to the one request path (sophia_shared.request.serve) with a `run`
step that forwards over the child's raw channel (raw.py) instead of the SDK client. Everything
the path does — principal and correlation id (`identify`), role and read-only checks, the audit
check, timing, the result cap, error results, error codes and the audit record — is that shared
code, not a copy. What is here is framing only: which calls to take, the raw forward, and the
host's protocol stamps. Anything else — confirmation, retries carrying input responses, remote
children, any frame this lane does not understand — goes to the SDK lane, which answers it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp_types import PROTOCOL_VERSION_META_KEY
from mcp_types.methods import validate_client_request
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError
from sophia_shared.auth import Principal
from sophia_shared.confirm import CONFIRMATION_TOKEN_ARG
from sophia_shared.errors import Unavailable
from sophia_shared.frames import FrameLimits, Rejected, check_frame
from sophia_shared.request import Call, forward_meta, identify, serve
from sophia_shared.server import ToolSpec
from sophia_shared.stdio import suite_limits

from .children import Child, State
from .raw import ENVELOPE_PREFIX, ChannelClosed, ProgressSink, without_protocol_stamps

if TYPE_CHECKING:
    from .server import HostServer

log = logging.getLogger("sophia.host")

# Keys of a tools/call's params that only the SDK path handles (the multi-round input flow).
_SLOW_PARAMS = frozenset({"inputResponses", "requestState", "task"})
# JSON-RPC's internal error, for a fast-lane failure that is the host's own bug (it is logged).
_INTERNAL_ERROR = -32603


def era_of(params: Mapping[str, Any]) -> str | None:
    """The 2026-era protocol version a request names in its `_meta`, or None (handshake era)."""
    meta = params.get("_meta")
    version = meta.get(PROTOCOL_VERSION_META_KEY) if isinstance(meta, dict) else None
    return version if isinstance(version, str) else None


def _as_json(result: dict[str, Any]) -> dict[str, Any]:
    return result


class FastPath:
    """Hands eligible tools/call requests of one HostServer to the request path, forwarded raw."""

    def __init__(self, host: HostServer):
        self.host = host
        self.calls = 0  # shown by `sophia status --json` as fast_path_calls
        # The host's serverInfo stamp, made once (the SDK copies it per response; here it is only
        # ever serialized, never mutated).
        self.stamp = host._lowlevel_server.server_info_stamp
        self._valid_envelope: dict[str, Any] | None = None

    @property
    def enabled(self) -> bool:
        return self.host.host_settings.fast_path

    def route(self, params: Mapping[str, Any]) -> tuple[Child, ToolSpec] | None:
        """The child and spec when this call may take the fast lane; None sends it the SDK way.

        Only frames the SDK lane would take as the same call come here: anything it would refuse
        (a bad `_meta`, a wrong-typed name or arguments, an unknown version) is its to answer.
        """
        if _SLOW_PARAMS.intersection(params):
            return None
        name = params.get("name")
        arguments = params.get("arguments", {})
        if not isinstance(name, str) or not isinstance(arguments, dict) or CONFIRMATION_TOKEN_ARG in arguments \
                or not self._meta_valid(params.get("_meta")):
            return None
        child = self.host.routes.get(name)
        spec = self.host.specs.get(name)
        if child is None or spec is None or child.raw is None or child.state is not State.ready:
            return None
        if spec.confirm:
            return None  # the host may turn the child's confirmation into a question to the caller
        return child, spec

    def _meta_valid(self, meta: object) -> bool:
        """Whether the SDK would accept this `_meta` on a tools/call (the SDK's own check, once per envelope)."""
        if meta is None:
            return True
        if not isinstance(meta, dict):
            return False
        token = meta.get("progressToken")
        if token is not None and not isinstance(token, str | int):
            return False
        # Only the protocol's own keys can fail the SDK's check (every other `_meta` key takes any
        # value), so the cache holds those: a client that adds its own per-call key still hits it.
        envelope = {k: v for k, v in meta.items() if k.startswith(ENVELOPE_PREFIX)}
        if not envelope:
            return len(meta) == ("progressToken" in meta)  # handshake-era: a progress token at most
        version = envelope.get(PROTOCOL_VERSION_META_KEY)
        if version not in MODERN_PROTOCOL_VERSIONS:
            return False  # a handshake-era `_meta` carries a progress token at most; the rest is the SDK's
        if envelope == self._valid_envelope:
            return True
        try:
            validate_client_request("tools/call", version, {"name": "", "arguments": {}, "_meta": envelope})
        except (ValidationError, ValueError, KeyError):
            return False
        self._valid_envelope = envelope  # a client sends the same envelope on every call
        return True

    def identify(self, params: Mapping[str, Any], authenticated: Principal | None) -> tuple[Principal, str]:
        """The caller and the call's correlation id, by the request path's one trust rule."""
        host = self.host
        return identify(params.get("_meta"), trusted=host.trust_meta_principal, authenticated=authenticated,
                        local=host.local_principal)

    async def forward(
        self, child: Child, spec: ToolSpec, params: Mapping[str, Any], principal: Principal, correlation: str,
        progress: ProgressSink | None = None,
    ) -> dict[str, Any]:
        """Run one routed call through the request path and return the JSON-RPC `result` for the caller."""
        arguments: dict[str, Any] = params.get("arguments") or {}
        call = Call(tool=spec.name, arguments=arguments, principal=principal, correlation_id=correlation)
        self.calls += 1

        async def run(admitted: ToolSpec) -> dict[str, Any]:
            return await self._send(child, call, progress)

        result = await serve(self.host, call, run, _as_json)
        return _restamp(result, era_of(params), self.host)

    async def _send(self, child: Child, call: Call, progress: ProgressSink | None) -> dict[str, Any]:
        """The forward itself: the call on the child's raw channel, its failures as Child names them."""
        name = call.tool
        raw = child.raw
        if raw is None or child.state is not State.ready:
            raise Unavailable(f"{name} is unavailable: {child.describe()}")
        child.calls += 1
        forwarded = {"name": name, "arguments": call.arguments,
                     "_meta": forward_meta(call.principal, call.correlation_id)}
        try:
            async with asyncio.timeout(self.host.host_settings.call_timeout_s):
                message = await raw.call(forwarded, progress)
        except TimeoutError:
            raise child.failed_timeout(name) from None
        except ChannelClosed:
            raise child.failed_stopped(name) from None
        result = message.get("result")
        if not isinstance(result, dict):
            error = message.get("error")
            raise child.failed_refused(name, str(error.get("message")) if isinstance(error, dict) else "no result")
        return result


def _restamp(result: dict[str, Any], version: str | None, host: HostServer) -> dict[str, Any]:
    """The child's result as the host answers it: the child's protocol stamps removed (they name
    the wrong hop), and the host's own added for a 2026-era caller as the SDK would."""
    meta = result.get("_meta")
    if isinstance(meta, dict):
        kept = without_protocol_stamps(meta)
        if kept:
            result["_meta"] = kept
        else:
            del result["_meta"]
    if version is None:
        if result.get("resultType") == "complete":
            del result["resultType"]
        return result
    result.setdefault("resultType", "complete")
    result["_meta"] = {**(result.get("_meta") or {}), types.SERVER_INFO_META_KEY: host.fast.stamp}
    return result


def response_line(request_id: Any, result: dict[str, Any]) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}, separators=(",", ":")).encode()


class StdioEdge:
    """The fast lane on the host's own stdio: takes eligible lines before the SDK parses them."""

    def __init__(self, fast: FastPath, write: Callable[[bytes], None]):
        self.fast = fast
        self.write = write
        # The connection's era, decided the way the SDK decides it (runner.py): by its first request,
        # which therefore always goes to the SDK. None until then; the lane takes only calls of that era.
        self.modern: bool | None = None
        # Plain asyncio tasks, not an anyio task group's: spawning one is a third of the cost, and
        # the hop is measured in tens of microseconds. `close` cancels what is still running.
        self._inflight: dict[Any, asyncio.Task[None]] = {}

    def take(self, line: bytes) -> bool:
        """True when the line was handled here; False hands it to the SDK server (never raises)."""
        try:
            if self.modern is None:
                self._opening(line)
                return False
            if b'"tools/call"' in line:
                return self.fast.enabled and self._call(line)
            if b'"notifications/cancelled"' in line:
                return self._cancel(line)
        except Exception:  # the boundary: a frame this lane mishandles is the SDK lane's to answer
            log.exception("fast lane could not take a frame; the SDK lane answers it")
        return False

    def _opening(self, line: bytes) -> None:
        message = parse(line)
        method = message.get("method")
        if message.get("jsonrpc") != "2.0" or not isinstance(method, str) or not usable_id(message.get("id")):
            return  # not a request: the SDK keeps waiting for its opening request too
        params = message.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        self.modern = method != "initialize" and isinstance(meta, dict) and PROTOCOL_VERSION_META_KEY in meta

    def _call(self, line: bytes) -> bool:
        message = parse(line)
        request_id = message.get("id")
        if message.get("method") != "tools/call" or message.get("jsonrpc") != "2.0" or not usable_id(request_id) \
                or request_id in self._inflight:
            return False
        params = message.get("params")
        if not isinstance(params, dict) or (era_of(params) is not None) is not self.modern:
            return False  # the SDK answers a call of the other era with its own refusal
        routed = self.fast.route(params)
        if routed is None:
            return False
        principal, correlation = self.fast.identify(params, None)
        token = (params.get("_meta") or {}).get("progressToken")  # route() took only a dict `_meta`
        self._inflight[request_id] = asyncio.get_running_loop().create_task(
            self._serve(request_id, routed, params, principal, correlation, token))
        return True

    def close(self) -> None:
        for task in self._inflight.values():
            task.cancel()

    async def _serve(
        self, request_id: Any, routed: tuple[Child, ToolSpec], params: dict[str, Any], principal: Principal,
        correlation: str, token: Any,
    ) -> None:
        progress: ProgressSink | None = None
        if isinstance(token, str | int) and not isinstance(token, bool):
            def progress(note: dict[str, Any]) -> None:
                self.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/progress",
                                       "params": {**note, "progressToken": token}}, separators=(",", ":")).encode())
        try:
            result = await self.fast.forward(*routed, params, principal, correlation, progress)
            self.write(response_line(request_id, result))
        except asyncio.CancelledError:
            pass  # the caller cancelled: a cancelled request gets no response
        except Exception:  # the boundary: the request path recorded it; the caller still gets an answer
            log.exception("fast lane failed on %s", routed[1].name)
            self.write(error_line(request_id, "internal error in the host; it logged the details"))
        finally:
            self._inflight.pop(request_id, None)

    def _cancel(self, line: bytes) -> bool:
        message = parse(line)
        params = message.get("params")
        request_id = params.get("requestId") if isinstance(params, dict) else None
        task = self._inflight.get(request_id) if usable_id(request_id) else None
        if message.get("method") != "notifications/cancelled" or task is None:
            return False
        task.cancel()  # the raw channel tells the child
        return True


def usable_id(request_id: object) -> bool:
    return isinstance(request_id, str | int) and not isinstance(request_id, bool)


def error_line(request_id: Any, message: str) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "error": {"code": _INTERNAL_ERROR, "message": message}},
                      separators=(",", ":")).encode()


@functools.cache
def _limits() -> FrameLimits:
    """The limits the edges check frames against (SOPHIA_FRAME_MAX_BYTES, SOPHIA_FRAME_MAX_DEPTH)."""
    return suite_limits()


def parse(line: bytes) -> dict[str, Any]:
    """The checked JSON-RPC message in a line or body, or {} for any frame the edge's frame check
    refuses (the fast lane then declines it, and the edge answers it with its JSON-RPC error)."""
    message = check_frame(line, _limits())
    return {} if isinstance(message, Rejected) else message

