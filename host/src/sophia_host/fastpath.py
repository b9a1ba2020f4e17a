"""The host's fast path: a plain forwarded tools/call without the SDK's per-message model work.

Most calls through the host are plain: a tool of a ready stdio child, a caller whose role allows
it, no confirmation, no multi-round input. For those, the edge hands the parsed JSON-RPC request
here instead of to the SDK server, and the call goes to the child over its raw channel (raw.py).
The request path is the same one, in the same order, with the same shared pieces: the principal
(from the verified token, or the local user over stdio), the role and read-only checks (a call
that fails them is not fast: the SDK path refuses it with its usual error), the principal and
correlation id forwarded in `_meta` (the caller's own `_meta` is never passed on), the timeout,
the result cap, the error mapping, and the audit record (`SophiaServer._record`). Anything else —
confirmation, progress over HTTP, retries carrying input responses, remote children — takes the
SDK path, which stays the reference behaviour.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp_types import PROTOCOL_VERSION_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from sophia_shared.auth import Principal
from sophia_shared.confirm import CONFIRMATION_TOKEN_ARG
from sophia_shared.errors import ERROR_META_KEY, SophiaError, Unavailable
from sophia_shared.frames import FrameLimits, Rejected, check_frame
from sophia_shared.server import CORRELATION_META_KEY, PRINCIPAL_META_KEY, ToolSpec
from sophia_shared.stdio import suite_limits

from .children import Child, State
from .raw import ChannelClosed, ProgressSink, without_protocol_stamps

if TYPE_CHECKING:
    from .server import HostServer

# Keys of a tools/call's params that only the SDK path handles (the multi-round input flow).
_SLOW_PARAMS = frozenset({"inputResponses", "requestState", "task"})


def era_of(params: Mapping[str, Any]) -> str | None:
    """The 2026-era protocol version a request names in its `_meta`, or None (handshake era)."""
    meta = params.get("_meta")
    version = meta.get(PROTOCOL_VERSION_META_KEY) if isinstance(meta, dict) else None
    return version if isinstance(version, str) else None


class FastPath:
    """Forwards eligible tools/call requests of one HostServer over its children's raw channels."""

    def __init__(self, host: HostServer):
        self.host = host
        self.calls = 0  # shown by `sophia status --json` as fast_path_calls
        # The host's serverInfo stamp, made once (the SDK copies it per response; here it is only
        # ever serialized, never mutated).
        self.stamp = host._lowlevel_server.server_info_stamp

    def route(self, params: Any, principal: Principal) -> tuple[Child, ToolSpec] | None:
        """The child and spec when this call may take the fast path; None sends it the SDK way."""
        if not isinstance(params, dict) or _SLOW_PARAMS.intersection(params):
            return None
        name = params.get("name")
        arguments = params.get("arguments", {})
        if not isinstance(name, str) or not isinstance(arguments, dict) or CONFIRMATION_TOKEN_ARG in arguments:
            return None
        version = era_of(params)
        if version is not None and version not in MODERN_PROTOCOL_VERSIONS:
            return None
        child = self.host.routes.get(name)
        spec = self.host.specs.get(name)
        if child is None or spec is None or child.raw is None or child.state is not State.ready:
            return None
        if spec.confirm or not self.host.visible(spec) or principal.role < spec.role:
            return None
        return child, spec

    async def forward(
        self, child: Child, spec: ToolSpec, params: dict[str, Any], principal: Principal,
        progress: ProgressSink | None = None,
    ) -> dict[str, Any]:
        """Run one routed call and return the JSON-RPC `result` for the caller."""
        host = self.host
        name = spec.name
        arguments: dict[str, Any] = params.get("arguments") or {}
        version = era_of(params)
        correlation = uuid.uuid4().hex[:16]
        started = time.perf_counter()
        outcome, code = "ok", None
        forwarded = {"name": name, "arguments": arguments,
                     "_meta": {PRINCIPAL_META_KEY: principal.as_meta(), CORRELATION_META_KEY: correlation}}
        child.calls += 1
        self.calls += 1
        try:
            raw = child.raw
            if raw is None:
                raise Unavailable(f"{name} is unavailable: {child.describe()}")
            try:
                async with asyncio.timeout(host.host_settings.call_timeout_s):
                    message = await raw.call(forwarded, progress)
            except TimeoutError:
                raise child.failed_timeout(name) from None
            except ChannelClosed:
                raise child.failed_stopped(name) from None
            result = message.get("result")
            if not isinstance(result, dict):
                error = message.get("error")
                raise child.failed_refused(name, str(error.get("message")) if isinstance(error, dict) else "no result")
            host.check_result_size(name, sum(
                len(c.get("text") or "") for c in result.get("content") or [] if isinstance(c, dict)))
            if result.get("isError"):
                outcome, code = "error", _error_code(result)
            return _restamp(result, version, host)
        except SophiaError as exc:
            outcome, code = "error", exc.code.value
            error = host._error_result(exc).model_dump(by_alias=True, mode="json", exclude_none=True)
            return _restamp(error, version, host)
        except BaseException:
            outcome, code = "error", "cancelled"
            raise
        finally:
            host._record(spec, name, arguments, principal, correlation, outcome, code, started)


