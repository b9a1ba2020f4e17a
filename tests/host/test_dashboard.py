"""The dashboard in a real browser: Playwright driving Debian's chromium (headless) against a real host.

One host process and one browser for the whole module (each test its own browser context, so its
own cookies). Every wait is bounded; nothing here asserts how fast anything is (bench/dashboard does).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fixtures.dashboard_host import CHROMIUM, CHROMIUM_ARGS, DashboardHost, error_of, start_dashboard_host
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from sophia_shared.audit import AuditLog

pytestmark = pytest.mark.e2e
WAIT_MS = 20_000  # a bound, never an expectation
USERS = {"ada": "admin", "vic": "viewer", "dev": "developer"}


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardHost]:
    # Streams end every 2 s, so every test also sees the browser's own reconnects (with Last-Event-ID).
    started = start_dashboard_host(tmp_path_factory.mktemp("dashboard"), dashboard_stream_max_s=2.0,
                                   env={"SOPHIA_CONFIRM_MODE": "approval"})
    try:
        for user, role in USERS.items():
            started.create_token(user, role)
        with httpx.Client(timeout=60.0) as client:
            assert "demo_echo" in started.tool_names(client, "dev")
        yield started
    finally:
        started.stop()
        print("\n".join(started.process.log[-40:]))  # shown when a test of the module failed


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # launch() gives the browser a fresh temporary user-data-dir of its own.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def requested() -> list[str]:
    """Every URL any page of this module requested (the last test checks them for tokens)."""
    return []


@pytest.fixture(scope="module")
def mcp() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60.0) as client:
        yield client


def _context(browser: Browser, requested: list[str]) -> BrowserContext:
    # Playwright's polling waits compile their predicate in the page, which the page's CSP (no eval)
    # forbids; the page's own script is served and run exactly as without this.
    context = browser.new_context(bypass_csp=True)
    context.set_default_timeout(WAIT_MS)
    context.on("request", lambda request: requested.append(request.url))
    return context


def _login(context: BrowserContext, host: DashboardHost, user: str) -> Page:
    page = context.new_page()
    page.goto(f"{host.base}/ui")
    assert page.url == f"{host.base}/ui/login"
    page.fill("#token", host.tokens[user])
    page.click("button[type=submit]")
    page.wait_for_url(f"{host.base}/ui")
    page.wait_for_function("window.sophiaDashboard && window.sophiaDashboard.opens > 0")
    return page


@pytest.fixture(scope="module")
def admin_page(browser: Browser, host: DashboardHost, requested: list[str]) -> Iterator[Page]:
    """One admin's page for the module: it stays open across tests, as a dashboard does."""
    context = _context(browser, requested)
    try:
        yield _login(context, host, "ada")
    finally:
        context.close()


def _last_seq(host: DashboardHost) -> int:
    log = AuditLog(home=host.process.home)
    try:
        return log.last_seq()
    finally:
        log.close()


def _caught_up(page: Page, host: DashboardHost, mcp: httpx.Client) -> None:
    """Wait (bounded) until the page has every record the log holds now."""
    page.wait_for_function(f"window.sophiaDashboard.lastSeq >= {_last_seq(host)}")


def test_the_page_loads_after_login_and_shows_the_servers(admin_page: Page) -> None:
    assert admin_page.locator("#who").inner_text().endswith("admin")
    admin_page.wait_for_selector("#servers-body tr[data-server=demo]")
    for panel in ("servers", "tools", "calls", "approvals", "audit", "figures", "runs"):
        assert admin_page.locator(f"#{panel}").count() == 1, panel


def test_a_call_through_the_host_appears_on_the_page(admin_page: Page, host: DashboardHost,
                                                     mcp: httpx.Client) -> None:
    before = admin_page.evaluate("window.sophiaDashboard.lastSeq")
    assert error_of(host.call(mcp, "dev", "demo_echo", {"text": "hello"})) is None
    row = admin_page.locator("#calls-body tr[data-tool=demo_echo][data-user=dev]").first
    row.wait_for()
    assert int(row.get_attribute("data-seq") or 0) > before
    assert row.get_attribute("data-outcome") == "ok"


def test_the_call_filters_show_only_what_matches(admin_page: Page, host: DashboardHost, mcp: httpx.Client) -> None:
    host.call(mcp, "dev", "demo_fail", {"code": "not_found"})
    host.call(mcp, "dev", "demo_echo", {"text": "not this one"})
    admin_page.locator("#calls-body tr[data-tool=demo_fail]").first.wait_for()
    admin_page.fill("#f-tool", "demo_fail")
    admin_page.select_option("#f-outcome", "error")
    rows = admin_page.locator("#calls-body tr")
    assert rows.count() >= 1
    assert set(rows.evaluate_all("rows => rows.map(r => r.dataset.tool + ' ' + r.dataset.outcome)")) == {
        "demo_fail error"}
    admin_page.fill("#f-tool", "")
    admin_page.select_option("#f-outcome", "")
    admin_page.locator("#calls-body tr[data-tool=demo_echo]").first.wait_for()


