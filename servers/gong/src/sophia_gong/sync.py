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


Next = Fetched | CursorRejected | LimitExceeded


def _open_scan(
    state: SyncState, client: GongClient, *, since: datetime | None, workspace_id: str | None, now: datetime | None
) -> tuple[Scan, bool]:
    """The scan to run, and whether it is resumed: the saved one unless `since` asks for a new one."""
    if state.scan is not None and since is None:
        return state.scan, True
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
    return state.scan, False


@dataclass
class _Run:
    """One run of a sync: the scan it advances and the limits it stops at."""

    client: GongClient
    cache: CallCache
    store: SyncStore
    tenant: str
    state: SyncState
    scan: Scan
    known: set[str]
    max_pages: int | None
    max_batch: int
    max_seconds: float | None
    progress: Progress | None
    requests_before: int
    started: float
    pages: int = 0

    def stop_reason(self, pages_done: int) -> str | None:
        """Why no further page may be fetched now (None: go on)."""
        budget = self.client.budget
        blocked = budget.blocked_for()
        if blocked > 0:
            return f"Gong asked for no requests for {blocked / 60:.0f} min; run gong_sync again then to resume"
        reserve = self.client.settings.sync_budget_reserve
        if budget.remaining() < REQUESTS_PER_PAGE + reserve:
            return (
                f"daily Gong budget nearly spent ({budget.remaining()} left of "
                f"{budget.limit}, {reserve} kept for other tools); run gong_sync again after "
                "00:00 UTC to resume"
            )
        if self.max_pages is not None and pages_done >= self.max_pages:
            return f"stopped after {self.max_pages} pages as asked; run gong_sync again to continue"
        elapsed = time.monotonic() - self.started
        if pages_done and self.max_seconds is not None and elapsed >= self.max_seconds:
            # Indexing is CPU-bound: a long backfill is cut into calls a client will not time out.
            return f"stopped after {self.max_seconds:g} s as asked; run gong_sync again to continue"
        return None

    async def fetch(self, cursor: str | None) -> Next:
        """One page of call details and its new calls' transcripts; a refusal as a value, not raised."""
        call_filter: dict[str, Any] = {"fromDateTime": self.scan.from_dt, "toDateTime": self.scan.to_dt}
        if self.scan.workspace_id:
            call_filter["workspaceId"] = self.scan.workspace_id
        try:
            page = await self.client.calls_extensive_page(call_filter, DETAILS_SELECTOR, cursor)
            ids = [str(c["metaData"]["id"]) for c in page.items if (c.get("metaData") or {}).get("id")]
            new_ids = [i for i in dict.fromkeys(ids) if i not in self.known]
            transcripts = await self.client.transcripts(new_ids) if new_ids else {}
        except (CursorRejected, LimitExceeded) as exc:
            return exc
        return Fetched(page, ids, new_ids, transcripts)

    async def advance(self) -> str | None:
        """Fetch and index pages until the scan completes (None) or has to stop (why)."""
        fetched: Next | None = None
        restarted = False
        while True:
            if fetched is None:
                reason = self.stop_reason(self.pages)
                if reason is not None:
                    return reason
                fetched = await self.fetch(self.scan.cursor)
            if isinstance(fetched, CursorRejected):
                if restarted:
                    raise fetched
                # The saved cursor expired: rescan the same frozen window; known calls are skipped.
                restarted = True
                self.scan.cursor = None
                fetched = None
                continue
            if isinstance(fetched, LimitExceeded):
                return fetched.message
            new_ids, written, following = await self.index(fetched)
            if await self.record(fetched, new_ids, written):
                return None
            fetched = following

    async def index(self, fetched: Fetched) -> tuple[list[str], int, Next | None]:
        """Index the page's new calls: (their ids, chunks written, the next page if it was fetched meanwhile)."""
        page = fetched.page
        new_ids = [i for i in fetched.new_ids if i not in self.known]
        details = {str(c["metaData"]["id"]): c for c in page.items if (c.get("metaData") or {}).get("id")}
        batch = [(details[i], fetched.transcripts.get(i, [])) for i in new_ids if i in details]
        # The next page is fetched while this one is indexed (Gong's rate limit and the model
        # overlap); a page once fetched is always indexed, so no request is wasted.
        following: list[Next] = []
        async with anyio.create_task_group() as group:
            if page.cursor is not None and self.stop_reason(self.pages + 1) is None:
                group.start_soon(_collect, self.fetch, page.cursor, following)
            written = await self.cache.put_calls(self.tenant, batch, self.max_batch)
        self.known.update(new_ids)
        return new_ids, written, following[0] if following else None

    async def record(self, fetched: Fetched, new_ids: list[str], written: int) -> bool:
        """Count an indexed page and save the progress; whether it was the scan's last page."""
        page, scan, state = fetched.page, self.scan, self.state
        self.pages += 1
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
            self.store.save(self.tenant, state)
            return True
        self.store.save(self.tenant, state)
        if self.progress is not None:
            await self.progress(scan.calls_seen, float(page.total), f"{scan.calls_seen}/{page.total} calls scanned")
        return False

    def report(self, reason: str | None, *, resumed: bool) -> SyncReport:
        return SyncReport(
            status="paused" if reason else "complete",
            reason=reason,
            window_from=self.scan.from_dt,
            window_to=self.scan.to_dt,
            calls_seen=self.scan.calls_seen,
            calls_new=self.scan.calls_new,
            chunks_written=self.scan.chunks_written,
            pages=self.pages,
            requests_used=self.client.stats.requests - self.requests_before,
            budget_remaining=self.client.budget.remaining(),
            watermark=self.state.watermark,
            resumed=resumed,
        )


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
        scan, resumed = _open_scan(state, client, since=since, workspace_id=workspace_id, now=now)
        requests_before, started = client.stats.requests, time.monotonic()
        known = await cache.cached_ids(tenant)
        run = _Run(
            client,
            cache,
            store,
            tenant,
            state,
            scan,
            known,
            max_pages=max_pages,
            max_batch=max_batch,
            max_seconds=max_seconds,
            progress=progress,
            requests_before=requests_before,
            started=started,
        )
        reason = await run.advance()
        if reason is not None:
            store.save(tenant, state)
        elif progress is not None:
            await progress(scan.calls_seen, float(scan.total or scan.calls_seen), "sync complete")
        return run.report(reason, resumed=resumed)
