"""The only code that talks to Snowflake: connections pooled per principal, guarded sessions, pages.

snowflake-connector-python is imported lazily (inside functions) so the MCP server answers
initialize and tools/list without paying for it. Blocking connector calls run in worker
threads; the async methods here are what tools.py calls.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread
from sophia_shared.errors import (
    Conflict,
    Forbidden,
    InvalidArgument,
    LimitExceeded,
    NotFound,
    SophiaError,
    ToolTimeout,
    Unavailable,
    UpstreamError,
)
from sophia_shared.redact import redact, sanitize_untrusted

from .local import LocalWarehouse, LocalWarehouseError
from .settings import SnowflakeSettings

if TYPE_CHECKING:
    from .policy import GuardedStatement

log = logging.getLogger("sophia.snowflake")

T = TypeVar("T")

JsonValue = None | bool | int | float | str | list[Any] | dict[str, Any]

# Error numbers that mean the session is gone (expired, logged out, token invalid): the statement
# never ran, so it is safe to log in again and send it once more.
SESSION_GONE_ERRNOS = frozenset({390104, 390110, 390111, 390112, 390113, 390114, 390115, 290401})
_CANCELLED_ERRNOS = frozenset({604})
_TIMEOUT_ERRNOS = frozenset({630})
_NOT_FOUND_ERRNOS = frozenset({2003, 2043})
_SYNTAX_ERRNOS = frozenset({1003})
# "Insufficient privileges": a real account's refusal, and the local sandbox's (file access off).
_PERMISSION_ERRNOS = frozenset({3001})
_MAX_CELL_CHARS = 8_192
_GRACE_S = 10.0
_SEMI_STRUCTURED = frozenset({"VARIANT", "OBJECT", "ARRAY", "MAP"})
_FLOATS = frozenset({"REAL", "FLOAT", "DOUBLE"})
_SCALE = re.compile(r",(\d+)\)$")


@dataclass(frozen=True)
class ColumnInfo:
    """One result column: name, Snowflake type, nullability; for a numeric column, the JSON type all
    of its values on this page have ("number" or "string")."""

    name: str
    type: str
    nullable: bool | None
    json_type: str | None = None


@dataclass
class QueryPage:
    """One page of a result: rows as JSON-safe values, and whether more rows follow."""

    columns: list[ColumnInfo]
    rows: list[list[JsonValue]]
    offset: int
    has_more: bool
    cut_by_size: bool
    cells_cut: bool
    query_id: str | None
    request_id: str


@dataclass
class ExecOutcome:
    """What a write did: rows affected (when the statement reports it) and the status text."""

    kind: str
    rows_affected: int | None
    status: str | None
    query_id: str | None
    request_id: str


@dataclass
class _Running:
    principal: str
    request_id: str
    sql: str
    started: float
    connection: Any = None
    cancelled: bool = False


@dataclass
class _Idle:
    connection: Any
    since: float


@dataclass
class PoolStats:
    """Counters for the bench and for tests: logins, re-logins after an expired session."""

    connects: int = 0
    reconnects: int = 0
    reused: int = 0


@dataclass
class _PrincipalPool:
    idle: list[_Idle] = field(default_factory=list)
    busy: int = 0


class SnowflakeClient:
    """Per-principal connection pools over one account (or the local demo warehouse)."""

    def __init__(self, settings: SnowflakeSettings) -> None:
        self.settings = settings
        self.local = (
            LocalWarehouse(
                port=settings.local_port,
                database=settings.local_database,
                schema=settings.local_schema,
                timeout_s=settings.local_start_timeout_s,
            )
            if settings.is_local
            else None
        )
        self.stats = PoolStats()
        self._pools: dict[str, _PrincipalPool] = {}
        self._lock = threading.Condition()
        self._running: dict[str, _Running] = {}
        self._closed = False

    # -- identity -------------------------------------------------------------------------

    @property
    def is_local(self) -> bool:
        return self.local is not None

    def address(self) -> str:
        """Where queries go, for messages (never with credentials)."""
        if self.local is not None:
            port = self.local.port
            return f"local fakesnow warehouse on 127.0.0.1:{port}" if port else "local fakesnow warehouse"
        if self.settings.file_connection is not None:
            return self.settings.file_connection.label
        host = self.settings.host or f"{self.settings.account}.snowflakecomputing.com"
        suffix = f":{self.settings.port}" if self.settings.port else ""
        return f"Snowflake account {self.settings.account} at {host}{suffix}"

    def connect_args(self) -> dict[str, Any]:
        """Keyword arguments for snowflake.connector.connect (secrets included: never log them)."""
        s = self.settings
        session_parameters: dict[str, Any] = {
            "MULTI_STATEMENT_COUNT": 1,
            "STATEMENT_TIMEOUT_IN_SECONDS": s.statement_timeout_s,
            "QUERY_TAG": json.dumps({"app": "sophia"}),
            "CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False,
        }
        args: dict[str, Any] = {
            "login_timeout": s.login_timeout_s,
            "session_parameters": session_parameters,
            "client_session_keep_alive": False,
            "application": "Sophia",
            "paramstyle": "pyformat",
        }
        if self.local is not None:
            port = self.local.ensure_started()
            args.update(
                account="fakesnow", user="sophia", password="local",  # noqa: S106 - fakesnow takes any password
                host="127.0.0.1", port=port,
                protocol="http", database=s.database or s.local_database,
                schema=s.schema_name or s.local_schema,
            )
            return args
        if s.file_connection is not None:
            # The user's connection as written (account, user, authenticator, keys …), under the
            # session guards above and any SOPHIA_SNOWFLAKE_* value set here.
            args = {**s.file_connection.params, **args}
        for name in ("account", "user", "host", "port", "protocol", "warehouse", "database", "role"):
            value = getattr(s, name)
            if value is not None:
                args[name] = value
        if s.schema_name:
            args["schema"] = s.schema_name
        if s.password is not None:
            args["password"] = s.password.get_secret_value()
        elif s.private_key_file is not None:
            args["authenticator"] = "SNOWFLAKE_JWT"
            args["private_key_file"] = str(s.private_key_file)
            if s.private_key_file_pwd is not None:
                args["private_key_file_pwd"] = s.private_key_file_pwd.get_secret_value()
        elif s.oauth_token is not None:
            args["authenticator"] = "oauth"
            args["token"] = s.oauth_token.get_secret_value()
        elif s.pat is not None:
            args["authenticator"] = "PROGRAMMATIC_ACCESS_TOKEN"
            args["token"] = s.pat.get_secret_value()
        return args

    # -- pool -----------------------------------------------------------------------------

    def _new_connection(self) -> Any:
        import snowflake.connector

        # The connector logs every login and query at INFO; the server's log is for our events.
        logging.getLogger("snowflake.connector").setLevel(logging.WARNING)

        try:
            connection = snowflake.connector.connect(**self.connect_args())
        except LocalWarehouseError as error:
            raise Unavailable(str(error)) from None
        except snowflake.connector.errors.Error as error:
            raise _unavailable(self.address(), error) from None
        with self._lock:
            self.stats.connects += 1
        return connection

    def _acquire(self, principal: str) -> Any:
        deadline = time.monotonic() + self.settings.login_timeout_s
        with self._lock:
            pool = self._pools.setdefault(principal, _PrincipalPool())
            while pool.busy >= self.settings.pool_max_per_principal:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._lock.wait(remaining):
                    raise LimitExceeded(
                        f"{principal} already runs {pool.busy} statements (SOPHIA_SNOWFLAKE_POOL_MAX_PER_PRINCIPAL); "
                        "wait for one to finish or cancel it with snowflake_cancel"
                    )
            pool.busy += 1
            stale: list[Any] = []
            reusable = None
            now = time.monotonic()
            while pool.idle:
                candidate = pool.idle.pop()
                if now - candidate.since > self.settings.pool_idle_s or _is_dead(candidate.connection):
                    stale.append(candidate.connection)
                    continue
                reusable = candidate.connection
                self.stats.reused += 1
                break
        for connection in stale:
            _close_quietly(connection)
        if reusable is not None:
            return reusable
        try:
            return self._new_connection()
        except BaseException:
            self._release(principal, None)
            raise

    def _release(self, principal: str, connection: Any | None, *, broken: bool = False) -> None:
        stale: list[Any] = []
        with self._lock:
            pool = self._pools.setdefault(principal, _PrincipalPool())
            pool.busy = max(0, pool.busy - 1)
            keep = connection is not None and not broken and not self._closed and not _is_dead(connection)
            now = time.monotonic()
            if keep:
                pool.idle.append(_Idle(connection, now))
            # Principals that never come back must not keep sessions open: sweep every pool.
            for name, other in list(self._pools.items()):
                fresh = [i for i in other.idle if now - i.since <= self.settings.pool_idle_s]
                stale.extend(i.connection for i in other.idle if now - i.since > self.settings.pool_idle_s)
                other.idle = fresh
                if not other.idle and not other.busy:
                    del self._pools[name]
            self._lock.notify()
        if connection is not None and not keep:
            stale.append(connection)
        for old in stale:
            _close_quietly(old)

    def _with_connection(self, principal: str, work: Callable[[Any], T]) -> T:
        """Run `work(connection)` in this thread; on an expired session log in again and retry once."""
        import snowflake.connector

        connection = self._acquire(principal)
        broken = False
        try:
            try:
                return work(connection)
            except snowflake.connector.errors.Error as error:
                if not _session_gone(error, connection):
                    raise
                log.info("snowflake session of %s expired (errno %s); logging in again", principal, error.errno)
                _close_quietly(connection)
                connection = None
                connection = self._new_connection()
                with self._lock:
                    self.stats.reconnects += 1
                return work(connection)
        except snowflake.connector.errors.Error as error:
            broken = _session_gone(error, connection) or isinstance(
                error, snowflake.connector.errors.OperationalError | snowflake.connector.errors.InterfaceError
            )
            raise
        finally:
            self._release(principal, connection, broken=broken)

    async def _run(
        self, principal: str, work: Callable[[Any], T], *, request_id: str | None = None, sql: str = ""
    ) -> T:
        """Run connector work in a worker thread; a cancelled caller aborts the running statement.

        The statement is registered before the thread starts, so a cancel that arrives while it
        waits for a connection or logs in is not lost.
        """
        import snowflake.connector

        running = None
        if request_id is not None:
            running = _Running(principal, request_id, sql, time.monotonic())
            with self._lock:
                self._running[request_id] = running
        # Snowflake enforces STATEMENT_TIMEOUT_IN_SECONDS itself; this bound (instead of the
        # connector's timeout=, which starts a timer thread per statement) covers a server that
        # stops answering, and aborts the statement like a cancelled caller does.
        deadline = self.settings.statement_timeout_s + self.settings.login_timeout_s + _GRACE_S
        try:
            with anyio.fail_after(deadline):
                try:
                    return await anyio.to_thread.run_sync(
                        partial(self._with_connection, principal, work), abandon_on_cancel=True
                    )
                except anyio.get_cancelled_exc_class():
                    if request_id is not None:
                        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                            await anyio.to_thread.run_sync(self._abort, request_id, abandon_on_cancel=True)
                    raise
        except TimeoutError:
            raise ToolTimeout(
                f"no answer from {self.address()} within {deadline:g} s; the statement was aborted",
                data={"request_id": request_id},
            ) from None
        except snowflake.connector.errors.Error as error:
            if running is not None and running.cancelled:
                raise _cancelled(running.request_id) from None
            raise _map_error(error, self.address()) from None
        finally:
            if request_id is not None:
                with self._lock:
                    self._running.pop(request_id, None)

    def close(self) -> None:
        """Close every pooled connection and stop the local warehouse."""
        with self._lock:
            self._closed = True
            idle = [i.connection for pool in self._pools.values() for i in pool.idle]
            self._pools.clear()
        for connection in idle:
            _close_quietly(connection)
        if self.local is not None:
            self.local.stop()

    # -- statements -----------------------------------------------------------------------

    def _statement_params(self, principal: str, correlation_id: str, tool: str, request_id: str) -> dict[str, Any]:
        tag = json.dumps(
            {"app": "sophia", "principal": principal, "correlation_id": correlation_id, "tool": tool},
            ensure_ascii=True,
        )[:2000]
        return {
            "QUERY_TAG": tag,
            "MULTI_STATEMENT_COUNT": 1,
            "STATEMENT_TIMEOUT_IN_SECONDS": self.settings.statement_timeout_s,
            "requestId": request_id,
        }

    def _execute(
        self, connection: Any, sql: str, principal: str, correlation_id: str, tool: str, request_id: str,
        params: Sequence[Any] | None = None,
    ) -> Any:
        with self._lock:
            running = self._running.get(request_id)
            if running is not None:
                running.connection = connection
                running.sql = sql
        if running is not None and running.cancelled:
            raise _cancelled(request_id)
        cursor = connection.cursor()
        cursor.execute(
            sql, params, num_statements=1,
            _statement_params=self._statement_params(principal, correlation_id, tool, request_id),
        )
        if running is not None and running.cancelled:
            cursor.close()
            raise _cancelled(request_id)
        return cursor

    async def query_page(
        self, statement: GuardedStatement, *, principal: str, correlation_id: str, offset: int, rows: int,
        max_chars: int, tool: str = "snowflake_query", request_id: str | None = None,
    ) -> QueryPage:
        """One page of a read: rows [offset, offset+rows), cut further to stay under max_chars."""
        from .policy import page_sql

        request_id = request_id or str(uuid.uuid4())
        sql = page_sql(statement, offset, rows + 1)
        skip = 0 if statement.pageable else offset

        def work(connection: Any) -> QueryPage:
            cursor = self._execute(connection, sql, principal, correlation_id, tool, request_id)
            try:
                columns = _columns(cursor.description or [])
                if skip:
                    _discard(cursor, skip)
                fetched = cursor.fetchmany(rows + 1)
                query_id = cursor.sfqid
            finally:
                cursor.close()
            return _build_page(columns, fetched, offset, rows, max_chars, query_id, request_id)

        return await self._run(principal, work, request_id=request_id, sql=sql)

    async def execute(
        self, statement: GuardedStatement, *, principal: str, correlation_id: str, request_id: str | None = None,
    ) -> ExecOutcome:
        """Run one write (already authorised and confirmed)."""
        request_id = request_id or str(uuid.uuid4())

        def work(connection: Any) -> ExecOutcome:
            cursor = self._execute(
                connection, statement.sql, principal, correlation_id, "snowflake_execute", request_id
            )
            try:
                first = cursor.fetchone() if cursor.description else None
                affected = cursor.rowcount if cursor.rowcount is not None and cursor.rowcount >= 0 else None
                status = None
                if first is not None and len(first) == 1 and isinstance(first[0], str):
                    status = sanitize_untrusted(first[0])[:500]
                return ExecOutcome(statement.kind.value, affected, status, cursor.sfqid, request_id)
            finally:
                cursor.close()

        return await self._run(principal, work, request_id=request_id, sql=statement.sql)

    async def rows(
        self, sql: str, params: Sequence[Any] | None, *, principal: str, correlation_id: str, tool: str,
        limit: int,
    ) -> tuple[list[ColumnInfo], list[tuple[Any, ...]]]:
        """Metadata reads built by the tools themselves (identifiers validated, values bound)."""
        request_id = str(uuid.uuid4())

        def work(connection: Any) -> tuple[list[ColumnInfo], list[tuple[Any, ...]]]:
            cursor = self._execute(connection, sql, principal, correlation_id, tool, request_id, params)
            try:
                return _columns(cursor.description or []), list(cursor.fetchmany(limit))
            finally:
                cursor.close()

        return await self._run(principal, work, request_id=request_id, sql=sql)

    async def describe_only(self, sql: str, *, principal: str) -> list[ColumnInfo]:
        """The result columns of a query, compiled but not run."""

        def work(connection: Any) -> list[ColumnInfo]:
            cursor = connection.cursor()
            try:
                return _columns(cursor.describe(sql) or [])
            finally:
                cursor.close()

        return await self._run(principal, work)

    # -- cancel ---------------------------------------------------------------------------

    def running(self, principal: str | None = None) -> list[tuple[str, str, float]]:
        """(request id, principal, seconds running) of statements in flight, for one principal or all."""
        now = time.monotonic()
        with self._lock:
            return [
                (r.request_id, r.principal, now - r.started)
                for r in self._running.values()
                if principal is None or r.principal == principal
            ]

    async def cancel(self, request_id: str, *, principal: str, any_principal: bool) -> bool:
        """Cancel a statement this server is running; False when it is not (or no longer) running."""
        with self._lock:
            running = self._running.get(request_id)
            if running is None or (running.principal != principal and not any_principal):
                return False
            running.cancelled = True
        await anyio.to_thread.run_sync(self._abort, request_id, abandon_on_cancel=True)
        return True

    def _abort(self, request_id: str) -> None:
        import snowflake.connector

        with self._lock:
            running = self._running.get(request_id)
        if running is None:
            return
        running.cancelled = True
        if running.connection is None:
            return  # not sent yet: _execute sees the flag and never sends it
        try:
            # The connector's own abort path (what it sends on a client-side timeout): the REST
            # abort-request naming the statement by the request id we gave it.
            running.connection._cancel_query(running.sql, uuid.UUID(request_id))
        except snowflake.connector.errors.Error as error:
            log.warning("aborting statement %s failed: errno %s", request_id, getattr(error, "errno", None))

    # -- check ----------------------------------------------------------------------------

    async def check(self, principal: str) -> str:
        """Log in and run a trivial statement; one line saying where."""
        _, fetched = await self.rows(
            "SELECT CURRENT_VERSION()", None, principal=principal, correlation_id="check", tool="check", limit=1
        )
        version = fetched[0][0] if fetched else "?"
        return f"{self.address()} answers (version {version})"


# -- conversion ---------------------------------------------------------------------------


def _columns(description: Sequence[Any]) -> list[ColumnInfo]:
    from snowflake.connector.constants import FIELD_ID_TO_NAME

    columns = []
    for meta in description:
        type_name = FIELD_ID_TO_NAME.get(meta.type_code) or "UNKNOWN"
        if type_name == "FIXED":
            type_name = f"NUMBER({meta.precision},{meta.scale})" if meta.precision is not None else "NUMBER"
        elif type_name == "TEXT":
            type_name = "VARCHAR"
        columns.append(ColumnInfo(name=meta.name, type=type_name, nullable=meta.is_nullable))
    return columns


def json_safe(value: Any, type_name: str = "") -> tuple[JsonValue, bool]:
    """A cell as a JSON-safe value, and whether it was cut to the cell cap."""
    if value is None or isinstance(value, bool):
        return value, False
    if isinstance(value, int):
        # JSON numbers beyond 2**53 lose digits in most clients: keep them exact as text.
        return (value if abs(value) < 2**53 else str(value)), False
    if isinstance(value, decimal.Decimal):
        if value == value.to_integral_value() and abs(value) < 2**53:
            return int(value), False
        return str(value), False
    if isinstance(value, float):
        return (value if math.isfinite(value) else str(value)), False
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat(), False
    if isinstance(value, dt.timedelta):
        return str(value), False
    if isinstance(value, bytes | bytearray):
        return _cut(base64.b64encode(value).decode("ascii"))
    if isinstance(value, str):
        if type_name in _SEMI_STRUCTURED and len(value) <= _MAX_CELL_CHARS:
            try:
                return json.loads(value), False
            except ValueError:
                return value, False
        return _cut(value)
    if isinstance(value, list | tuple):
        return _cut(json.dumps(value, default=str))
    if isinstance(value, dict):
        return _cut(json.dumps(value, default=str))
    return _cut(str(value))


def _cut(text: str) -> tuple[str, bool]:
    if len(text) <= _MAX_CELL_CHARS:
        return text, False
    return text[:_MAX_CELL_CHARS] + "…", True


def _is_numeric(type_name: str) -> bool:
    return type_name.startswith("NUMBER") or type_name in _FLOATS


def _exact_as_json_number(value: Any) -> bool:
    """Whether a client that reads JSON numbers as IEEE doubles gets exactly this value back."""
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return abs(value) < 2**53
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, decimal.Decimal):
        return value.is_finite() and decimal.Decimal(repr(float(value))) == value
    return False


def _numeric_cell(value: Any, type_name: str, as_text: bool) -> JsonValue:
    """A numeric cell in its column's one JSON type: a number (an integer when the column's scale is 0),
    or, when some value of the page is not exact as a double, the exact decimal text, e.g. "12.50"."""
    if value is None:
        return None
    if as_text:
        return str(value)
    if isinstance(value, decimal.Decimal):
        scale = _SCALE.search(type_name)
        integral = int(scale.group(1)) == 0 if scale else value == value.to_integral_value()
        return int(value) if integral else float(value)
    if isinstance(value, int | float):
        return value
    return str(value)


def _numeric_columns(columns: list[ColumnInfo], fetched: Sequence[Sequence[Any]]) -> list[ColumnInfo]:
    """The columns with each numeric one's JSON type for this page: "string" as soon as one of its values
    would not survive a JSON number, so that a column never mixes numbers and strings."""
    out = []
    for index, column in enumerate(columns):
        if _is_numeric(column.type):
            exact = all(_exact_as_json_number(row[index]) for row in fetched if index < len(row))
            column = replace(column, json_type="number" if exact else "string")
        out.append(column)
    return out


def _build_page(
    columns: list[ColumnInfo], fetched: Sequence[Sequence[Any]], offset: int, rows: int, max_chars: int,
    query_id: str | None, request_id: str,
) -> QueryPage:
    columns = _numeric_columns(columns, fetched[:rows])
    types = [c.type for c in columns]
    as_text = [c.json_type == "string" for c in columns]
    out: list[list[JsonValue]] = []
    # Sizes are counted as the request path counts them: the text copy of the result is its
    # structured content as compact JSON.
    used = _json_size([c.__dict__ for c in columns])
    cut_by_size = cells_cut = False
    for raw in fetched[:rows]:
        row: list[JsonValue] = []
        for value, type_name, text in zip(raw, types, as_text, strict=False):
            if _is_numeric(type_name):
                row.append(_numeric_cell(value, type_name, text))
                continue
            safe, cut = json_safe(value, type_name)
            cells_cut = cells_cut or cut
            row.append(safe)
        size = _json_size(row)
        if out and used + size > max_chars:
            cut_by_size = True
            break
        out.append(row)
        used += size
    has_more = cut_by_size or len(fetched) > rows
    return QueryPage(columns, out, offset, has_more, cut_by_size, cells_cut, query_id, request_id)


def _json_size(value: Any) -> int:
    """Characters of `value` in the compact JSON text, with the comma that separates it from the next."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":"))) + 1


