"""The agent's failures: a provider's (classified, for fallback) and the run's (typed, stable codes)."""

from __future__ import annotations

from enum import StrEnum

from sophia_shared.errors import LimitExceeded, NotConfigured, UpstreamError


class FailureKind(StrEnum):
    """Why one model call failed; stable, recorded in the audit record's error_code."""

    CONNECT = "provider_connect"
    TIMEOUT = "provider_timeout"
    SERVER = "provider_server_error"  # 5xx
    RATE_LIMITED = "provider_rate_limited"  # 429
    AUTH = "provider_auth"  # 401 / 403
    CONTEXT_OVERFLOW = "provider_context_overflow"
    BAD_REQUEST = "provider_bad_request"  # another 4xx
    STREAM_ERROR = "provider_stream_error"  # an error event inside a 200 stream
    MALFORMED = "provider_malformed"  # an SSE chunk or body that is not what the format says
    CUT = "provider_stream_cut"  # the stream ended before its end marker


# Failures that say nothing about the provider's health, only about this request: no cooldown.
REQUEST_FAULTS = frozenset({FailureKind.CONTEXT_OVERFLOW, FailureKind.BAD_REQUEST})


class ProviderFailure(Exception):
    """One provider's call failed. `retry_after_s`: what the provider asked for (429 Retry-After)."""

    def __init__(self, kind: FailureKind, message: str, *, status: int | None = None,
                 retry_after_s: float | None = None):
        super().__init__(f"{kind.value}: {message}")
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s


class ProvidersExhausted(UpstreamError):
    """Every configured provider failed (or is cooling down); data names each one's failure."""


class StreamBroken(UpstreamError):
    """A stream failed after its text was shown and restarting elsewhere is turned off."""


class BudgetExceeded(LimitExceeded):
    """The asking user's daily model budget is spent: no further model call is made today."""


class NoProvider(NotConfigured):
    """No `[[agent.providers]]` is configured (and the offline router was not asked for)."""
