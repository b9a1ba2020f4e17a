"""Tool errors with stable codes: what the model can fix, said so it can fix it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

# Where a tool error's code, message and data travel: the result's _meta. Not structuredContent,
# because clients (the TypeScript SDK among them) validate structuredContent against the tool's
# output schema even on error results.
ERROR_META_KEY = "sophia/error"


def error_info(result: Any) -> dict[str, Any] | None:
    """The {code, message, data} of a failed tools/call result, or None when it succeeded.

    `result` is a CallToolResult or its JSON form (a plain dict straight off a child's pipe): both lanes
    of the request path read codes here, so they cannot disagree about one.
    """
    if isinstance(result, dict):
        failed, meta = result.get("isError"), result.get("_meta")
    else:
        failed, meta = getattr(result, "is_error", False), getattr(result, "meta", None)
    if not failed:
        return None
    error = meta.get(ERROR_META_KEY) if isinstance(meta, dict) else None
    if isinstance(error, dict) and "code" in error:
        return error
    return {"code": ErrorCode.INTERNAL.value, "message": _first_text(result)}


def error_code(result: Any) -> str | None:
    """The stable code of a failed tools/call result (either form), or None when it succeeded."""
    info = error_info(result)
    return str(info["code"]) if info is not None else None


def error_data(result: Any) -> dict[str, Any]:
    """The `data` of a failed result's error (e.g. a confirmation token), or {} (also when it succeeded)."""
    data = (error_info(result) or {}).get("data")
    return data if isinstance(data, dict) else {}


def _first_text(result: Any) -> str:
    blocks = result.get("content") if isinstance(result, dict) else getattr(result, "content", None)
    for block in blocks if isinstance(blocks, list) else []:
        text = block.get("text") if isinstance(block, dict) else getattr(block, "text", None)
        if isinstance(text, str):
            return text
    return ""


class ErrorCode(StrEnum):
    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    CONFIRMATION_REQUIRED = "confirmation_required"
    # A person must approve the call out of band (`sophia approve ID`); the model cannot.
    APPROVAL_REQUIRED = "approval_required"
    NOT_CONFIGURED = "not_configured"
    UNAVAILABLE = "unavailable"
    UPSTREAM_ERROR = "upstream_error"
    TIMEOUT = "timeout"
    LIMIT_EXCEEDED = "limit_exceeded"
    CONFLICT = "conflict"
    INTERNAL = "internal"


class SophiaError(Exception):
    """A failure reported to the client as a tool error with a stable code.

    `message` says what was wrong and what to change. `detail` is upstream or internal text,
    shown only when the server runs with verbose errors. `data` is a small JSON-safe dict
    added to the structured error.
    """

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL

    def __init__(self, message: str, *, detail: str | None = None, data: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.data = data or {}


class InvalidArgument(SophiaError):
    code = ErrorCode.INVALID_ARGUMENT


class NotFound(SophiaError):
    code = ErrorCode.NOT_FOUND


class Forbidden(SophiaError):
    code = ErrorCode.FORBIDDEN


class ConfirmationRequired(SophiaError):
    code = ErrorCode.CONFIRMATION_REQUIRED


class ApprovalRequired(SophiaError):
    code = ErrorCode.APPROVAL_REQUIRED


class NotConfigured(SophiaError):
    code = ErrorCode.NOT_CONFIGURED


class Unavailable(SophiaError):
    code = ErrorCode.UNAVAILABLE


class UpstreamError(SophiaError):
    code = ErrorCode.UPSTREAM_ERROR


class ToolTimeout(SophiaError):
    code = ErrorCode.TIMEOUT


class LimitExceeded(SophiaError):
    code = ErrorCode.LIMIT_EXCEEDED


class Conflict(SophiaError):
    code = ErrorCode.CONFLICT


class InternalError(SophiaError):
    code = ErrorCode.INTERNAL