def _error_code(result: Mapping[str, Any]) -> str | None:
    meta = result.get("_meta")
    error = meta.get(ERROR_META_KEY) if isinstance(meta, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return str(code) if code is not None else None


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
    """The fast path on the host's own stdio: takes eligible lines before the SDK parses them."""

    def __init__(self, fast: FastPath, write: Callable[[bytes], None]):
        self.fast = fast
        self.write = write
        self.handshake = False
        # Plain asyncio tasks, not an anyio task group's: spawning one is a third of the cost, and
        # the hop is measured in tens of microseconds. `close` cancels what is still running.
        self._inflight: dict[Any, asyncio.Task[None]] = {}

    def take(self, line: bytes) -> bool:
        """True when the line was handled here; False hands it to the SDK server."""
        if b'"tools/call"' in line:
            return self._call(line)
        if b'"notifications/cancelled"' in line:
            return self._cancel(line)
        if b'"initialize"' in line and parse(line).get("method") == "initialize":
            # Handshake-era calls (no `_meta` envelope) are only valid after initialize.
            self.handshake = True
        return False

    def _call(self, line: bytes) -> bool:
        message = parse(line)
        request_id = message.get("id")
        if message.get("method") != "tools/call" or not isinstance(request_id, str | int) or request_id in \
                self._inflight:
            return False
        params = message.get("params")
        principal = self.fast.host.local_principal
        if not isinstance(params, dict) or self.fast.host.trust_meta_principal:
            return False  # a host behind a host: the SDK path reads the forwarded principal
        routed = self.fast.route(params, principal)
        if routed is None or (era_of(params) is None and not self.handshake):
            return False
        meta = params.get("_meta")
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        self._inflight[request_id] = asyncio.get_running_loop().create_task(
            self._serve(request_id, routed, params, principal, token))
        return True

    def close(self) -> None:
        for task in self._inflight.values():
            task.cancel()

    async def _serve(
        self, request_id: Any, routed: tuple[Child, ToolSpec], params: dict[str, Any], principal: Principal,
        token: Any,
    ) -> None:
        progress: ProgressSink | None = None
        if isinstance(token, str | int) and not isinstance(token, bool):
            def progress(note: dict[str, Any]) -> None:
                self.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/progress",
                                       "params": {**note, "progressToken": token}}, separators=(",", ":")).encode())
        try:
            result = await self.fast.forward(*routed, params, principal, progress)
            self.write(response_line(request_id, result))
        except asyncio.CancelledError:
            pass  # the caller cancelled: a cancelled request gets no response
        finally:
            self._inflight.pop(request_id, None)

    def _cancel(self, line: bytes) -> bool:
        message = parse(line)
        params = message.get("params")
        request_id = params.get("requestId") if isinstance(params, dict) else None
        task = self._inflight.get(request_id) if isinstance(request_id, str | int) else None
        if message.get("method") != "notifications/cancelled" or task is None:
            return False
        task.cancel()  # the raw channel tells the child
        return True


@functools.cache
def _limits() -> FrameLimits:
    """The limits the edges check frames against (SOPHIA_FRAME_MAX_BYTES, SOPHIA_FRAME_MAX_DEPTH)."""
    return suite_limits()


def parse(line: bytes) -> dict[str, Any]:
    """The checked JSON-RPC message in a line or body, or {} for any frame the edge's frame check
    refuses (the fast lane then declines it, and the edge answers it with its JSON-RPC error)."""
    message = check_frame(line, _limits())
    return {} if isinstance(message, Rejected) else message

