# ruff: noqa: S608  -- SQL here is assembled from constant fragments and "?" placeholders only;
# every value is bound, never formatted in.
"""The embedded backend: one SQLite file (WAL, synchronous=FULL), FTS5 for text, sqlite-vec for vectors.

Vectors are float32 BLOBs on the memory row, so a write is one row in one transaction; FTS5 is kept
in step by triggers inside the same transaction. Vector search is exact: sqlite-vec's
`vec_distance_cosine` over the tenant's filtered rows for small tenants and selective filters, and
for large tenants an in-process index of their vectors (`VectorIndex`), kept coherent with the file
by a per-tenant version that every write bumps: our own writes update the index in place, anyone
else's make the next search reload it.
"""

from __future__ import annotations

import builtins
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np

from . import Embedder, Memory, MemoryFilter
from .core import Backend, NewRow, Store, Vector, Written
from .errors import ModelMismatch, StoreUnavailable
from .merge import Existing, write_batch
from .retrieval import VectorHit, fts5_query
from .settings import MemorySettings
from .validate import CursorKey
from .vector_index import VectorIndex

# A change to a tenant's vectors: ("upsert" | "remove", rid, namespace, expires_us, vector).
Delta = tuple[str, int, str | None, float, Vector | None]

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE memories (
            rid INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            tenant TEXT NOT NULL,
            namespace TEXT NOT NULL,
            text TEXT NOT NULL,
            tags TEXT NOT NULL DEFAULT '[]',
            source TEXT,
            source_ref TEXT,
            importance REAL NOT NULL,
            created_us INTEGER NOT NULL,
            updated_us INTEGER NOT NULL,
            expires_us INTEGER,
            embedding_model TEXT NOT NULL,
            embedding BLOB NOT NULL
        );
        CREATE INDEX memories_tenant_created ON memories (tenant, created_us DESC, id DESC);
        CREATE INDEX memories_tenant_namespace ON memories (tenant, namespace);
        CREATE INDEX memories_tenant_source_ref ON memories (tenant, source_ref) WHERE source_ref IS NOT NULL;
        CREATE VIRTUAL TABLE memories_fts USING fts5(
            text, content='memories', content_rowid='rid', tokenize='unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
            INSERT INTO memories_fts (rowid, text) VALUES (new.rid, new.text);
        END;
        CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN
            INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.rid, old.text);
        END;
        CREATE TRIGGER memories_au AFTER UPDATE OF text ON memories BEGIN
            INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.rid, old.text);
            INSERT INTO memories_fts (rowid, text) VALUES (new.rid, new.text);
        END;
        -- Bumped by every write of a tenant, so an in-process vector cache knows when it is stale.
        CREATE TABLE tenant_versions (tenant TEXT PRIMARY KEY, version INTEGER NOT NULL);
        """,
    ),
    (
        2,
        """
        -- Document frequency per term, to drop near-universal query words before ranking.
        CREATE VIRTUAL TABLE memories_fts_vocab USING fts5vocab(memories_fts, 'row');
        """,
    ),
    (
        3,
        """
        -- The vector is of text[embed_from:] (e.g. a Gong turn without its header lines).
        ALTER TABLE memories ADD COLUMN embed_from INTEGER NOT NULL DEFAULT 0;
        """,
    ),
]

# A query word in more than this share of all memories says little and costs a full ranking pass.
COMMON_TERM_SHARE = 0.05
MIN_COMMON_DOCS = 200

_COLUMNS = (
    "id, tenant, namespace, text, tags, source, source_ref, importance, created_us, updated_us, "
    "expires_us, embedding_model"
)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Vector queries compare only vectors of the store's model: while `reembed` runs, rows of the
# old and the new model coexist (and may differ in dimension).
_STORE_MODEL = "(SELECT value FROM store_meta WHERE key = 'embedding_model')"


def _us(value: datetime) -> int:
    # Integer microseconds: exact, so cursors and equality comparisons never drift.
    return (value - _EPOCH) // timedelta(microseconds=1)


def _dt(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _memory(row: Sequence[Any]) -> Memory:
    return Memory(
        id=row[0],
        tenant=row[1],
        namespace=row[2],
        text=row[3],
        tags=json.loads(row[4]),
        source=row[5],
        source_ref=row[6],
        importance=row[7],
        created_at=_dt(row[8]),
        updated_at=_dt(row[9]),
        expires_at=_dt(row[10]) if row[10] is not None else None,
        embedding_model=row[11],
    )


def _where(tenant: str, flt: MemoryFilter, now: datetime) -> tuple[str, list[Any]]:
    """The WHERE clause every query uses: the tenant first, always, then the filter."""
    clauses = ["tenant = ?"]
    params: list[Any] = [tenant]
    if flt.namespaces:
        clauses.append(f"namespace IN ({','.join('?' * len(flt.namespaces))})")
        params.extend(flt.namespaces)
    if flt.tags_any:
        clauses.append(f"EXISTS (SELECT 1 FROM json_each(tags) WHERE value IN ({','.join('?' * len(flt.tags_any))}))")
        params.extend(flt.tags_any)
    for tag in flt.tags_all or []:
        clauses.append("EXISTS (SELECT 1 FROM json_each(tags) WHERE value = ?)")
        params.append(tag)
    if flt.source is not None:
        clauses.append("source = ?")
        params.append(flt.source)
    if flt.source_ref is not None:
        clauses.append("source_ref = ?")
        params.append(flt.source_ref)
    if flt.created_after is not None:
        clauses.append("created_us > ?")
        params.append(_us(flt.created_after))
    if flt.created_before is not None:
        clauses.append("created_us < ?")
        params.append(_us(flt.created_before))
    if not flt.include_expired:
        clauses.append("(expires_us IS NULL OR expires_us > ?)")
        params.append(_us(now))
    return " AND ".join(clauses), params


def connect(path: Path) -> Any:
    """A sqlite connection with sqlite-vec loaded, WAL, and full fsync on commit."""
    import sqlean
    import sqlite_vec

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlean.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before it is acknowledged (kill -9 and power loss alike).
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
    except (OSError, sqlean.Error) as exc:
        raise StoreUnavailable(f"cannot open the memory database {path}", detail=str(exc)) from exc
    return conn


def migrate(conn: Any) -> int:
    """Apply pending migrations, each in its own transaction; the schema version after."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_us INTEGER)")
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    for version, script in MIGRATIONS:
        if version in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-checked under the write lock: another process may have migrated meanwhile.
            if conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)).fetchone():
                conn.execute("ROLLBACK")
                continue
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, _us(datetime.now(UTC))))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return max((v for v, _ in MIGRATIONS), default=0)


