"""The offline cache: synced calls in the shared memory store (namespace `gong`, source_ref = call id),
one memory per call summary and one per speaker turn, so search costs no Gong requests."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import anyio
from sophia_shared.redact import sanitize_untrusted

if TYPE_CHECKING:
    from sophia_shared.memory import MemoryInput, MemoryStore

NAMESPACE = "gong"
SOURCE = "gong"
MAX_TURN_CHARS = 4_000
_TAG_UNSAFE = re.compile(r"[\x00-\x1f\x7f,]+")


def clean(text: object, limit: int = 2_000) -> str:
    """Upstream text made safe to store and show: no control/bidi characters, one line, capped."""
    flat = " ".join(sanitize_untrusted(str(text or "")).split())
    return flat[:limit]


def _tag(prefix: str, value: str) -> str:
    return (prefix + _TAG_UNSAFE.sub(" ", value).strip())[:64]


def clock(ms: int) -> str:
    """Milliseconds from the call's start as h:mm:ss or m:ss."""
    seconds = max(0, ms) // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass(frozen=True)
class Speaker:
    name: str
    affiliation: str
    title: str
    company: str


def speakers_of(details: dict[str, Any]) -> dict[str, Speaker]:
    """Parties by speakerId: the join key between call details and transcript monologues."""
    account = account_of(details)
    joined: dict[str, Speaker] = {}
    for party in details.get("parties") or []:
        if not isinstance(party, dict) or not party.get("speakerId"):
            continue
        affiliation = clean(party.get("affiliation") or "Unknown", 20)
        email = str(party.get("emailAddress") or "")
        company = account if affiliation == "External" and account else ""
        if not company and affiliation == "External" and "@" in email:
            company = email.rsplit("@", 1)[1]
        joined[str(party["speakerId"])] = Speaker(
            name=clean(party.get("name") or email or "Unknown speaker", 120),
            affiliation=affiliation,
            title=clean(party.get("title"), 120),
            company=clean(company, 120),
        )
    return joined


def account_of(details: dict[str, Any]) -> str:
    """The CRM account name attached to the call, when Gong has one."""
    for system in details.get("context") or []:
        for obj in (system or {}).get("objects") or []:
            if isinstance(obj, dict) and obj.get("objectType") == "Account":
                for item in obj.get("fields") or []:
                    if isinstance(item, dict) and item.get("name") == "Name" and item.get("value"):
                        return clean(item["value"], 120)
    return ""


def call_day(meta: dict[str, Any]) -> str:
    return str(meta.get("started") or meta.get("scheduled") or "")[:10]


def call_items(details: dict[str, Any], monologues: Sequence[dict[str, Any]]) -> list[MemoryInput]:
    """The memories of one call: a summary, then one per speaker turn (header lines, blank line, text).

    Tags carry what a hit shows besides the text (kind, title, day, affiliation, offset, turn)."""
    from sophia_shared.memory import MemoryInput

    meta = details.get("metaData") or {}
    call_id = str(meta.get("id"))
    title = clean(meta.get("title") or "Untitled call", 200)
    day = call_day(meta)
    account = account_of(details)
    base_tags = ["kind:summary", _tag("title:", title), _tag("day:", day), _tag("month:", day[:7])]
    if account:
        base_tags.append(_tag("account:", account.lower()))
    speakers = speakers_of(details)
    content = details.get("content") or {}
    people = "; ".join(
        f"{s.name} ({', '.join(p for p in (s.affiliation, s.title, s.company) if p)})" for s in speakers.values()
    )
    summary_lines = [
        f"Gong call: {title}",
        f"Date: {day}",
        f"Account: {account or 'unknown'}",
        "",
        f"Participants: {people or 'unknown'}",
        f"Brief: {clean(content.get('brief'), 2000)}",
        "Key points: " + "; ".join(clean(k.get("text"), 300) for k in content.get("keyPoints") or []),
        "Topics: " + ", ".join(clean(t.get("name"), 60) for t in content.get("topics") or []),
    ]
    items = [
        MemoryInput(
            text="\n".join(summary_lines), namespace=NAMESPACE, source=SOURCE, source_ref=call_id, tags=base_tags
        )
    ]
    for index, monologue in enumerate(monologues):
        sentences = [s for s in monologue.get("sentences") or [] if isinstance(s, dict)]
        text = clean(" ".join(str(s.get("text") or "") for s in sentences), MAX_TURN_CHARS)
        if not text:
            continue
        who = speakers.get(str(monologue.get("speakerId")), Speaker("Unknown speaker", "Unknown", "", ""))
        start = int(sentences[0].get("start") or 0) if sentences else 0
        role = ", ".join(p for p in (who.affiliation, who.title, who.company) if p)
        # The call title stays out of a turn's text: its topic words would rank every turn of a
        # "Pricing & Security" call as pricing. Who spoke, for which account, and when, stay in.
        lines = [
            f"Speaker: {who.name} ({role})",
            f"Call with: {account or who.company or 'unknown account'}, {day} at {clock(start)}",
            "",
            text,
        ]
        tags = [
            "kind:turn",
            _tag("title:", title),
            _tag("day:", day),
            _tag("month:", day[:7]),
            _tag("affiliation:", who.affiliation.lower()),
            _tag("at:", str(start)),
            _tag("turn:", str(index)),
        ]
        if account:
            tags.append(_tag("account:", account.lower()))
        turn = "\n".join(lines)
        # The vector is of what was said only: the header lines are more than half a turn's tokens
        # (embedding is most of a sync's time) and full-text search still finds who, whom and when.
        items.append(
            MemoryInput(
                text=turn,
                namespace=NAMESPACE,
                source=SOURCE,
                source_ref=call_id,
                tags=tags,
                embed_from=len(turn) - len(text),
            )
        )
    return items


