"""The shared REST client's retry policy, with httpx's MockTransport standing in for the network (the
Gong and Retool tests run the same client against local servers that follow the vendors' contracts)."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest
from sophia_shared.rest import RestClient, RetryPolicy
from sophia_shared.rest_limits import DailyBudget, RateLimited, RateLimiter, retry_after_s

pytestmark = pytest.mark.anyio


class Clock:
    """Virtual time: sleeping moves it, nothing waits."""

    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds
        await anyio.lowlevel.checkpoint()


def client_for(answers: list[int | Exception], *, retries: int = 3, budget: DailyBudget | None = None,
               headers: dict[str, str] | None = None) -> tuple[RestClient, list[str], Clock]:
    seen: list[str] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, headers=headers or {})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    clock = Clock()
    rest = RestClient(lambda: http, limiter=RateLimiter(100, 1.0, clock), budget=budget, clock=clock,
                      policy=RetryPolicy(max_retries=retries, backoff_base_s=1.0, max_retry_after_s=60.0))
    return rest, seen, clock


def test_retry_after_reads_seconds_and_dates_and_refuses_the_rest() -> None:
    assert retry_after_s(" 7 ") == 7.0
    assert retry_after_s("-3") == 0.0
    for garbage in ("", "nan", "inf", "soon", "Mon, 99 Foo"):
        assert retry_after_s(garbage) is None
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


async def test_a_read_is_retried_on_5xx_and_network_errors_with_growing_backoff() -> None:
    rest, seen, clock = client_for([503, httpx.ReadError("cut"), 200])
    with anyio.fail_after(5):
        answer = await rest.send("GET", "http://api.test/x", key="/x")
    assert answer.response.status_code == 200 and answer.attempts == 3 and len(seen) == 3
    assert 0.5 <= clock.slept[0] <= 1.0 and 1.0 <= clock.slept[1] <= 2.0
    assert rest.stats.retries == 2 and rest.stats.server_errors == 1


async def test_a_write_is_not_sent_twice_after_a_5xx_or_a_lost_connection() -> None:
    rest, seen, _ = client_for([502])
    with anyio.fail_after(5):
        assert (await rest.send("POST", "http://api.test/x", key="/x")).response.status_code == 502
    rest, seen, _ = client_for([httpx.ReadError("cut")])
    with anyio.fail_after(5), pytest.raises(httpx.ReadError):
        await rest.send("POST", "http://api.test/x", key="/x")
    assert seen == ["POST"]
    # A connection that never opened reached nobody: any method is sent again.
    rest, seen, _ = client_for([httpx.ConnectError("refused"), 201])
    with anyio.fail_after(5):
        assert (await rest.send("POST", "http://api.test/x", key="/x")).response.status_code == 201


async def test_a_429_holds_every_request_back_for_its_retry_after() -> None:
    rest, seen, clock = client_for([429, 200], headers={"Retry-After": "9"})
    with anyio.fail_after(5):
        answer = await rest.send("GET", "http://api.test/x", key="/x")
    assert answer.response.status_code == 200 and clock.t == 9.0 and clock.slept == [9.0]
    assert seen == ["GET", "GET"]


async def test_a_long_retry_after_is_not_waited_and_blocks_the_budget(tmp_path: Path) -> None:
    budget = DailyBudget(10, tmp_path / "budget.json", api="Demo", setting="SOPHIA_DEMO_DAILY_BUDGET")
    rest, seen, clock = client_for([429], headers={"Retry-After": "3600"}, budget=budget)
    with anyio.fail_after(5):
        answer = await rest.send("GET", "http://api.test/x", key="/x")
    assert answer.response.status_code == 429 and answer.retry_after_s == 3600.0 and clock.t == 0.0
    assert seen == ["GET"]
    assert budget.remaining() == 0
    with pytest.raises(RateLimited):
        budget.spend("/x")