def _discard(cursor: Any, count: int) -> None:
    remaining = count
    while remaining > 0:
        chunk = cursor.fetchmany(min(remaining, 10_000))
        if not chunk:
            return
        remaining -= len(chunk)


# -- errors -------------------------------------------------------------------------------


def _session_gone(error: Any, connection: Any) -> bool:
    errno = getattr(error, "errno", None)
    return errno in SESSION_GONE_ERRNOS or bool(getattr(connection, "expired", False))


def _is_dead(connection: Any) -> bool:
    try:
        return bool(connection.is_closed() or getattr(connection, "expired", False))
    except AttributeError:
        return True


def _close_quietly(connection: Any) -> None:
    import snowflake.connector

    try:
        connection.close()
    except (snowflake.connector.errors.Error, OSError) as error:
        log.debug("closing a snowflake connection failed: %s", type(error).__name__)


def _cancelled(request_id: str) -> Conflict:
    return Conflict(f"statement {request_id} was cancelled", data={"request_id": request_id, "cancelled": True})


def _unavailable(address: str, error: Any) -> Unavailable:
    return Unavailable(
        f"cannot log in to {address}; check SOPHIA_SNOWFLAKE_ACCOUNT/HOST/PORT and credentials",
        detail=redact(str(getattr(error, "msg", None) or error)),
        data={"errno": getattr(error, "errno", None)},
    )


