"""One resilient HTTP client for REST integrations (Gong, Retool): every request takes its turn in
the rate limit (and, where the API has one, the daily budget), and is retried with backoff and
jitter on 429, 5xx and network errors under one retry policy (tenacity), `Retry-After` honoured.

What is retried: a 429 always (nothing was done), and a connection that never opened always; a 5xx
or a connection lost mid-request only for idempotent requests, since the change may have been
applied. What comes back: the last response (any status: the integration maps it to its own
error), or, when the network failed on every try, the last httpx error.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt

from .rest_limits import Clock, DailyBudget, RateLimiter, RealClock, retry_after_s

if TYPE_CHECKING:
    import httpx

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
BACKOFF_CAP_S = 30.0


@dataclass(frozen=True)
class RetryPolicy:
    """An API's own numbers (from its settings)."""

    max_retries: int
    backoff_base_s: float
    # A 429 asking for a longer wait is answered at once instead of waited out (e.g. a daily cap).
    max_retry_after_s: float


@dataclass
class ClientStats:
    """What a client has sent since it was built (for progress reports and the benchmarks)."""

    requests: int = 0
    retries: int = 0
    throttled_429: int = 0
    server_errors: int = 0
    waited_s: float = 0.0
    by_path: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    """The final response of a request, how many tries it took and the last Retry-After (seconds)."""

    response: httpx.Response
    attempts: int
    retry_after_s: float | None


class RestClient:
    """Requests to one API under its limiter, budget and retry policy; httpx is built on first use."""

    def __init__(
        self,
        http: Callable[[], httpx.AsyncClient],
        *,
        policy: RetryPolicy,
        limiter: RateLimiter,
        budget: DailyBudget | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._http = http
        self.policy = policy
        self.limiter = limiter
        self.budget = budget
        self.clock = clock or limiter.clock or RealClock()
        self.stats = ClientStats()
        self._rng = random.Random()

    def backoff_s(self, attempt: int) -> float:
        """The wait before retry `attempt` (1-based): exponential, capped, with jitter in its upper half
        so concurrent callers do not retry in lockstep."""
        ceiling = min(BACKOFF_CAP_S, self.policy.backoff_base_s * (2.0 ** (attempt - 1)))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    async def send(self, method: str, url: str, *, key: str, idempotent: bool | None = None,
                   **kwargs: Any) -> Answer:
        """Send `method url` (httpx keyword arguments) under the policy; `key` names it in stats and budget."""
        import httpx

        safe = method.upper() in IDEMPOTENT_METHODS if idempotent is None else idempotent
        last_retry_after: list[float | None] = [None]

        def retryable(state: RetryCallState) -> bool:
            outcome = state.outcome
            assert outcome is not None
            if outcome.failed:
                error = outcome.exception()
                return isinstance(error, httpx.ConnectError | httpx.ConnectTimeout) or (
                    safe and isinstance(error, httpx.TransportError))
            response: httpx.Response = outcome.result()
            if response.status_code == 429:
                after = last_retry_after[0]
                return after is None or after <= self.policy.max_retry_after_s
            return response.status_code in RETRY_STATUSES and safe

        def wait(state: RetryCallState) -> float:
            outcome = state.outcome
            assert outcome is not None
            self.stats.retries += 1
            if not outcome.failed and outcome.result().status_code == 429:
                return 0.0  # the limiter holds every request back (attempt() told it how long)
            return self.backoff_s(state.attempt_number)

        async def sleep(seconds: float) -> None:
            if seconds > 0:
                self.stats.waited_s += seconds
                await self.clock.sleep(seconds)

        tries = [0]

        async def attempt() -> httpx.Response:
            tries[0] += 1
            if self.budget is not None:
                self.budget.spend(key)
            # The slot is taken last, right before sending, so the limiter's clock matches the API's.
            self.stats.waited_s += await self.limiter.acquire()
            self.stats.requests += 1
            self.stats.by_path[key] = self.stats.by_path.get(key, 0) + 1
            response = await self._http().request(method, url, **kwargs)
            last_retry_after[0] = None
            if response.status_code == 429:
                self.stats.throttled_429 += 1
                last_retry_after[0] = retry_after_s(response.headers.get("Retry-After"))
                after = last_retry_after[0]
                if after is None or after <= self.policy.max_retry_after_s:
                    # At once, before any other request takes a turn: the limit is the API's, for all of us.
                    self.limiter.hold_off(after if after is not None else self.backoff_s(tries[0]))
                elif self.budget is not None:
                    self.budget.block(after)  # e.g. a daily cap: every process on this home stays away
            elif response.status_code >= 500:
                self.stats.server_errors += 1
            return response

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.policy.max_retries + 1), wait=wait, retry=retryable, sleep=sleep,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        response: httpx.Response = await retrying(attempt)
        return Answer(response, tries[0], last_retry_after[0])
