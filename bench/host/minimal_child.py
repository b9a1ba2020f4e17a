"""The near-free child for bench/host's capacity phase: bench/host/child.py's `add` tool, served by a stdlib
loop over stdio instead of the MCP SDK.

Why it exists: the SDK child alone caps near 1,000 calls/s on 2 cores even with pipelined requests, so in
front of it every gateway measures the child, and no gateway could show 3x another. This child answers in
microseconds, which leaves the gateway as the bottleneck: capacity then measures the gateways themselves.

It speaks both protocol eras on the wire as the SDK server (mcp 2.3) does, answers mirrored from
bench/host/child.py: the client's first request decides the era. A request carrying the 2026-07-28 `_meta`
envelope (the Sophia host's SDK client: `server/discover`, then enveloped requests, and a
`subscriptions/listen` that is acknowledged and then held open silently) opens a modern connection, whose
results are stamped with `resultType` and the serverInfo `_meta`; anything else (mcp-proxy's mcp<2 client:
`initialize`, `notifications/initialized`, ...) opens a handshake-era one. Unlike the SDK, `ping` is answered
in both eras. Run as `python -m bench.host.minimal_child`.
"""

from __future__ import annotations

import json
import sys
from typing import Any, BinaryIO

MODERN = "2026-07-28"
HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
SERVER_INFO = {"name": "bench", "version": ""}
STAMP = {"resultType": "complete", "_meta": {"io.modelcontextprotocol/serverInfo": SERVER_INFO}}
LISTEN_FLAGS = ("toolsListChanged", "promptsListChanged", "resourcesListChanged")
ADD = {
    "name": "add",
    "description": "Add two integers.",
    "inputSchema": {"type": "object", "properties": {"a": {"title": "A", "type": "integer"},
                                                     "b": {"title": "B", "type": "integer"}},
                    "required": ["a", "b"], "title": "addArguments"},
    "outputSchema": {"type": "object", "properties": {"result": {"title": "Result", "type": "integer"}},
                     "required": ["result"], "title": "addOutput"},
}


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None):
        super().__init__(message)
        self.error: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            self.error["data"] = data


def call_tool(params: dict[str, Any]) -> dict[str, Any]:
    """tools/call's result; bad arguments or an unknown tool are a tool error (isError), as the SDK gives."""
    name, arguments = params.get("name"), params.get("arguments") or {}
    if name != "add":
        return {"content": [{"type": "text", "text": f"Unknown tool: {name}"}], "isError": True}
    invalid = [key for key in ("a", "b") if type(arguments.get(key)) is not int]
    if invalid:
        text = f"Error executing tool add: {', '.join(invalid)}: an integer is required"
        return {"content": [{"type": "text", "text": text}], "isError": True}
    total = arguments["a"] + arguments["b"]
    return {"content": [{"type": "text", "text": str(total)}], "isError": False, "structuredContent": {"result": total}}


class Server:
    def __init__(self, out: BinaryIO):
        self.out = out
        self.modern: bool | None = None  # decided by the first request, once

    def send(self, message: dict[str, Any]) -> None:
        self.out.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        self.out.flush()

    def handle(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            self.send({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}})
            return
        if not isinstance(message, dict) or "id" not in message or "method" not in message:
            return  # notifications (and stray responses) get no reply
        request_id, method, params = message["id"], message["method"], message.get("params") or {}
        enveloped = isinstance(params.get("_meta"), dict) and VERSION_KEY in params["_meta"]
        if self.modern is None:
            self.modern = enveloped and method != "initialize"
        try:
            result = self.modern_result(request_id, method, params) if self.modern else \
                self.handshake_result(method, params, enveloped)
        except RpcError as exc:
            self.send({"jsonrpc": "2.0", "id": request_id, "error": exc.error})
            return
        if result is not None:
            self.send({"jsonrpc": "2.0", "id": request_id, "result": result})

    def modern_result(self, request_id: Any, method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        meta = params.get("_meta")
        if not isinstance(meta, dict) or VERSION_KEY not in meta or CAPABILITIES_KEY not in meta:
            raise RpcError(-32602, f"params._meta must be an object carrying the required {VERSION_KEY!r} and "
                                   f"{CAPABILITIES_KEY!r} envelope keys")
        if (version := meta[VERSION_KEY]) != MODERN:
            raise RpcError(-32022, "Unsupported protocol version", {"supported": [MODERN], "requested": version})
        if method == "tools/call":
            return {**call_tool(params), **STAMP}
        if method == "tools/list":
            return {"tools": [ADD], "cacheScope": "private", "ttlMs": 0, **STAMP}
        if method == "server/discover":
            return {"supportedVersions": [MODERN], "cacheScope": "private", "ttlMs": 0, **STAMP, "capabilities": {
                "prompts": {"listChanged": True}, "resources": {"listChanged": True, "subscribe": True},
                "tools": {"listChanged": True}}}
        if method == "subscriptions/listen":
            # Acknowledge the requested filter, then hold the stream open: this child never changes.
            asked = params.get("notifications") or {}
            honored: dict[str, Any] = {flag: True for flag in LISTEN_FLAGS if asked.get(flag)}
            if asked.get("resourceSubscriptions"):
                honored["resourceSubscriptions"] = list(asked["resourceSubscriptions"])
            self.send({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged", "params": {
                "_meta": {"io.modelcontextprotocol/subscriptionId": request_id}, "notifications": honored}})
            return None
        if method == "ping":
            return {}
        raise RpcError(-32601, "Method not found", method)

    def handshake_result(self, method: str, params: dict[str, Any], enveloped: bool) -> dict[str, Any]:
        if enveloped and method != "initialize":
            raise RpcError(-32600, "this connection serves the handshake protocol era; requests carrying the "
                                   "2026-07-28 envelope are not accepted on it")
        if method == "tools/call":
            return call_tool(params)
        if method == "tools/list":
            return {"tools": [ADD]}
        if method == "initialize":
            asked = params.get("protocolVersion")
            return {"protocolVersion": asked if asked in HANDSHAKE_VERSIONS else HANDSHAKE_VERSIONS[-1],
                    "serverInfo": SERVER_INFO, "capabilities": {
                        "prompts": {"listChanged": False}, "resources": {"listChanged": False, "subscribe": False},
                        "tools": {"listChanged": False}}}
        if method == "ping":
            return {}
        raise RpcError(-32601, "Method not found", method)


def main() -> None:
    server = Server(sys.stdout.buffer)
    for line in iter(sys.stdin.buffer.readline, b""):
        if line.strip():
            server.handle(line)


if __name__ == "__main__":
    main()
