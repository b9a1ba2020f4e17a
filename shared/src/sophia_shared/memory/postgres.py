# ruff: noqa: S608  -- SQL here is assembled from constant fragments and %s placeholders only;
# every value is bound, never formatted in.
"""The PostgreSQL backend: psycopg 3 + psycopg_pool, pgvector (HNSW, cosine) and tsvector full text.

The vector column gets its dimension (and its HNSW index) with the first write, because the
dimension is the embedder's; `reembed` rebuilds both for a new model.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal

from ..redact import redact
from . import Embedder, Memory, MemoryFilter
from .core import NewRow, Store, Vector, Written
from .errors import ModelMismatch, StoreUnavailable
from .merge import Existing, write_batch
from .retrieval import VectorHit
from .settings import MemorySettings
from .validate import CursorKey

MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            "CREATE EXTENSION IF NOT EXISTS vector",
            "CREATE TABLE memory_meta (key text PRIMARY KEY, value text NOT NULL)",
            """
            CREATE TABLE memories (
                rid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id text NOT NULL UNIQUE,
                tenant text NOT NULL,
                namespace text NOT NULL,
                text text NOT NULL,
                tags text[] NOT NULL DEFAULT '{}',
                source text,
                source_ref text,
                importance real NOT NULL,
                created_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL,
                expires_at timestamptz,
                embedding_model text NOT NULL,
                embedding vector NOT NULL,
                tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED
            )
            """,
            "CREATE INDEX memories_tenant_created ON memories (tenant, created_at DESC, id DESC)",
            "CREATE INDEX memories_tenant_namespace ON memories (tenant, namespace)",
            "CREATE INDEX memories_tenant_source_ref ON memories (tenant, source_ref) WHERE source_ref IS NOT NULL",
            "CREATE INDEX memories_tags ON memories USING gin (tags)",
            "CREATE INDEX memories_tsv ON memories USING gin (tsv)",
        ],
    ),
    # The vector is of text[embed_from:] (e.g. a Gong turn without its header lines).
    (2, ["ALTER TABLE memories ADD COLUMN IF NOT EXISTS embed_from integer NOT NULL DEFAULT 0"]),
]

TEXT_MATCH_LIMIT = 2_000
# Up to this many memories in the table, vector search is exact (a sequential scan of 20,000 x 384
# floats is a few ms); beyond it, HNSW (approximate: bench/memory reports its recall).
EXACT_SEARCH_ROWS = 20_000
# A query word in more than this share of all memories is dropped from the text query.
COMMON_TERM_SHARE = 0.05
MIN_COMMON_DOCS = 200

_COLUMNS = (
    "id, tenant, namespace, text, tags, source, source_ref, importance, created_at, updated_at, "
    "expires_at, embedding_model"
)


def _vector(value: Vector) -> str:
    return "[" + ",".join(f"{x:.8g}" for x in value.tolist()) + "]"


def _memory(row: Sequence[Any]) -> Memory:
    return Memory(
        id=row[0],
        tenant=row[1],
        namespace=row[2],
        text=row[3],
        tags=list(row[4]),
        source=row[5],
        source_ref=row[6],
        importance=row[7],
        created_at=row[8],
        updated_at=row[9],
        expires_at=row[10],
        embedding_model=row[11],
    )


def _where(tenant: str, flt: MemoryFilter, now: datetime, alias: str = "") -> tuple[str, list[Any]]:
    """The WHERE clause every query uses: the tenant first, always, then the filter."""
    p = f"{alias}." if alias else ""
    clauses = [f"{p}tenant = %s"]
    params: list[Any] = [tenant]
    if flt.namespaces:
        clauses.append(f"{p}namespace = ANY(%s)")
        params.append(list(flt.namespaces))
    if flt.tags_any:
        clauses.append(f"{p}tags && %s::text[]")
        params.append(list(flt.tags_any))
    if flt.tags_all:
        clauses.append(f"{p}tags @> %s::text[]")
        params.append(list(flt.tags_all))
    if flt.source is not None:
        clauses.append(f"{p}source = %s")
        params.append(flt.source)
    if flt.source_ref is not None:
        clauses.append(f"{p}source_ref = %s")
        params.append(flt.source_ref)
    if flt.created_after is not None:
        clauses.append(f"{p}created_at > %s")
        params.append(flt.created_after)
    if flt.created_before is not None:
        clauses.append(f"{p}created_at < %s")
        params.append(flt.created_before)
    if not flt.include_expired:
        clauses.append(f"({p}expires_at IS NULL OR {p}expires_at > %s)")
        params.append(now)
    return " AND ".join(clauses), params


class _BatchWriter:
    """`write_batch`'s statements in one PostgreSQL transaction."""

    def __init__(self, conn: Any, tenant: str, model: str, now: datetime, *, copy: bool):
        self._conn = conn
        self._tenant = tenant
        self._model = model
        self._now = now
        # Without dedupe no row is searched for, so inserts wait for one COPY at the end.
        self._copy = copy
        self._held: list[tuple[Any, ...]] = []
        # The nearest search reads what a merge keeps of the row, so the merge need not read it again.
        self._found: tuple[str, Existing] | None = None
        # A row's vector as pgvector text, kept from the search for the write that follows it.
        self._text: tuple[Vector, str] | None = None

    def _vector(self, row: NewRow) -> str:
        if self._text is None or self._text[0] is not row.embedding:
            self._text = (row.embedding, _vector(row.embedding))
        return self._text[1]

    def nearest(self, row: NewRow) -> tuple[str, float] | None:
        vec = self._vector(row)
        found = self._conn.execute(
            "SELECT id, 1 - (embedding <=> %s::vector) AS sim, tags, importance, source, source_ref FROM memories "
            "WHERE tenant = %s AND namespace = %s AND (expires_at IS NULL OR expires_at > %s) "
            "AND embedding_model = %s ORDER BY embedding <=> %s::vector LIMIT 1",
            (vec, self._tenant, row.namespace, self._now, self._model, vec),
        ).fetchone()
        if found is None:
            return None
        self._found = (found[0], Existing(list(found[2]), found[3], found[4], found[5]))
        return found[0], float(found[1])

    def existing(self, key: str) -> Existing:
        assert self._found is not None and self._found[0] == key, "existing() follows nearest() of the same row"
        return self._found[1]

    def overwrite(self, key: str, row: NewRow) -> Memory:
        stored = self._conn.execute(
            "UPDATE memories SET text = %s, tags = %s, importance = %s, source = %s, source_ref = %s, "
            "expires_at = %s, updated_at = %s, embed_from = %s, embedding_model = %s, embedding = %s::vector "
            f"WHERE tenant = %s AND id = %s RETURNING {_COLUMNS}",
            (
                row.text,
                row.tags,
                row.importance,
                row.source,
                row.source_ref,
                row.expires_at,
                self._now,
                row.embed_from,
                self._model,
                self._vector(row),
                self._tenant,
                key,
            ),
        ).fetchone()
        return _memory(stored)

    def insert(self, row: NewRow) -> None:
        values = (
            row.id,
            self._tenant,
            row.namespace,
            row.text,
            row.tags,
            row.source,
            row.source_ref,
            row.importance,
            self._now,
            self._now,
            row.expires_at,
            self._model,
            self._vector(row),
            row.embed_from,
        )
        if self._copy:
            self._held.append(values)
            return
        # Inserted at once: a later row of the same batch may be its near-duplicate.
        self._conn.execute(
            f"INSERT INTO memories ({_COLUMNS}, embedding, embed_from) "
            "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s::vector,%s)",
            values,
        )

    def copy_held(self) -> None:
        """Load the held inserts with one COPY: batches (a sync, a reindex) load an order of
        magnitude faster than with INSERTs."""
        if not self._held:
            return
        copy_sql = f"COPY memories ({_COLUMNS}, embedding, embed_from) FROM STDIN"
        with self._conn.cursor() as cur, cur.copy(copy_sql) as copy:
            for values in self._held:
                copy.write_row(values)