def _statements(script: str) -> Iterator[str]:
    """Split a migration into statements; trigger bodies hold semicolons, so split on complete ones."""
    import sqlean

    buffer = ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        buffer += line
        if sqlean.complete_statement(buffer):
            if buffer.strip():
                yield buffer.strip()
            buffer = ""
    if buffer.strip():
        yield buffer.strip()


class _BatchWriter:
    """`write_batch`'s statements in one SQLite write transaction; keeps the tenant's index deltas."""

    def __init__(self, conn: Any, tenant: str, model: str, stamp: int, index: VectorIndex | None):
        self._conn = conn
        self._tenant = tenant
        self._model = model
        self._stamp = stamp
        self._index = index
        # This batch's rows: the index does not hold them until the commit.
        self._batch: list[tuple[int, str, Vector]] = []
        self.deltas: list[Delta] = []

    def nearest(self, row: NewRow) -> tuple[int, float] | None:
        vector = row.embedding.astype(np.float32)
        if self._index is None:
            found = self._conn.execute(
                "SELECT rid, 1.0 - vec_distance_cosine(embedding, ?) AS sim FROM memories "
                "WHERE tenant = ? AND namespace = ? AND (expires_us IS NULL OR expires_us > ?) "
                f"AND embedding_model = {_STORE_MODEL} ORDER BY sim DESC LIMIT 1",
                (vector.tobytes(), self._tenant, row.namespace, self._stamp),
            ).fetchone()
            return (int(found[0]), float(found[1])) if found else None
        hits = self._index.search(vector, 1, now=float(self._stamp), namespaces=[row.namespace], include_expired=False)
        best = hits[0] if hits else None
        for rid, namespace, other in self._batch:
            similarity = float(other @ vector)
            if namespace == row.namespace and (best is None or similarity > best[1]):
                best = (rid, similarity)
        return best

    def existing(self, key: int) -> Existing:
        tags, importance, source, source_ref = self._conn.execute(
            "SELECT tags, importance, source, source_ref FROM memories WHERE rid = ?", (key,)
        ).fetchone()
        return Existing(json.loads(tags), importance, source, source_ref)

    def overwrite(self, key: int, row: NewRow) -> Memory:
        vector = row.embedding.astype(np.float32)
        stored = self._conn.execute(
            "UPDATE memories SET text = ?, tags = ?, importance = ?, source = ?, source_ref = ?, expires_us = ?, "
            f"updated_us = ?, embed_from = ?, embedding_model = ?, embedding = ? WHERE rid = ? RETURNING {_COLUMNS}",
            (
                row.text,
                json.dumps(row.tags),
                row.importance,
                row.source,
                row.source_ref,
                _us(row.expires_at) if row.expires_at else None,
                self._stamp,
                row.embed_from,
                self._model,
                vector.tobytes(),
                key,
            ),
        ).fetchone()
        self.deltas.append(("upsert", key, row.namespace, _expires(row.expires_at), vector))
        self._batch = [(r, ns, vector if r == key else v) for r, ns, v in self._batch]
        return _memory(stored)

    def insert(self, row: NewRow) -> None:
        vector = row.embedding.astype(np.float32)
        rid = self._conn.execute(
            f"INSERT INTO memories ({_COLUMNS}, embedding, embed_from) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                row.id,
                self._tenant,
                row.namespace,
                row.text,
                json.dumps(row.tags),
                row.source,
                row.source_ref,
                row.importance,
                self._stamp,
                self._stamp,
                _us(row.expires_at) if row.expires_at else None,
                self._model,
                vector.tobytes(),
                row.embed_from,
            ),
        ).lastrowid
        self.deltas.append(("upsert", rid, row.namespace, _expires(row.expires_at), vector))
        self._batch.append((rid, row.namespace, vector))