def test_forced_reconnects_lose_no_event(admin_page: Page, host: DashboardHost, mcp: httpx.Client) -> None:
    opens = admin_page.evaluate("window.sophiaDashboard.opens")
    for round_ in range(5):
        for i in range(10):
            host.call(mcp, "dev", "demo_echo", {"text": f"r{round_}-{i}"})
        admin_page.evaluate("window.sophiaDashboard.reconnect()")
    # The host ends each stream after 2 s: the browser's own reconnect (Last-Event-ID) comes too.
    admin_page.wait_for_function(f"window.sophiaDashboard.opens >= {opens + 6}")
    host.call(mcp, "dev", "demo_echo", {"text": "last"})
    _caught_up(admin_page, host, mcp)
    seen = admin_page.evaluate("[window.sophiaDashboard.lost, window.sophiaDashboard.duplicates]")
    assert seen == [0, 0]


def test_a_viewer_sees_and_uses_no_admin_panel(browser: Browser, host: DashboardHost, requested: list[str]) -> None:
    context = _context(browser, requested)
    try:
        page = _login(context, host, "vic")
        assert page.locator("#approvals").count() == 0
        assert page.locator("#audit").count() == 0
        page.wait_for_selector("#servers-body tr[data-server=demo]")
        statuses = page.evaluate("""async () => {
            const post = {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"};
            return [(await fetch("/ui/api/approvals")).status, (await fetch("/ui/api/audit")).status,
                    (await fetch("/ui/api/approvals/abcdefgh/approve", post)).status,
                    (await fetch("/ui/api/audit/verify", post)).status];
        }""")
        assert statuses == [403, 403, 403, 403]
    finally:
        context.close()


def _pending(host: DashboardHost, mcp: httpx.Client, item: str) -> str:
    error = error_of(host.call(mcp, "dev", "demo_delete", {"item": item}))
    assert error is not None and error["code"] == "approval_required", error
    approval_id: str = error["data"]["approval_id"]
    return approval_id


def _runs_of_delete(host: DashboardHost) -> int:
    log = AuditLog(home=host.process.home)
    try:
        return sum(1 for r in log.records() if r["server"] == "demo" and r["tool"] == "demo_delete"
                   and r["outcome"] == "ok")
    finally:
        log.close()


def test_approving_runs_the_call_once_and_denying_never(admin_page: Page, host: DashboardHost,
                                                        mcp: httpx.Client) -> None:
    ran = _runs_of_delete(host)
    approval = _pending(host, mcp, "one")
    admin_page.click(f"#approvals-body tr[data-approval='{approval}'] button.approve")
    admin_page.wait_for_selector(f"#approvals-body tr[data-approval='{approval}']", state="detached")
    done = host.call(mcp, "dev", "demo_delete", {"item": "one"})
    assert error_of(done) is None and "deleted one" in done["content"][0]["text"]
    again = error_of(host.call(mcp, "dev", "demo_delete", {"item": "one"}))
    assert again is not None and again["code"] == "approval_required" and again["data"]["approval_id"] != approval
    assert _runs_of_delete(host) == ran + 1

    denied = _pending(host, mcp, "two")
    admin_page.click(f"#approvals-body tr[data-approval='{denied}'] button.deny")
    admin_page.wait_for_selector(f"#approvals-body tr[data-approval='{denied}']", state="detached")
    refused = error_of(host.call(mcp, "dev", "demo_delete", {"item": "two"}))
    assert refused is not None and refused["code"] == "forbidden"
    assert _runs_of_delete(host) == ran + 1


def test_no_token_in_any_url_the_pages_requested(admin_page: Page, host: DashboardHost,
                                                 requested: list[str]) -> None:
    admin_page.wait_for_selector("#servers-body tr[data-server=demo]")
    assert any("/ui/events" in url for url in requested) and any("/ui/api/" in url for url in requested)
    for token in host.tokens.values():
        assert not any(token in url for url in requested)
        assert token not in admin_page.content()
    assert not any(token in Path(log).read_text(errors="replace")
                   for log in host.process.home.glob("host/logs/*.log") for token in host.tokens.values())
    assert not any(token in line for line in host.process.log for token in host.tokens.values())


# -- the same host over plain HTTP (httpx): the operators' endpoints, Last-Event-ID, refusals ---------------