class PostgresBackend:
    name: Literal["sqlite", "postgres"] = "postgres"

    def __init__(self, dsn: str, *, min_size: int, max_size: int, ef_search: int, timeout_s: float = 10.0):
        from ..postgres_driver import import_psycopg

        psycopg = import_psycopg("SOPHIA_MEMORY_DSN")
        from psycopg_pool import ConnectionPool, PoolTimeout

        self._ef_search = ef_search
        self._model: tuple[str, int] | None = None
        self._pool = ConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            open=False,
            timeout=timeout_s,
            kwargs={"connect_timeout": 10},
            name="sophia-memory",
            # A connection broken by a database restart is replaced before it is handed out, so the
            # first calls after the restart work instead of failing once per pooled connection.
            check=self._check,
            # A reconnect attempt gives up after 1 s instead of backing off for minutes, so once the
            # database is back the next call opens a connection at once.
            reconnect_timeout=1.0,
        )
        try:
            self._pool.open(wait=True, timeout=15)
        except (PoolTimeout, psycopg.OperationalError) as exc:
            self._pool.close()
            raise StoreUnavailable(
                f"cannot connect to the memory database {redact(dsn)}: check SOPHIA_MEMORY_DSN",
                detail=str(exc),
            ) from exc

    def _check(self, conn: Any) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        try:
            ConnectionPool.check_connection(conn)
        except psycopg.OperationalError:
            # One dropped connection means the server went away: discard every idle one now, rather
            # than meet them one by one with the pool's back-off sleep between each.
            self._pool.check()
            raise

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            with self._pool.connection() as conn, conn.transaction():
                yield conn
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise StoreUnavailable("the memory database cannot be reached", detail=str(exc)) from exc

    @contextmanager
    def _vector_tx(self) -> Iterator[Any]:
        """`_tx` for a query that compares vectors with the store's."""
        import psycopg

        try:
            with self._tx() as conn:
                yield conn
        except psycopg.errors.DataException as exc:
            # Another process re-embedded the store to another dimension since we cached its model.
            self._model = None
            raise ModelMismatch(
                "the store's vectors changed dimension (it was re-embedded): restart with the store's model",
                detail=str(exc),
            ) from exc

    def migrate(self) -> int:
        with self._tx() as conn:
            # One migrator at a time across processes; the lock ends with the transaction.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('sophia_memory_migrations'))")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS memory_schema_migrations "
                "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM memory_schema_migrations")}
            for version, statements in MIGRATIONS:
                if version in done:
                    continue
                for statement in statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO memory_schema_migrations (version) VALUES (%s)", (version,))
        return max(v for v, _ in MIGRATIONS)

    def model(self) -> tuple[str, int] | None:
        if self._model is None:
            with self._tx() as conn:
                self._model = self._read_model(conn)
        return self._model

    @staticmethod
    def _read_model(conn: Any) -> tuple[str, int] | None:
        rows = dict(
            conn.execute("SELECT key, value FROM memory_meta WHERE key IN ('embedding_model', 'dimensions')").fetchall()
        )
        return (rows["embedding_model"], int(rows["dimensions"])) if rows else None

    def _ensure_model(self, conn: Any, model: str, dims: int) -> None:
        """Refuse vectors of another model; the first write fixes the column's dimension and index."""
        stored = self._read_model(conn)
        if stored is None:
            # Only the very first write takes this lock; later writes just read the meta row.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('sophia_memory_model'))")
            stored = self._read_model(conn)
        if stored is None:
            conn.execute(f"ALTER TABLE memories ALTER COLUMN embedding TYPE vector({int(dims)})")
            conn.execute(
                "CREATE INDEX IF NOT EXISTS memories_embedding ON memories "
                "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
            )
            conn.execute(
                "INSERT INTO memory_meta VALUES ('embedding_model', %s), ('dimensions', %s)", (model, str(dims))
            )
        elif stored != (model, dims):
            self._model = stored
            raise ModelMismatch(
                f"this store holds vectors of {stored[0]} but the embedder is {model}: run `sophia memory reembed`"
            )
        self._model = (model, dims)

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
        with self._tx() as conn:
            self._ensure_model(conn, model, dims)
            for namespace, ref in replace_refs:
                conn.execute(
                    "DELETE FROM memories WHERE tenant = %s AND namespace = %s AND source_ref = %s",
                    (tenant, namespace, ref),
                )
            if dedupe_threshold is not None:
                self._set_search(conn)
            writer = _BatchWriter(conn, tenant, model, now, copy=dedupe_threshold is None)
            out = write_batch(writer, rows, tenant=tenant, model=model, at=now, dedupe_threshold=dedupe_threshold)
            writer.copy_held()
        return out

    def get(self, tenant: str, memory_id: str) -> Memory | None:
        with self._tx() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM memories WHERE tenant = %s AND id = %s", (tenant, memory_id)
            ).fetchone()
        return _memory(row) if row else None

    def fetch(self, tenant: str, ids: Sequence[str]) -> dict[str, Memory]:
        with self._tx() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM memories WHERE tenant = %s AND id = ANY(%s)", (tenant, list(ids))
            ).fetchall()
        return {row[0]: _memory(row) for row in rows}

    def list(
        self, tenant: str, flt: MemoryFilter, limit: int, after: CursorKey | None, now: datetime
    ) -> builtins.list[Memory]:
        where, params = _where(tenant, flt, now)
        if after is not None:
            where += " AND (created_at, id) < (%s, %s)"
            params += [after.created_at, after.memory_id]
        with self._tx() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM memories WHERE {where} ORDER BY created_at DESC, id DESC LIMIT %s",
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
        allowed = ("text", "tags", "source", "source_ref", "importance", "expires_at")
        sets = ["updated_at = %s"]
        params: list[Any] = [now]
        for name, value in changes.items():
            if name not in allowed:
                raise ValueError(f"not an updatable column: {name}")
            sets.append(f"{name} = %s")
            params.append(value)
        if "text" in changes:
            sets.append("embed_from = 0")  # a new text is embedded whole
        with self._tx() as conn:
            if embedding is not None:
                self._ensure_model(conn, model, dims)
                sets += ["embedding = %s::vector", "embedding_model = %s"]
                params += [_vector(embedding), model]
            row = conn.execute(
                f"UPDATE memories SET {', '.join(sets)} WHERE tenant = %s AND id = %s RETURNING {_COLUMNS}",
                (*params, tenant, memory_id),
            ).fetchone()
        return _memory(row) if row else None

    def delete(self, tenant: str, memory_id: str) -> bool:
        with self._tx() as conn:
            cur = conn.execute("DELETE FROM memories WHERE tenant = %s AND id = %s", (tenant, memory_id))
            return bool(cur.rowcount > 0)

    def forget(self, tenant: str, flt: MemoryFilter, now: datetime) -> int:
        where, params = _where(tenant, flt, now)
        with self._tx() as conn:
            return int(conn.execute(f"DELETE FROM memories WHERE {where}", params).rowcount)

    def _set_search(self, conn: Any) -> None:
        # Iterative scans keep filtered HNSW queries (tenant, namespace...) from returning too few rows.
        conn.execute(f"SET LOCAL hnsw.ef_search = {int(self._ef_search)}")
        conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")

    def vector_search(
        self, tenant: str, vector: Vector, flt: MemoryFilter, n: int, now: datetime
    ) -> builtins.list[VectorHit]:
        # Only vectors of the store's model: while `reembed` runs, rows of two models coexist.
        stored = (self.model() or ("", 0))[0]

        where, params = _where(tenant, flt, now)
        vec = _vector(vector)
        with self._vector_tx() as conn:
            self._set_search(conn)
            if self._small(conn):
                # Exact: HNSW can lose a few isolated memories among thousands of similar ones
                # (six facts beside 10,000 clustered notes: the right fact was unreachable).
                conn.execute("SET LOCAL enable_indexscan = off")
            rows = conn.execute(
                f"SELECT id, 1 - (embedding <=> %s::vector) FROM memories WHERE {where} "
                "AND embedding_model = %s ORDER BY embedding <=> %s::vector LIMIT %s",
                (vec, *params, stored, vec, n),
            ).fetchall()
        hits = [VectorHit(row[0], float(row[1])) for row in rows]
        hits.sort(key=lambda hit: -hit.similarity)  # relaxed order: re-sort exactly
        return hits

    @staticmethod
    def _small(conn: Any) -> bool:
        """Whether the table is small enough to search exactly (planner's estimate, else a bounded count)."""
        estimate = conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'memories'::regclass").fetchone()[0]
        if estimate is None or estimate < 0:  # never analysed yet
            estimate = conn.execute(
                f"SELECT count(*) FROM (SELECT 1 FROM memories LIMIT {EXACT_SEARCH_ROWS}) AS bounded"
            ).fetchone()[0]
        return bool(estimate < EXACT_SEARCH_ROWS)

    def similarities(self, tenant: str, vector: Vector, ids: Sequence[str]) -> dict[str, float]:
        # Only vectors of the store's model: while `reembed` runs, rows of two models coexist.
        stored = (self.model() or ("", 0))[0]

        with self._vector_tx() as conn:
            rows = conn.execute(
                "SELECT id, 1 - (embedding <=> %s::vector) FROM memories "
                "WHERE tenant = %s AND id = ANY(%s) AND embedding_model = %s",
                (_vector(vector), tenant, list(ids), stored),
            ).fetchall()
        return {row[0]: float(row[1]) for row in rows}

    def text_search(
        self, tenant: str, terms: Sequence[str], flt: MemoryFilter, n: int, now: datetime, *, required: bool
    ) -> tuple[builtins.list[str], builtins.list[str]]:
        where, params = _where(tenant, flt, now)
        with self._tx() as conn:
            kept = self._informative(conn, terms, required=required)
            if not kept:
                return [], []
            query = " | ".join(kept)
            # Ranking is bounded to TEXT_MATCH_LIMIT matches as a backstop: a query of only common
            # words would otherwise rank every row of the tenant.
            rows = conn.execute(
                "SELECT id FROM (SELECT id, tsv, q FROM memories, to_tsquery('english', %s) AS q "
                f"WHERE tsv @@ q AND {where} LIMIT {TEXT_MATCH_LIMIT}) AS matched "
                "ORDER BY ts_rank_cd(tsv, q) DESC, id LIMIT %s",
                (query, *params, n),
            ).fetchall()
        return [row[0] for row in rows], kept

    @staticmethod
    def _informative(conn: Any, terms: Sequence[str], *, required: bool) -> builtins.list[str]:
        """The query's informative words: those in more than COMMON_TERM_SHARE of all memories (and
        in more than MIN_COMMON_DOCS) add little to the rank but match nearly everything. When every
        word is common: nothing, or, if text search is `required`, the two rarest.

        Frequencies come from the planner's statistics (ANALYZE's most common lexemes of `tsv`),
        so this costs two catalogue reads; before the first ANALYZE every word is kept.
        """
        stats = conn.execute(
            "SELECT s.most_common_elems::text::text[], s.most_common_elem_freqs, c.reltuples "
            "FROM pg_stats s JOIN pg_class c ON c.oid = 'memories'::regclass "
            "WHERE s.schemaname = current_schema() AND s.tablename = 'memories' AND s.attname = 'tsv'"
        ).fetchone()
        if stats is None or stats[0] is None:
            return list(terms)
        share = dict(zip(stats[0], stats[1], strict=False))
        lexemes = dict(
            conn.execute(
                "SELECT term, tsvector_to_array(to_tsvector('english', term)) FROM unnest(%s::text[]) AS term",
                (list(terms),),
            ).fetchall()
        )
        # Stop words have no lexeme: they can never match, so they are no candidates either.
        frequency = {term: max(share.get(lex, 0.0) for lex in lexemes[term]) for term in terms if lexemes.get(term)}
        terms = list(frequency)
        limit = max(COMMON_TERM_SHARE, MIN_COMMON_DOCS / max(float(stats[2]), 1.0))
        kept = [term for term in terms if frequency[term] <= limit]
        if kept or not required:
            return kept
        return sorted(terms, key=lambda term: frequency[term])[:2]

    def stats(self, tenant: str, now: datetime) -> dict[str, Any]:
        with self._tx() as conn:
            total, expired, oldest, newest = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE expires_at IS NOT NULL AND expires_at <= %s), "
                "min(created_at), max(created_at) FROM memories WHERE tenant = %s",
                (now, tenant),
            ).fetchone()
            by_namespace = dict(
                conn.execute(
                    "SELECT namespace, count(*) FROM memories WHERE tenant = %s GROUP BY namespace "
                    "ORDER BY count(*) DESC LIMIT 100",
                    (tenant,),
                ).fetchall()
            )
            by_source = dict(
                conn.execute(
                    "SELECT coalesce(source, '(none)'), count(*) FROM memories WHERE tenant = %s GROUP BY source "
                    "ORDER BY count(*) DESC LIMIT 100",
                    (tenant,),
                ).fetchall()
            )
        return {
            "total": total,
            "expired": expired,
            "by_namespace": by_namespace,
            "by_source": by_source,
            "oldest": oldest,
            "newest": newest,
        }

    def tenants(self) -> builtins.list[str]:
        with self._tx() as conn:
            return [row[0] for row in conn.execute("SELECT DISTINCT tenant FROM memories ORDER BY tenant")]

    def reembed(self, embed: Callable[[builtins.list[str]], Vector], model: str, dims: int, batch_size: int) -> int:
        """Re-embed every row not yet of `model`, one committed batch at a time: a stopped run
        resumes where it stopped. Until the last batch the store keeps serving its old model."""
        with self._tx() as conn:
            stored = self._read_model(conn)
            if stored is not None and stored[1] != dims:
                # Two dimensions in one column until the switch: unconstrained, and no HNSW index.
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('sophia_memory_model'))")
                conn.execute("DROP INDEX IF EXISTS memories_embedding")
                conn.execute("ALTER TABLE memories ALTER COLUMN embedding TYPE vector")
        count = 0
        while True:
            with self._tx() as conn:
                rows = conn.execute(
                    "SELECT rid, text, embed_from FROM memories WHERE embedding_model <> %s ORDER BY rid LIMIT %s",
                    (model, batch_size),
                ).fetchall()
            if not rows:
                with self._tx() as conn:
                    conn.execute("SELECT pg_advisory_xact_lock(hashtext('sophia_memory_model'))")
                    conn.execute("LOCK TABLE memories IN SHARE ROW EXCLUSIVE MODE")
                    # A write of the old model may have landed since the last batch: go round again.
                    if conn.execute("SELECT 1 FROM memories WHERE embedding_model <> %s LIMIT 1", (model,)).fetchone():
                        continue
                    if (self._read_model(conn) or ("", 0))[1] != dims:
                        conn.execute("DROP INDEX IF EXISTS memories_embedding")
                    conn.execute("DELETE FROM memory_meta WHERE key IN ('embedding_model', 'dimensions')")
                    self._ensure_model(conn, model, dims)
                return count
            vectors = embed([text[start:] for _, text, start in rows])  # outside any transaction: others go on
            if vectors.shape[1] != dims:
                raise ModelMismatch(f"{model} returned {vectors.shape[1]} dimensions, expected {dims}")
            with self._tx() as conn, conn.cursor() as cur:
                # `text = %s`: a row edited meanwhile keeps its new text's vector and is picked up again.
                cur.executemany(
                    "UPDATE memories SET embedding = %s::vector, embedding_model = %s WHERE rid = %s AND text = %s",
                    [(_vector(v), model, rid, text) for (rid, text, _), v in zip(rows, vectors, strict=True)],
                )
                count += max(0, cur.rowcount)

    def pending(self, model: str) -> tuple[int, int]:
        """(rows already of `model`, rows not yet): how far a re-embedding to `model` has come."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE embedding_model = %s), count(*) FILTER (WHERE embedding_model <> %s) "
                "FROM memories",
                (model, model),
            ).fetchone()
        return int(row[0]), int(row[1])

    def close(self) -> None:
        self._pool.close()


class PostgresStore(Store):
    """The PostgreSQL + pgvector store at the settings' DSN."""

    @classmethod
    async def open(cls, settings: MemorySettings, embedder: Embedder, *, migrate: bool = True) -> PostgresStore:
        import anyio.to_thread

        assert settings.dsn is not None
        dsn = settings.dsn.get_secret_value()

        def build() -> PostgresBackend:
            backend = PostgresBackend(
                dsn,
                min_size=settings.pool_min_size,
                max_size=settings.pool_max_size,
                ef_search=settings.hnsw_ef_search,
                timeout_s=settings.pool_timeout_s,
            )
            if migrate:
                import psycopg

                try:
                    backend.migrate()
                except psycopg.Error as exc:
                    backend.close()
                    raise StoreUnavailable(
                        "cannot prepare the memory schema in PostgreSQL (it needs the pgvector extension, "
                        "which a superuser can add with CREATE EXTENSION vector)",
                        detail=str(exc),
                    ) from exc
                except BaseException:
                    backend.close()
                    raise
            return backend

        backend = await anyio.to_thread.run_sync(build)
        return cls(settings, embedder, backend)