_POSITION = re.compile(r"line (\d+) at position (\d+)", re.IGNORECASE)
_OBJECT = re.compile(
    r"(?:Object|Table with name|Schema with name|Catalog with name|Database|Schema|Table|View)"
    r"\s+'?\"?([\w.$\"]+?)\"?'?\s+(?:does not exist|not found)",
    re.IGNORECASE,
)


def _map_error(error: Any, address: str) -> SophiaError:
    import snowflake.connector

    errno = getattr(error, "errno", None)
    sqlstate = getattr(error, "sqlstate", None)
    text = sanitize_untrusted(redact(str(getattr(error, "msg", None) or error)))[:1000]
    data: dict[str, Any] = {"errno": errno, "sqlstate": sqlstate}
    # The same limit runs server-side (630) and in the connector, which cancels the statement (604).
    if errno in _TIMEOUT_ERRNOS or (errno in _CANCELLED_ERRNOS and "timeout" in text.lower()):
        return ToolTimeout("the statement hit its timeout (SOPHIA_SNOWFLAKE_STATEMENT_TIMEOUT_S)", data=data)
    if errno in _CANCELLED_ERRNOS:
        return Conflict("the statement was cancelled", data=data)
    if errno in SESSION_GONE_ERRNOS or isinstance(
        error, snowflake.connector.errors.OperationalError | snowflake.connector.errors.InterfaceError
    ):
        return _unavailable(address, error)
    if errno in _PERMISSION_ERRNOS or sqlstate == "42501":
        return Forbidden(
            f"{address} refused the statement (insufficient privileges): {text}. "
            "Query tables and views this role may read (snowflake_list_tables lists them).",
            data=data,
        )
    if errno in _NOT_FOUND_ERRNOS or sqlstate == "42S02" or re.search(r"does not exist", text, re.IGNORECASE):
        found = _OBJECT.search(text)
        name = found.group(1) if found else None
        if name:
            data["object"] = name
        what = f"{name} was not found" if name else "an object the statement names was not found"
        return NotFound(f"{what}; list what exists with snowflake_list_tables / snowflake_list_schemas: {text}",
                        data=data)
    if errno in _SYNTAX_ERRNOS or sqlstate == "42000":
        position = _POSITION.search(text)
        if position:
            data.update(line=int(position.group(1)), position=int(position.group(2)))
        return InvalidArgument(f"Snowflake could not compile the statement: {text}", data=data)
    if isinstance(error, snowflake.connector.errors.ProgrammingError):
        return InvalidArgument(f"Snowflake refused the statement: {text}", data=data)
    return UpstreamError(f"Snowflake failed (errno {errno}, SQLSTATE {sqlstate})", detail=text, data=data)
