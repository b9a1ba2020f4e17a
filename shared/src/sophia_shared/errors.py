"""Tool errors with stable codes: what the model can fix, said so it can fix it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar


class ErrorCode(StrEnum):
    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    CONFIRMATION_REQUIRED = "confirmation_required"
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