def _expires(at: datetime | None) -> float:
    """An expiry as the index keeps it: microseconds, or infinity for never."""
    return float(_us(at)) if at else np.inf


class SqliteBackend:
    name: Literal["sqlite", "postgres"] = "sqlite"

    def __init__(self, path: Path, *, index_min_rows: int = 2_000, index_max_tenants: int = 4):
        self.path = path
        self._conn = connect(path)
        self._lock = threading.RLock()
        self._indexes: dict[str, VectorIndex] = {}
        self._index_min_rows = index_min_rows
        self._index_max_tenants = index_max_tenants

    @contextmanager
    def _write(self) -> Iterator[Any]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[Any]:
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    def migrate(self) -> int:
        with self._lock:
            return migrate(self._conn)

    def model(self) -> tuple[str, int] | None:
        with self._lock:
            rows = dict(
                self._conn.execute(
                    "SELECT key, value FROM store_meta WHERE key IN ('embedding_model', 'dimensions')"
                ).fetchall()
            )
        if "embedding_model" not in rows:
            return None
        return rows["embedding_model"], int(rows["dimensions"])

    @staticmethod
    def _ensure_model(conn: Any, model: str, dims: int) -> None:
        rows = dict(
            conn.execute("SELECT key, value FROM store_meta WHERE key IN ('embedding_model', 'dimensions')").fetchall()
        )
        if not rows:
            conn.execute("INSERT INTO store_meta VALUES ('embedding_model', ?), ('dimensions', ?)", (model, str(dims)))
        elif (rows["embedding_model"], int(rows["dimensions"])) != (model, dims):
            raise ModelMismatch(
                f"this store holds vectors of {rows['embedding_model']} but the embedder is {model}: "
                "run `sophia memory reembed`"
            )

    @staticmethod
    def _version(conn: Any, tenant: str) -> int:
        row = conn.execute("SELECT version FROM tenant_versions WHERE tenant = ?", (tenant,)).fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def _bump(conn: Any, tenant: str) -> int:
        """Mark the tenant changed; the new version."""
        return int(
            conn.execute(
                "INSERT INTO tenant_versions VALUES (?, 1) "
                "ON CONFLICT (tenant) DO UPDATE SET version = version + 1 RETURNING version",
                (tenant,),
            ).fetchone()[0]
        )

    def _apply(self, tenant: str, before: int, after: int, deltas: list[Delta]) -> None:
        """After a commit: update the tenant's index in place if it saw every earlier write, else drop it."""
        index = self._indexes.get(tenant)
        if index is None:
            return
        if index.version != before:
            del self._indexes[tenant]
            return
        for kind, rid, namespace, expires, vector in deltas:
            if kind == "remove":
                index.remove(rid)
            else:
                assert vector is not None and namespace is not None
                index.upsert(rid, namespace, expires, vector)
        index.version = after

    def put_batch(
        self,
        tenant: str,
        rows: Sequence[NewRow],
        *,
        model: str,
        dims: int,
        dedupe_threshold: float | None,
        replace_refs: Sequence[tuple[str, str]],
        now: datetime,
    ) -> list[Written]:
        stamp = _us(now)
        with self._write() as conn:
            self._ensure_model(conn, model, dims)
            before = self._version(conn, tenant)
            removed = self._remove_refs(conn, tenant, replace_refs)
            index = self._index_for(conn, tenant) if dedupe_threshold is not None else None
            writer = _BatchWriter(conn, tenant, model, stamp, index)
            out = write_batch(
                writer, rows, tenant=tenant, model=model, at=_dt(stamp), dedupe_threshold=dedupe_threshold
            )
            after = self._bump(conn, tenant)
        self._apply(tenant, before, after, [*removed, *writer.deltas])
        return out

    @staticmethod
    def _remove_refs(conn: Any, tenant: str, refs: Sequence[tuple[str, str]]) -> list[Delta]:
        """Delete the memories of each (namespace, source_ref); their index deltas."""
        deltas: list[Delta] = []
        for namespace, ref in refs:
            for (rid,) in conn.execute(
                "DELETE FROM memories WHERE tenant = ? AND namespace = ? AND source_ref = ? RETURNING rid",
                (tenant, namespace, ref),
            ).fetchall():
                deltas.append(("remove", rid, None, 0.0, None))
        return deltas

    def get(self, tenant: str, memory_id: str) -> Memory | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_COLUMNS} FROM memories WHERE tenant = ? AND id = ?", (tenant, memory_id)
            ).fetchone()
        return _memory(row) if row else None

    def fetch(self, tenant: str, ids: Sequence[str]) -> dict[str, Memory]:
        found: dict[str, Memory] = {}
        # "+tenant": look rows up by the unique id index; the planner would otherwise scan the tenant.
        with self._read() as conn:
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                for row in conn.execute(
                    f"SELECT {_COLUMNS} FROM memories WHERE +tenant = ? AND id IN ({','.join('?' * len(chunk))})",
                    (tenant, *chunk),
                ):
                    found[row[0]] = _memory(row)
        return found

    def list(
        self, tenant: str, flt: MemoryFilter, limit: int, after: CursorKey | None, now: datetime
    ) -> builtins.list[Memory]:
        where, params = _where(tenant, flt, now)
        if after is not None:
            where += " AND (created_us < ? OR (created_us = ? AND id < ?))"
            stamp = _us(after.created_at)
            params += [stamp, stamp, after.memory_id]
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM memories WHERE {where} ORDER BY created_us DESC, id DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [_memory(row) for row in rows]

    def update(
        self,
        tenant: str,
        memory_id: str,
        changes: dict[str, Any],
        embedding: Vector | None,
        model: str,
        dims: int,
        now: datetime,
    ) -> Memory | None:
        sets: list[str] = ["updated_us = ?"]
        params: list[Any] = [_us(now)]
        for name, value in changes.items():
            if name == "tags":
                sets.append("tags = ?")
                params.append(json.dumps(value))
            elif name == "expires_at":
                sets.append("expires_us = ?")
                params.append(_us(value) if value is not None else None)
            elif name in ("text", "source", "source_ref", "importance"):
                sets.append(f"{name} = ?")
                params.append(value)
                if name == "text":
                    sets.append("embed_from = 0")  # a new text is embedded whole
            else:
                raise ValueError(f"not an updatable column: {name}")
        with self._write() as conn:
            if embedding is not None:
                self._ensure_model(conn, model, dims)
                sets += ["embedding = ?", "embedding_model = ?"]
                params += [embedding.astype(np.float32).tobytes(), model]
            row = conn.execute(
                f"UPDATE memories SET {', '.join(sets)} WHERE tenant = ? AND id = ? "
                f"RETURNING {_COLUMNS}, rid, embedding",
                (*params, tenant, memory_id),
            ).fetchone()
            if row is None:
                return None
            before = self._version(conn, tenant)
            after = self._bump(conn, tenant)
        memory = _memory(row)
        vector = np.frombuffer(row[-1], dtype=np.float32)
        self._apply(tenant, before, after, [("upsert", row[-2], memory.namespace, _expires(memory.expires_at), vector)])
        return memory

    def delete(self, tenant: str, memory_id: str) -> bool:
        with self._write() as conn:
            row = conn.execute(
                "DELETE FROM memories WHERE tenant = ? AND id = ? RETURNING rid", (tenant, memory_id)
            ).fetchone()
            if row is None:
                return False
            before = self._version(conn, tenant)
            after = self._bump(conn, tenant)
        self._apply(tenant, before, after, [("remove", row[0], None, 0.0, None)])
        return True

    def forget(self, tenant: str, flt: MemoryFilter, now: datetime) -> int:
        where, params = _where(tenant, flt, now)
        with self._write() as conn:
            rids = [r[0] for r in conn.execute(f"DELETE FROM memories WHERE {where} RETURNING rid", params)]
            if not rids:
                return 0
            before = self._version(conn, tenant)
            after = self._bump(conn, tenant)
        self._apply(tenant, before, after, [("remove", rid, None, 0.0, None) for rid in rids])
        return len(rids)

    def _index_for(self, conn: Any, tenant: str) -> VectorIndex | None:
        """The tenant's current vector index, (re)loaded if any process wrote since; None if small."""
        version = self._version(conn, tenant)
        index = self._indexes.get(tenant)
        if index is not None and index.version == version:
            return index
        self._indexes.pop(tenant, None)
        count = conn.execute("SELECT count(*) FROM memories WHERE tenant = ?", (tenant,)).fetchone()[0]
        if count < self._index_min_rows:
            return None
        rids: list[int] = []
        namespaces: list[str] = []
        expires: list[float] = []
        blobs: list[bytes] = []
        for rid, namespace, expires_us, blob in conn.execute(
            "SELECT rid, namespace, expires_us, embedding FROM memories "
            f"WHERE tenant = ? AND embedding_model = {_STORE_MODEL}",
            (tenant,),
        ):
            rids.append(rid)
            namespaces.append(namespace)
            expires.append(float(expires_us) if expires_us is not None else np.inf)
            blobs.append(blob)
        if len(blobs) < self._index_min_rows:
            return None  # most rows are being re-embedded: exact SQL search meanwhile
        matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), -1)
        index = VectorIndex(matrix.shape[1], version, capacity=max(1024, 2 * len(rids)))
        index.add_many(rids, namespaces, expires, matrix)
        while len(self._indexes) >= self._index_max_tenants:
            self._indexes.pop(next(iter(self._indexes)))
        self._indexes[tenant] = index
        return index

    def vector_search(
        self, tenant: str, vector: Vector, flt: MemoryFilter, n: int, now: datetime
    ) -> builtins.list[VectorHit]:
        vector = vector.astype(np.float32)
        # The index knows namespace and expiry; other filters are answered exactly in SQL.
        simple = not (
            flt.tags_any
            or flt.tags_all
            or flt.source is not None
            or flt.source_ref is not None
            or flt.created_after
            or flt.created_before
        )
        with self._read() as conn:
            index = self._index_for(conn, tenant) if simple else None
            if index is not None and index.dims == vector.shape[0]:
                found = index.search(
                    vector, n, now=float(_us(now)), namespaces=flt.namespaces, include_expired=flt.include_expired
                )
                if not found:
                    return []
                ids = dict(
                    conn.execute(
                        f"SELECT rid, id FROM memories WHERE rid IN ({','.join('?' * len(found))})",
                        [rid for rid, _ in found],
                    ).fetchall()
                )
                return [VectorHit(ids[rid], similarity) for rid, similarity in found if rid in ids]
            where, params = _where(tenant, flt, now)
            rows = conn.execute(
                f"SELECT id, 1.0 - vec_distance_cosine(embedding, ?) AS sim FROM memories WHERE {where} "
                f"AND embedding_model = {_STORE_MODEL} ORDER BY sim DESC LIMIT ?",
                (vector.tobytes(), *params, n),
            ).fetchall()
        return [VectorHit(row[0], float(row[1])) for row in rows]

    def similarities(self, tenant: str, vector: Vector, ids: Sequence[str]) -> dict[str, float]:
        found: dict[str, float] = {}
        blob = vector.astype(np.float32).tobytes()
        with self._read() as conn:
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                for memory_id, similarity in conn.execute(
                    "SELECT id, 1.0 - vec_distance_cosine(embedding, ?) FROM memories "
                    f"WHERE +tenant = ? AND embedding_model = {_STORE_MODEL} "
                    f"AND id IN ({','.join('?' * len(chunk))})",
                    (blob, tenant, *chunk),
                ):
                    found[memory_id] = float(similarity)
        return found

    def text_search(
        self, tenant: str, terms: Sequence[str], flt: MemoryFilter, n: int, now: datetime, *, required: bool
    ) -> tuple[builtins.list[str], builtins.list[str]]:
        where, params = _where(tenant, flt, now)
        with self._read() as conn:
            kept = self._informative(conn, terms, required=required)
            if not kept:
                return [], []
            rows = conn.execute(
                f"SELECT m.id FROM memories_fts JOIN memories m ON m.rid = memories_fts.rowid "
                f"WHERE memories_fts MATCH ? AND {where.replace('tenant = ?', 'm.tenant = ?', 1)} "
                "ORDER BY bm25(memories_fts) LIMIT ?",
                (fts5_query(kept), *params, n),
            ).fetchall()
        return [row[0] for row in rows], kept

    @staticmethod
    def _informative(conn: Any, terms: Sequence[str], *, required: bool) -> builtins.list[str]:
        """The query's informative words: those in more than COMMON_TERM_SHARE of all memories (and
        in more than MIN_COMMON_DOCS) add little to bm25 but make it rank nearly everything. When
        every word is common: nothing, or, if text search is `required`, the two rarest."""
        total = conn.execute("SELECT max(rid) FROM memories").fetchone()[0] or 0
        frequency = dict(
            conn.execute(
                f"SELECT term, doc FROM memories_fts_vocab WHERE term IN ({','.join('?' * len(terms))})", list(terms)
            ).fetchall()
        )
        limit = max(COMMON_TERM_SHARE * total, MIN_COMMON_DOCS)
        kept = [term for term in terms if frequency.get(term, 0) <= limit]
        if kept or not required:
            return kept
        return sorted(terms, key=lambda term: frequency.get(term, 0))[:2]

    def stats(self, tenant: str, now: datetime) -> dict[str, Any]:
        stamp = _us(now)
        with self._read() as conn:
            total, expired, oldest, newest = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE expires_us IS NOT NULL AND expires_us <= ?), "
                "min(created_us), max(created_us) FROM memories WHERE tenant = ?",
                (stamp, tenant),
            ).fetchone()
            by_namespace = dict(
                conn.execute(
                    "SELECT namespace, count(*) FROM memories WHERE tenant = ? GROUP BY namespace "
                    "ORDER BY count(*) DESC LIMIT 100",
                    (tenant,),
                ).fetchall()
            )
            by_source = dict(
                conn.execute(
                    "SELECT coalesce(source, '(none)'), count(*) FROM memories WHERE tenant = ? GROUP BY source "
                    "ORDER BY count(*) DESC LIMIT 100",
                    (tenant,),
                ).fetchall()
            )
        return {
            "total": total,
            "expired": expired,
            "by_namespace": by_namespace,
            "by_source": by_source,
            "oldest": _dt(oldest) if oldest is not None else None,
            "newest": _dt(newest) if newest is not None else None,
        }

    def tenants(self) -> builtins.list[str]:
        with self._lock:
            return [row[0] for row in self._conn.execute("SELECT DISTINCT tenant FROM memories ORDER BY tenant")]

    def reembed(self, embed: Callable[[builtins.list[str]], Vector], model: str, dims: int, batch_size: int) -> int:
        """Re-embed every row not yet of `model`, one committed batch at a time: a stopped run
        resumes where it stopped. Until the last batch the store keeps serving its old model."""
        count = 0
        while True:
            with self._read() as conn:
                rows = conn.execute(
                    "SELECT rid, text, embed_from FROM memories WHERE embedding_model != ? ORDER BY rid LIMIT ?",
                    (model, batch_size),
                ).fetchall()
            if not rows:
                with self._write() as conn:
                    # A write of the old model may have landed since the last batch: go round again.
                    if conn.execute("SELECT 1 FROM memories WHERE embedding_model != ? LIMIT 1", (model,)).fetchone():
                        continue
                    conn.execute("DELETE FROM store_meta WHERE key IN ('embedding_model', 'dimensions')")
                    conn.execute(
                        "INSERT INTO store_meta VALUES ('embedding_model', ?), ('dimensions', ?)", (model, str(dims))
                    )
                    conn.execute("UPDATE tenant_versions SET version = version + 1")
                self._indexes.clear()
                return count
            vectors = embed([text[start:] for _, text, start in rows])  # outside any transaction: others go on
            if vectors.shape[1] != dims:
                raise ModelMismatch(f"{model} returned {vectors.shape[1]} dimensions, expected {dims}")
            with self._write() as conn:
                # `text = ?`: a row edited meanwhile keeps its new text's vector and is picked up again.
                done = conn.executemany(
                    "UPDATE memories SET embedding = ?, embedding_model = ? WHERE rid = ? AND text = ?",
                    [
                        (v.astype(np.float32).tobytes(), model, rid, text)
                        for (rid, text, _), v in zip(rows, vectors, strict=True)
                    ],
                ).rowcount
                conn.execute("UPDATE tenant_versions SET version = version + 1")
            count += max(0, done)

    def pending(self, model: str) -> tuple[int, int]:
        """(rows already of `model`, rows not yet): how far a re-embedding to `model` has come."""
        with self._lock:
            row = self._conn.execute(
                "SELECT count(*) FILTER (WHERE embedding_model = ?), count(*) FILTER (WHERE embedding_model != ?) "
                "FROM memories",
                (model, model),
            ).fetchone()
        return int(row[0]), int(row[1])

    def close(self) -> None:
        with self._lock:
            self._indexes.clear()
            self._conn.close()


class SqliteStore(Store):
    """The embedded store (SQLite + sqlite-vec) at the settings' path."""

    @classmethod
    async def open(cls, settings: MemorySettings, embedder: Embedder, *, migrate: bool = True) -> SqliteStore:
        import anyio.to_thread

        def build() -> SqliteBackend:
            import sqlean

            path = settings.sqlite_path()
            backend = SqliteBackend(path)
            if migrate:
                try:
                    backend.migrate()
                except sqlean.DatabaseError as exc:
                    backend.close()
                    raise StoreUnavailable(
                        f"the memory database {path} cannot be used (not a database, or damaged): "
                        "move it aside or point SOPHIA_MEMORY_DSN elsewhere",
                        detail=str(exc),
                    ) from exc
            return backend

        backend: Backend = await anyio.to_thread.run_sync(build)
        return cls(settings, embedder, backend)