@dataclass(frozen=True)
class CacheHit:
    call_id: str
    call_title: str
    date: str
    kind: str
    speaker: str
    affiliation: str
    at: str
    text: str
    score: float


def _parse_hit(text: str, tags: Sequence[str], call_id: str, score: float) -> CacheHit:
    header, _, body = text.partition("\n\n")
    fields: dict[str, str] = {}
    for line in header.splitlines():
        key, _, value = line.partition(": ")
        fields[key] = value
    tag_map = dict(t.split(":", 1) for t in tags if ":" in t)
    speaker_line = fields.get("Speaker", "")
    speaker = speaker_line.split(" (", 1)[0] if speaker_line else ""
    at_ms = tag_map.get("at", "")
    return CacheHit(
        call_id=call_id,
        call_title=fields.get("Gong call") or tag_map.get("title", ""),
        date=tag_map.get("day", ""),
        kind=tag_map.get("kind", "turn"),
        speaker=speaker,
        affiliation=tag_map.get("affiliation", ""),
        at=clock(int(at_ms)) if at_ms.isdigit() else "",
        text=body,
        score=round(score, 4),
    )


def _days(start: date, end: date) -> list[str]:
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


class CallCache:
    """Gong calls in the memory store, scoped to a tenant like every memory."""

    def __init__(self, opener: Callable[[], Awaitable[MemoryStore]]) -> None:
        self._opener = opener
        self._store: MemoryStore | None = None
        self._opening = anyio.Lock()

    async def store(self) -> MemoryStore:
        async with self._opening:
            if self._store is None:
                self._store = await self._opener()
            return self._store

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()
            self._store = None

    async def cached_ids(self, tenant: str) -> set[str]:
        """Every call id whose summary is in the tenant's cache (one listing, not one query per id)."""
        from sophia_shared.memory import MemoryFilter

        store = await self.store()
        found: set[str] = set()
        flt = MemoryFilter(namespaces=[NAMESPACE], tags_all=["kind:summary"])
        cursor: str | None = None
        while True:
            page = await store.list(tenant, flt, limit=200, cursor=cursor)
            found.update(m.source_ref for m in page.items if m.source_ref)
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    async def put_calls(
        self, tenant: str, calls: Sequence[tuple[dict[str, Any], Sequence[dict[str, Any]]]], max_batch: int
    ) -> int:
        """Write calls (details, monologues); a re-synced call's memories replace its old ones."""
        store = await self.store()
        written = 0
        batch: list[MemoryInput] = []
        for details, monologues in calls:
            items = call_items(details, monologues)
            if batch and len(batch) + len(items) > max_batch:
                written += len(await store.put_many(tenant, batch, replace_source_ref=True))
                batch = []
            # A call larger than a whole batch keeps only as many turns as fit.
            batch.extend(items[:max_batch])
        if batch:
            written += len(await store.put_many(tenant, batch, replace_source_ref=True))
        return written

    async def search(
        self,
        tenant: str,
        query: str,
        *,
        k: int,
        call_id: str | None = None,
        affiliation: str | None = None,
        speaker: str | None = None,
        from_day: date | None = None,
        to_day: date | None = None,
    ) -> list[CacheHit]:
        """Hybrid search over the tenant's synced calls, best first."""
        from sophia_shared.memory import MemoryFilter

        store = await self.store()
        tags_all = [f"affiliation:{affiliation.lower()}"] if affiliation else None
        tags_any: list[str] | None = None
        if from_day or to_day:
            start = from_day or date(2000, 1, 1)
            end = to_day or date(2100, 1, 1)
            days = _days(start, end) if (end - start).days < 32 else []
            if days:
                tags_any = [f"day:{d}" for d in days]
            else:
                months = sorted({d[:7] for d in _days(start, min(end, start + timedelta(days=366 * 3)))})
                tags_any = [f"month:{m}" for m in months][:32]
        flt = MemoryFilter(namespaces=[NAMESPACE], source_ref=call_id, tags_all=tags_all, tags_any=tags_any)
        # Post-filters (speaker, exact days) need a deeper candidate list than the answer.
        depth = k * 4 if (speaker or from_day or to_day) else k
        hits = await store.search(tenant, query, flt, k=min(depth, 50))
        results: list[CacheHit] = []
        for hit in hits:
            parsed = _parse_hit(hit.memory.text, hit.memory.tags, hit.memory.source_ref or "", hit.score)
            if speaker and speaker.lower() not in parsed.speaker.lower():
                continue
            if from_day and parsed.date < from_day.isoformat():
                continue
            if to_day and parsed.date > to_day.isoformat():
                continue
            results.append(parsed)
            if len(results) >= k:
                break
        return results

    async def chunk_count(self, tenant: str) -> int:
        stats = await (await self.store()).stats(tenant)
        return int(stats.by_namespace.get(NAMESPACE, 0))