def _bearer(host: DashboardHost, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {host.tokens[user]}"}


def test_operators_endpoints(host: DashboardHost, mcp: httpx.Client) -> None:
    assert mcp.get(f"{host.base}/healthz").json() == {"status": "ok"}
    for path in ("/readyz", "/metrics", "/ui/api/servers"):
        assert mcp.get(f"{host.base}{path}").status_code == 401, path
    ready = mcp.get(f"{host.base}/readyz", headers=_bearer(host, "vic"))
    assert ready.status_code == 200 and ready.json()["servers"] == {"demo": "ready"}
    before = _last_seq(host)
    host.call(mcp, "dev", "demo_echo", {"text": "counted"})
    host.call(mcp, "dev", "demo_fail", {"code": "not_found"})
    # The figures come from the records the feed reads back: once the stream carries the host's record, so do they.
    _stream_until(host, mcp, before, lambda r: r["server"] == "sophia" and r["tool"] == "demo_fail")
    text = mcp.get(f"{host.base}/metrics", headers=_bearer(host, "vic")).text
    assert 'sophia_call_errors_total{code="not_found",tool="demo_fail"}' in text
    assert 'sophia_calls_total{outcome="ok",tool="demo_echo"}' in text
    assert 'sophia_call_duration_seconds_bucket{le="0.001",tool="demo_echo"}' in text
    assert 'sophia_server_up{server="demo"} 1.0' in text


def _stream_until(host: DashboardHost, mcp: httpx.Client, after: int, wanted: Callable[[dict[str, Any]], bool]) -> None:
    with mcp.stream("GET", f"{host.base}/ui/events?after={after}", headers=_bearer(host, "vic")) as response:
        for line in response.iter_lines():
            if line.startswith("data: [") and any(wanted(r) for r in json.loads(line[6:])):
                return
    raise AssertionError("the stream ended without the record")


def _stream_seqs(host: DashboardHost, mcp: httpx.Client, headers: dict[str, str], upto: int) -> list[int]:
    seqs: list[int] = []
    with mcp.stream("GET", f"{host.base}/ui/events", headers={**_bearer(host, "vic"), **headers}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: ["):
                seqs += [r["seq"] for r in json.loads(line[6:])]
                if seqs[-1] >= upto:
                    break
    return seqs


def test_last_event_id_replays_exactly_what_was_missed(host: DashboardHost, mcp: httpx.Client) -> None:
    host.call(mcp, "dev", "demo_echo", {"text": "before"})
    missed_from = _last_seq(host)
    for i in range(5):
        host.call(mcp, "dev", "demo_echo", {"text": f"missed {i}"})
    head = _last_seq(host)
    assert _stream_seqs(host, mcp, {"Last-Event-ID": str(missed_from)}, head)[: head - missed_from] == list(
        range(missed_from + 1, head + 1))
    # Last-Event-ID (the browser's reconnect) wins over the first connection's ?after=.
    with mcp.stream("GET", f"{host.base}/ui/events?after=0",
                    headers={**_bearer(host, "vic"), "Last-Event-ID": str(head - 1)}) as response:
        first = next(line for line in response.iter_lines() if line.startswith("data: ["))
    assert json.loads(first[6:])[0]["seq"] == head


def test_refusals_at_the_dashboard_edge(host: DashboardHost, mcp: httpx.Client) -> None:
    bad = mcp.post(f"{host.base}/ui/login", data={"token": "sph_not-a-token"}, headers={"Origin": host.base})
    assert bad.status_code == 401 and "set-cookie" not in bad.headers and "sph_not-a-token" not in bad.text
    assert mcp.get(f"{host.base}/ui/login", headers={"Host": "evil.example"}).status_code == 421
    with httpx.Client(timeout=30.0) as browser_like:
        made = browser_like.post(f"{host.base}/ui/login", data={"token": host.tokens["ada"]},
                                 headers={"Origin": host.base})
        assert made.status_code == 303
        cookie = made.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and host.tokens["ada"] not in cookie
        assert browser_like.get(f"{host.base}/ui/api/approvals").status_code == 200
        post = f"{host.base}/ui/api/approvals/abcdefgh/approve"
        assert browser_like.post(post, json={}).status_code == 403  # the cookie without an Origin
        assert browser_like.post(post, json={}, headers={"Origin": "http://127.0.0.1:1"}).status_code == 403
        missing = browser_like.post(post, json={}, headers={"Origin": host.base})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        browser_like.post(f"{host.base}/ui/logout", headers={"Origin": host.base})
        assert browser_like.get(f"{host.base}/ui/api/approvals").status_code == 401
