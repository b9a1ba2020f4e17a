"""What watches the host during the bench: one logged-in page in chromium, and plain SSE clients."""

from __future__ import annotations

from typing import Any

import httpx
from fixtures.dashboard_host import DashboardHost

VIEWPORT = {"width": 1400, "height": 1000}


async def browse(browser: Any, host: DashboardHost) -> Any:
    """A page logged in on /ui as the watcher (admin), its stream open."""
    context = await browser.new_context(viewport=VIEWPORT, bypass_csp=True)  # bypass: for wait_for_function only
    page = await context.new_page()
    await page.goto(f"{host.base}/ui")
    await page.fill("#token", host.tokens["watcher"])
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{host.base}/ui")
    await page.wait_for_function("window.sophiaDashboard && window.sophiaDashboard.opens > 0", timeout=60_000)
    return page


async def sse_client(host: DashboardHost, results: list[dict[str, Any]]) -> None:
    """One plain SSE client (bearer token) reading the feed until cancelled; reconnects after the host ends a stream."""
    seen: dict[str, Any] = {"events": 0, "bytes": 0, "last_id": 0}
    results.append(seen)
    headers = {"Authorization": f"Bearer {host.tokens['watcher']}"}
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0)) as client:
        while True:
            if seen["last_id"]:
                headers["Last-Event-ID"] = str(seen["last_id"])
            async with client.stream("GET", f"{host.base}/ui/events", headers=headers) as response:
                async for line in response.aiter_lines():
                    seen["bytes"] += len(line) + 1
                    if line.startswith("id: "):
                        seen["events"] += 1
                        seen["last_id"] = int(line[4:])
