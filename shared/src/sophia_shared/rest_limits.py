"""What a REST integration owes the API it calls: a per-process rate limit, a daily budget shared by
every process on one SOPHIA_HOME, and the API's `Retry-After` read the way HTTP defines it."""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import time
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol

import anyio

from .errors import LimitExceeded
from .paths import write_atomically

# A limiter given "N per second" counts over a slightly longer window: the API counts at arrival,
# and network or scheduling jitter must not push an N+1th request into the API's second.
RATE_WINDOW_MARGIN_S = 0.1


class Clock(Protocol):
    """Time for the limiter and the backoff; tests substitute a virtual one."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class BudgetExhausted(LimitExceeded):
    """The daily request budget is spent; nothing more is sent until the next UTC day."""


class RateLimited(LimitExceeded):
    """The API kept answering 429, or asked for a longer wait than we are willing to sleep."""


class RateLimiter:
    """At most `limit` request starts in any `period` seconds, for every request of one client."""

    def __init__(self, limit: int, period: float = 60.0, clock: Clock | None = None) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("limit must be >= 1 and period > 0")
        self.limit = limit
        self.period = period
        self.clock = clock or RealClock()
        self._sent: deque[float] = deque()
        self._lock = anyio.Lock()
        self._blocked_until = 0.0
        self.waited_s = 0.0

    @classmethod
    def per_second(cls, rate: float, clock: Clock | None = None) -> RateLimiter:
        """`rate` requests a second (fractional rates: whole requests over a longer window)."""
        capacity = max(1, math.floor(rate))
        return cls(capacity, capacity / rate + RATE_WINDOW_MARGIN_S, clock)

    async def acquire(self) -> float:
        """Wait for a slot; return the seconds waited."""
        waited = 0.0
        # One waiter at a time keeps the order fair and the window exact.
        async with self._lock:
            while True:
                now = self.clock.now()
                if now < self._blocked_until:
                    wait = self._blocked_until - now
                else:
                    while self._sent and self._sent[0] <= now - self.period:
                        self._sent.popleft()
                    if len(self._sent) < self.limit:
                        self._sent.append(now)
                        self.waited_s += waited
                        return waited
                    wait = self._sent[0] + self.period - now
                waited += wait
                await self.clock.sleep(wait)

    def hold_off(self, seconds: float) -> None:
        """After a 429, every caller waits `seconds` (the API's limit is for all of us, not one request)."""
        self._blocked_until = max(self._blocked_until, self.clock.now() + seconds)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock shared with other processes using the same SOPHIA_HOME."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class DailyBudget:
    """Requests sent today (UTC), persisted so restarts and sibling processes share one count.

    `api` names the API in messages ("Gong") and `setting` the env name that raises the limit.
    """

    def __init__(self, limit: int, path: Path, *, api: str, setting: str) -> None:
        self.limit = limit
        self.path = path
        self.api = api
        self.setting = setting
        self._lock_path = self.path.with_suffix(".lock")

    @staticmethod
    def today() -> str:
        return datetime.now(UTC).date().isoformat()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {"day": self.today(), "used": 0}
        if not isinstance(data, dict) or data.get("day") != self.today():
            return {"day": self.today(), "used": 0}
        return data

    def _write(self, data: dict[str, Any]) -> None:
        write_atomically(self.path, json.dumps(data).encode())

    def used(self) -> int:
        return int(self._read().get("used", 0))

    def blocked_for(self) -> float:
        """Seconds the API told us to stay away (a long Retry-After, e.g. its daily cap), 0 if none."""
        until = self._read().get("blocked_until")
        return max(0.0, float(until) - time.time()) if isinstance(until, int | float) else 0.0

    def remaining(self) -> int:
        if self.blocked_for() > 0:
            return 0
        return max(0, self.limit - self.used())

    def spend(self, path: str) -> None:
        """Count one request, or raise BudgetExhausted/RateLimited without sending it."""
        with file_lock(self._lock_path):
            data = self._read()
            used = int(data.get("used", 0))
            if used >= self.limit:
                raise BudgetExhausted(
                    f"the daily {self.api} request budget ({self.limit}) is spent; it resets at 00:00 UTC "
                    f"(raise {self.setting} only if {self.api} raised your company's limit)",
                    data={"used": used, "limit": self.limit, "path": path},
                )
            until = data.get("blocked_until")
            if isinstance(until, int | float) and until > time.time():
                when = datetime.fromtimestamp(until, UTC).strftime("%H:%M UTC")
                raise RateLimited(
                    f"{self.api} asked for no requests until {when} (its request limit was reached); try again then",
                    data={"retry_after_s": round(until - time.time(), 1), "path": path},
                )
            data["used"] = used + 1
            self._write(data)

    def block(self, seconds: float) -> None:
        """The API answered 429 with a long Retry-After: every process sharing this home stays away."""
        with file_lock(self._lock_path):
            data = self._read()
            data["blocked_until"] = time.time() + seconds
            self._write(data)


def retry_after_s(value: str | None) -> float | None:
    """A `Retry-After` header in seconds (delta-seconds or an HTTP date), None when absent or garbage."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
