"""A server's own check as `sophia://health` (health.py, cli.with_health): ready, not_configured and
unavailable with the check's words, a hung or broken check reported rather than raised, reads cached."""

from __future__ import annotations

import anyio
import pytest
from sophia_shared.cli import with_health
from sophia_shared.errors import NotConfigured, Unavailable
from sophia_shared.health import HEALTH_URI, Health, HealthProbe, install_health, parse_health
from sophia_shared.server import SophiaServer
from sophia_shared.settings import ServerSettings
from sophia_shared.testing import connect

pytestmark = pytest.mark.anyio


async def _read(server: SophiaServer) -> Health:
    async with connect(server) as client:
        with anyio.fail_after(5):
            result = await client.read_resource(HEALTH_URI)
    text = getattr(result.contents[0], "text", "")
    health = parse_health(text)
    assert health is not None, text
    return health


async def test_a_passing_check_is_ready_with_its_line() -> None:
    server = SophiaServer("demo", settings=ServerSettings())

    async def check() -> str:
        return "demo at example answers"

    install_health(server, check)
    health = await _read(server)
    assert (health.state, health.reason, health.code) == ("ready", "demo at example answers", None)


@pytest.mark.parametrize(("error", "state"), [
    (NotConfigured("demo is not configured: set SOPHIA_DEMO_TOKEN"), "not_configured"),
    (Unavailable("the engine at unix:///nowhere.sock is unreachable; start it or set SOPHIA_DEMO_HOST"), "unavailable"),
])
async def test_a_failing_check_names_its_reason(error: Exception, state: str) -> None:
    async def check() -> str:
        raise error

    health = await HealthProbe(check).health()
    assert health.state == state and health.reason == str(error.args[0])


async def test_a_hung_or_broken_check_is_unavailable_not_an_error() -> None:
    async def hung() -> str:
        await anyio.sleep_forever()
        return "never"

    async def broken() -> str:
        raise RuntimeError("the check has a bug")

    with anyio.fail_after(5):
        slow = await HealthProbe(hung, timeout_s=0.05).health()
    assert slow.state == "unavailable" and "did not finish" in slow.reason
    bug = await HealthProbe(broken).health()
    assert bug.state == "unavailable" and "RuntimeError" in bug.reason


async def test_reads_close_together_run_the_check_once() -> None:
    runs = []

    async def check() -> str:
        runs.append(1)
        return "ok"

    probe = HealthProbe(check)
    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(probe.health)
    assert len(runs) == 1


async def test_a_server_built_by_the_shared_cli_serves_its_check() -> None:
    async def check(settings: ServerSettings) -> str:
        raise NotConfigured("set SOPHIA_DEMO_TOKEN")

    build = with_health(lambda settings: SophiaServer("demo", settings=settings), check)
    health = await _read(build(ServerSettings()))
    assert health.state == "not_configured" and "SOPHIA_DEMO_TOKEN" in health.reason


def test_text_that_is_not_health_is_none() -> None:
    assert parse_health("not json") is None
    assert parse_health('{"state": "bogus", "reason": "x"}') is None
