"""Incremental sync of calls and transcripts into the offline cache.

Each run scans [watermark - overlap, now) with a filter frozen for the whole scan (late-processed
calls land inside the overlap; known ones are skipped by id), one page of call details at a time
plus one transcript batch for the page's new calls. Progress is saved after every page, so a run
stopped by the daily budget resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import anyio
from pydantic import BaseModel
from sophia_shared.errors import Conflict, LimitExceeded

from .cache import CallCache
from .client import CursorRejected, GongClient, GongPage, gong_home, write_private

# What a synced call needs: parties (speaker names), the brief, key points, topics, CRM account.
DETAILS_SELECTOR: dict[str, Any] = {
    "context": "Extended",
    "exposedFields": {
        "parties": True,
        "content": {"brief": True, "keyPoints": True, "topics": True, "trackers": True, "callOutcome": True},
        "interaction": {"speakers": True},
    },
}
# A page costs one details request and at most one transcript request.
REQUESTS_PER_PAGE = 2

Progress = Callable[[float, float | None, str], Awaitable[None]]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class Scan(BaseModel):
    """A scan in progress: its frozen window and where it stopped."""

    from_dt: str
    to_dt: str
    workspace_id: str | None = None
    cursor: str | None = None
    pages_done: int = 0
    calls_seen: int = 0
    calls_new: int = 0
    chunks_written: int = 0
    total: int | None = None
    started_at: str


class SyncState(BaseModel):
    """Per tenant: the watermark of the last complete scan, and a scan to resume."""

    watermark: str | None = None
    last_completed_at: str | None = None
    calls_indexed: int = 0
    scan: Scan | None = None


@dataclass(frozen=True)
class Fetched:
    """One page of call details and the transcripts of its calls not cached yet."""

    page: GongPage
    ids: list[str]
    new_ids: list[str]
    transcripts: dict[str, Any]


class SyncReport(BaseModel):
    """What one gong_sync run did."""

    status: Literal["complete", "paused"]
    reason: str | None = None
    window_from: str
    window_to: str
    calls_seen: int
    calls_new: int
    chunks_written: int
    pages: int
    requests_used: int
    budget_remaining: int
    watermark: str | None
    resumed: bool


class SyncStore:
    """Sync state files under SOPHIA_HOME/gong/sync, one per tenant."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or gong_home() / "sync"

    def path(self, tenant: str) -> Path:
        digest = hashlib.sha256(tenant.encode()).hexdigest()[:24]
        return self.root / f"{digest}.json"

    def load(self, tenant: str) -> SyncState:
        try:
            return SyncState.model_validate_json(self.path(tenant).read_text())
        except (OSError, ValueError):
            return SyncState()

    def save(self, tenant: str, state: SyncState) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(self.path(tenant), state.model_dump())

    @contextlib.contextmanager
    def exclusive(self, tenant: str) -> Any:
        """One sync per tenant at a time, across processes."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path(tenant).with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Conflict("a Gong sync for this user is already running; wait for it to finish") from None
            yield
        finally:
            os.close(fd)


async def _collect(fetch: Callable[[str], Awaitable[Any]], cursor: str, into: list[Any]) -> None:
    into.append(await fetch(cursor))


async def run_sync(
    client: GongClient,
    cache: CallCache,
    store: SyncStore,
    tenant: str,
    *,
    since: datetime | None,
    workspace_id: str | None,
    max_pages: int | None,
    max_batch: int,
    max_seconds: float | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> SyncReport:
    """Run (or resume) one sync for `tenant`; stops cleanly before the daily budget runs out."""
    with store.exclusive(tenant):
        state = store.load(tenant)
        resumed = state.scan is not None
        if state.scan is None or since is not None:
            end = (now or datetime.now(UTC)).replace(microsecond=0)
            if since is not None:
                start = since
            elif state.watermark:
                start = datetime.fromisoformat(state.watermark.replace("Z", "+00:00")) - timedelta(
                    hours=client.settings.sync_overlap_hours
                )
            else:
                start = end - timedelta(days=client.settings.sync_initial_days)
            state.scan = Scan(from_dt=iso(start), to_dt=iso(end), workspace_id=workspace_id, started_at=iso(end))
            resumed = False
        scan = state.scan
        requests_before = client.stats.requests
        run_started = time.monotonic()
        pages = 0
        restarted = False
        reason: str | None = None
        known = await cache.cached_ids(tenant)

        def stop_reason(pages_done: int, *, timed: bool) -> str | None:
            """Why no further page may be fetched now (None: go on)."""
            blocked = client.budget.blocked_for()
            if blocked > 0:
                return f"Gong asked for no requests for {blocked / 60:.0f} min; run gong_sync again then to resume"
            reserve = client.settings.sync_budget_reserve
            if client.budget.remaining() < REQUESTS_PER_PAGE + reserve:
                return (
                    f"daily Gong budget nearly spent ({client.budget.remaining()} left of "
                    f"{client.budget.limit}, {reserve} kept for other tools); run gong_sync again after "
                    "00:00 UTC to resume"
                )
            if max_pages is not None and pages_done >= max_pages:
                return f"stopped after {max_pages} pages as asked; run gong_sync again to continue"
            if timed and pages_done and max_seconds is not None and time.monotonic() - run_started >= max_seconds:
                # Indexing is CPU-bound: a long backfill is cut into calls a client will not time out.
                return f"stopped after {max_seconds:g} s as asked; run gong_sync again to continue"
            return None

        async def fetch(cursor: str | None) -> Fetched | CursorRejected | LimitExceeded:
            call_filter: dict[str, Any] = {"fromDateTime": scan.from_dt, "toDateTime": scan.to_dt}
            if scan.workspace_id:
                call_filter["workspaceId"] = scan.workspace_id
            try:
                page = await client.calls_extensive_page(call_filter, DETAILS_SELECTOR, cursor)
                ids = [str(c["metaData"]["id"]) for c in page.items if (c.get("metaData") or {}).get("id")]
                new_ids = [i for i in dict.fromkeys(ids) if i not in known]
                transcripts = await client.transcripts(new_ids) if new_ids else {}
            except (CursorRejected, LimitExceeded) as exc:
                return exc
            return Fetched(page, ids, new_ids, transcripts)

        fetched: Fetched | CursorRejected | LimitExceeded | None = None
        while True:
            if fetched is None:
                reason = stop_reason(pages, timed=True)
                if reason is not None:
                    break
                fetched = await fetch(scan.cursor)
            if isinstance(fetched, CursorRejected):
                if restarted:
                    raise fetched
                # The saved cursor expired: rescan the same frozen window; known calls are skipped.
                restarted = True
                scan.cursor = None
                fetched = None
                continue
            if isinstance(fetched, LimitExceeded):
                reason = fetched.message
                break
            page = fetched.page
            new_ids = [i for i in fetched.new_ids if i not in known]
            details = {str(c["metaData"]["id"]): c for c in page.items if (c.get("metaData") or {}).get("id")}
            batch = [(details[i], fetched.transcripts.get(i, [])) for i in new_ids if i in details]
            # The next page is fetched while this one is indexed (Gong's rate limit and the model
            # overlap); a page once fetched is always indexed, so no request is wasted.
            following: list[Fetched | CursorRejected | LimitExceeded] = []
            async with anyio.create_task_group() as group:
                if page.cursor is not None and stop_reason(pages + 1, timed=True) is None:
                    group.start_soon(_collect, fetch, page.cursor, following)
                written = await cache.put_calls(tenant, batch, max_batch)
            known.update(new_ids)
            pages += 1
            scan.pages_done += 1
            scan.calls_seen += len(fetched.ids)
            scan.calls_new += len(new_ids)
            scan.chunks_written += written
            scan.total = page.total
            scan.cursor = page.cursor
            state.calls_indexed += len(new_ids)
            if page.cursor is None:
                state.watermark = scan.to_dt
                state.last_completed_at = iso(datetime.now(UTC))
                state.scan = None
                store.save(tenant, state)
                break
            store.save(tenant, state)
            if progress is not None:
                await progress(scan.calls_seen, float(page.total), f"{scan.calls_seen}/{page.total} calls scanned")
            fetched = following[0] if following else None
        if reason is not None:
            store.save(tenant, state)
        elif progress is not None:
            await progress(scan.calls_seen, float(scan.total or scan.calls_seen), "sync complete")
        return SyncReport(
            status="paused" if reason else "complete",
            reason=reason,
            window_from=scan.from_dt,
            window_to=scan.to_dt,
            calls_seen=scan.calls_seen,
            calls_new=scan.calls_new,
            chunks_written=scan.chunks_written,
            pages=pages,
            requests_used=client.stats.requests - requests_before,
            budget_remaining=client.budget.remaining(),
            watermark=state.watermark,
            resumed=resumed,
        )
