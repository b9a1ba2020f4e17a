"""The Snowflake MCP tools: typed, documented and thin; the SQL guard decides, client.py runs."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context
from pydantic import Field
from sophia_shared.errors import Forbidden, InvalidArgument, NotFound, SophiaError
from sophia_shared.paging import SignedCursors
from sophia_shared.server import Preview, Role, SophiaServer, current_correlation_id, current_principal
from sophia_shared.toolset import Toolset, tool

from .client import ColumnInfo, JsonValue, QueryPage, SnowflakeClient
from .kinds import StatementKind
from .models import (
    CancelResult,
    Column,
    Database,
    DatabaseList,
    ExecuteResult,
    ExplainResult,
    QueryResult,
    Schema,
    SchemaList,
    Table,
    TableColumn,
    TableDescription,
    TableList,
)
from .settings import SnowflakeSettings

if TYPE_CHECKING:
    from .policy import GuardedStatement

T = TypeVar("T")

INSTRUCTIONS = (
    "Query a Snowflake warehouse. Explore with snowflake_list_databases/schemas/tables, "
    "snowflake_describe_table and snowflake_sample_table; read with snowflake_query (one read-only "
    "statement per call, paged: repeat the same sql with next_cursor for more rows); writes go through "
    "snowflake_execute and need the user's confirmation. Results with local=true come from a local demo "
    "warehouse (fakesnow), not from a real Snowflake account."
)

_LOCAL_SOURCE = "local demo warehouse (fakesnow on loopback), not a real Snowflake account"
_NAME = re.compile(r'^(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")$')
_PLAN_CHARS = 20_000


def _guard(sql: str, *, read_tool: bool, settings: SnowflakeSettings) -> GuardedStatement:
    """Parse and authorise for the current principal; a refusal names the rule."""
    # The guard pulls in sqlglot: imported on the first statement, not at start-up.
    from .policy import SqlRefused, SqlSyntaxError, authorise, parse_statement

    role = current_principal().role.label
    try:
        statement = parse_statement(sql, local=settings.is_local)
        permissions: dict[str, list[StatementKind]] | None = (
            {str(name): list(kinds) for name, kinds in settings.statement_permissions.items()}
            if settings.statement_permissions is not None
            else None
        )
        authorise(
            statement, role, read_tool=read_tool, permissions=permissions,
            admin_dangerous_kinds=settings.admin_dangerous_kinds,
        )
    except SqlSyntaxError as error:
        where = f" at line {error.line}, column {error.column}" if error.line is not None else ""
        raise InvalidArgument(
            f"SQL syntax error{where}: {error.message}",
            data={"line": error.line, "column": error.column, "parser": "sqlglot/snowflake"},
        ) from None
    except SqlRefused as refused:
        data: dict[str, Any] = {"rule": refused.rule}
        if refused.kind is not None:
            data["kind"] = refused.kind.value
        raise Forbidden(refused.message, data=data) from None
    return statement


def _columns(columns: list[ColumnInfo]) -> list[Column]:
    return [Column(name=c.name, type=c.type, nullable=c.nullable, json_type=c.json_type) for c in columns]  # type: ignore[arg-type]


def _identifier(text: str, what: str) -> str:
    """One validated Snowflake identifier, unquoted (upper-cased) or double-quoted."""
    text = text.strip()
    if not _NAME.fullmatch(text):
        raise InvalidArgument(
            f"{what} {text!r} is not a valid identifier: use letters, digits, _ and $, or double-quote it"
        )
    return text if text.startswith('"') else text.upper()


def _qualified(text: str, what: str) -> str:
    """A dotted name (database.schema.table, schema.table or table) with each part validated."""
    parts = re.findall(r'"(?:[^"]|"")+"|[^.]+', text.strip())
    joined = ".".join(parts)
    if not parts or len(parts) > 3 or joined != text.strip():
        raise InvalidArgument(f"{what} {text!r} must look like table, schema.table or database.schema.table")
    return ".".join(_identifier(p, what) for p in parts)


def _unquote(identifier: str) -> str:
    return identifier[1:-1].replace('""', '"') if identifier.startswith('"') else identifier


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


class _Cursors:
    """Page cursors signed (sophia_shared.paging) and bound to the statement text and the principal."""

    def __init__(self) -> None:
        self._signed = SignedCursors()

    def issue(self, sql: str, principal: str, offset: int) -> str:
        return self._signed.issue({"h": _digest(sql), "p": principal, "o": offset})

    def redeem(self, cursor: str, sql: str, principal: str) -> int:
        data = self._signed.redeem(cursor)
        if data is None or not isinstance(data.get("o"), int):
            raise InvalidArgument("cursor is not valid (or the server restarted): run the query again without it")
        if data.get("h") != _digest(sql) or data.get("p") != principal:
            raise InvalidArgument("cursor belongs to a different statement: pass the same sql that returned it")
        return int(data["o"])


def _digest(sql: str) -> str:
    return hashlib.sha256(sql.encode()).hexdigest()[:24]


async def _with_progress(
    ctx: Context[Any, Any] | None, interval_s: float, label: str, work: Callable[[], Awaitable[T]]
) -> T:
    """Run `work`, reporting progress at start, every interval while it runs, and at the end."""
    if ctx is None:
        return await work()
    await _report(ctx, 0, f"{label}: started")
    done = anyio.Event()

    async def tick() -> None:
        ticks = 0
        while not done.is_set():
            with anyio.move_on_after(interval_s):
                await done.wait()
            if not done.is_set():
                ticks += 1
                await _report(ctx, ticks, f"{label}: running for {ticks * interval_s:g} s")

    failure: SophiaError | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(tick)
        try:
            result = await work()
        except SophiaError as error:
            # Raised outside the task group, so the request path sees the error, not a group.
            failure = error
        finally:
            done.set()
    if failure is not None:
        await _report(ctx, 1, f"{label}: failed ({failure.code.value})", total=1)
        raise failure
    await _report(ctx, 1, f"{label}: done", total=1)
    return result


async def _report(ctx: Context[Any, Any], progress: float, message: str, total: float | None = None) -> None:
    # A client that did not ask for progress has no token; reporting is then a no-op.
    try:
        await ctx.report_progress(progress, total, message)
    except (ValueError, LookupError, anyio.ClosedResourceError, anyio.BrokenResourceError):
        return


# -- the tools (module-level values; build_server binds their dependencies) ----------------


@dataclass(frozen=True)
class SnowflakeDeps:
    """What the tools need: the settings, the client (the only code that talks to Snowflake), the
    cursor signer and the source line every result carries."""

    settings: SnowflakeSettings
    sf: SnowflakeClient
    cursors: _Cursors
    source: str


def page_limit(deps: SnowflakeDeps, max_chars: int | None) -> int:
    # The shared request path refuses results over max_result_chars; the client counts rows
    # and columns as they are rendered, and this leaves room for the other fields.
    budget = max(1_000, deps.settings.max_result_chars - 3_000)
    return min(budget, max_chars) if max_chars else budget


def to_result(
    deps: SnowflakeDeps, statement: GuardedStatement, page: QueryPage, sql: str, principal: str
) -> QueryResult:
    next_offset = page.offset + len(page.rows)
    next_cursor = deps.cursors.issue(sql, principal, next_offset) if page.has_more else None
    return QueryResult(
        kind=statement.kind.value, columns=_columns(page.columns), rows=page.rows, row_count=len(page.rows),
        offset=page.offset, truncated=page.has_more or page.cells_cut, next_cursor=next_cursor,
        query_id=page.query_id, request_id=page.request_id, local=deps.sf.is_local, source=deps.source,
    )


async def run_page(
    deps: SnowflakeDeps,
    statement: GuardedStatement, sql: str, rows: int, cursor: str | None, max_chars: int | None,
    ctx: Context[Any, Any] | None, tool: str,
) -> QueryResult:
    principal = current_principal().name
    offset = deps.cursors.redeem(cursor, sql, principal) if cursor else 0
    if offset > deps.settings.max_offset:
        raise InvalidArgument(f"offset {offset} is past SOPHIA_SNOWFLAKE_MAX_OFFSET; narrow the query instead")
    request_id = _new_request_id()
    correlation = current_correlation_id()
    page = await _with_progress(
        ctx, deps.settings.progress_interval_s, f"{tool} {request_id}",
        lambda: deps.sf.query_page(
            statement, principal=principal, correlation_id=correlation, offset=offset, rows=rows,
            max_chars=page_limit(deps, max_chars), tool=tool, request_id=request_id,
        ),
    )
    return to_result(deps, statement, page, sql, principal)


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def snowflake_query(
    deps: SnowflakeDeps,
    sql: Annotated[
        str,
        Field(
            description="Exactly one read-only statement: SELECT / WITH … SELECT, SHOW, DESCRIBE or EXPLAIN.",
            min_length=1, max_length=100_000,
        ),
    ],
    ctx: Context[Any, Any],
    max_rows: Annotated[
        int | None,
        Field(description="Rows per page (default 100, server maximum applies).", ge=1, le=100_000),
    ] = None,
    max_chars: Annotated[
        int | None, Field(description="Cap on the page's JSON size in characters.", ge=1_000, le=10_000_000)
    ] = None,
    cursor: Annotated[
        str | None,
        Field(description="next_cursor of the previous page (same sql).", min_length=1, max_length=500),
    ] = None,
) -> QueryResult:
    """Run one read-only SQL statement and return a page of rows with column names and types.


    Writes, stages (PUT/GET/COPY), CALL, EXECUTE IMMEDIATE, session and transaction changes
    are refused whatever your role. Large results come in pages: when
    truncated is true, call again with the same sql and cursor=next_cursor. Add ORDER BY for
    pages that are stable across calls.
    """
    statement = _guard(sql, read_tool=True, settings=deps.settings)
    rows = min(max_rows or deps.settings.default_page_rows, deps.settings.max_page_rows)
    return await run_page(deps, statement, sql, rows, cursor, max_chars, ctx, "snowflake_query")


async def preview_execute(deps: SnowflakeDeps, sql: str) -> Preview:
    statement = _guard(sql, read_tool=False, settings=deps.settings)
    tables = ", ".join(statement.tables) or "no named table"
    # An UPDATE or DELETE without WHERE changes every row: say so before the human says yes.
    every_row = (
        statement.kind in (StatementKind.UPDATE, StatementKind.DELETE)
        and statement.tree is not None
        and statement.tree.args.get("where") is None
    )
    warning = " WARNING: no WHERE clause, every row of the table is affected." if every_row else ""
    return Preview(
        summary=f"Run one {statement.kind.value.upper()} statement on {deps.source} touching {tables}:{warning} "
                f"{statement.sql[:1_000]}",
        details={
            "kind": statement.kind.value, "tables": list(statement.tables), "statement": statement.sql[:4_000],
            "every_row": every_row,
        },
        binding=_digest(statement.sql),
    )


@tool(
    title="Snowflake: execute a change",
    role=Role.DEVOPS, read_only=False, destructive=True, idempotent=False, open_world=True,
    preview=preview_execute,
)
async def snowflake_execute(
    deps: SnowflakeDeps,
    sql: Annotated[
        str,
        Field(
            description="Exactly one write: INSERT, UPDATE, DELETE, MERGE (devops); DDL or GRANT (admin).",
            min_length=1, max_length=100_000,
        ),
    ],
    ctx: Context[Any, Any],
) -> ExecuteResult:
    """Run one data-changing statement after the user confirms a preview of it.


    devops may run INSERT, UPDATE, DELETE and MERGE; admin also DDL and GRANT/REVOKE. Reads
    belong in snowflake_query. PUT/GET/COPY, CALL, EXECUTE IMMEDIATE, scripting, ALTER
    SESSION/ACCOUNT, USE, transaction control and user/role/network-policy changes are refused
    unless an admin setting enables that kind.
    """
    statement = _guard(sql, read_tool=False, settings=deps.settings)
    principal = current_principal().name
    correlation = current_correlation_id()
    request_id = _new_request_id()
    outcome = await _with_progress(
        ctx, deps.settings.progress_interval_s, f"snowflake_execute {request_id}",
        lambda: deps.sf.execute(statement, principal=principal, correlation_id=correlation, request_id=request_id),
    )
    return ExecuteResult(
        kind=outcome.kind, rows_affected=outcome.rows_affected, status=outcome.status,
        query_id=outcome.query_id, request_id=outcome.request_id, local=deps.sf.is_local, source=deps.source,
    )


async def metadata(
    deps: SnowflakeDeps, sql: str, params: list[Any] | None, tool: str, limit: int
) -> tuple[list[str], list[Any]]:
    columns, rows = await deps.sf.rows(
        sql, params, principal=current_principal().name, correlation_id=current_correlation_id(), tool=tool,
        limit=limit,
    )
    return [c.name.lower() for c in columns], rows


def default_database(deps: SnowflakeDeps, database: str | None) -> str:
    own = deps.settings.file_connection.params.get("database") if deps.settings.file_connection else None
    chosen = database or deps.settings.database or own or (deps.settings.local_database if deps.sf.is_local else None)
    if not chosen:
        raise InvalidArgument("name a database (no SOPHIA_SNOWFLAKE_DATABASE is configured)")
    return _identifier(chosen, "database")


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def snowflake_list_databases(
    deps: SnowflakeDeps,
    limit: Annotated[int, Field(description="Most databases to return.", ge=1, le=1_000)] = 200,
) -> DatabaseList:
    """List the databases the connection's role can see."""
    names, rows = await metadata(deps, "SHOW DATABASES", None, "snowflake_list_databases", limit + 1)
    position = {n: i for i, n in enumerate(names)}
    databases = [
        Database(
            name=str(row[position["name"]]),
            comment=_text(row[position["comment"]]) if "comment" in position else None,
            created_on=_text(row[position["created_on"]]) if "created_on" in position else None,
        )
        for row in rows[:limit]
    ]
    return DatabaseList(databases=databases, truncated=len(rows) > limit, local=deps.sf.is_local, source=deps.source)


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def snowflake_list_schemas(
    deps: SnowflakeDeps,
    database: Annotated[
        str | None, Field(description="Database name; the configured one when omitted.", max_length=255)
    ] = None,
    limit: Annotated[int, Field(description="Most schemas to return.", ge=1, le=1_000)] = 200,
) -> SchemaList:
    """List the schemas of one database."""
    db = default_database(deps, database)
    names, rows = await metadata(deps, f"SHOW SCHEMAS IN DATABASE {db}", None, "snowflake_list_schemas", limit + 1)
    index = names.index("name")
    schemas = [Schema(name=str(row[index]), database=_unquote(db)) for row in rows[:limit]]
    return SchemaList(
        database=_unquote(db), schemas=schemas, truncated=len(rows) > limit, local=deps.sf.is_local, source=deps.source
    )


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def snowflake_list_tables(
    deps: SnowflakeDeps,
    database: Annotated[
        str | None, Field(description="Database name; the configured one when omitted.", max_length=255)
    ] = None,
    schema: Annotated[
        str | None, Field(description="Schema name; all when omitted.", max_length=255)
    ] = None,
    name_like: Annotated[
        str | None, Field(description="SQL LIKE pattern on the table name, e.g. 'ORD%'.", max_length=255)
    ] = None,
    limit: Annotated[int, Field(description="Most tables to return.", ge=1, le=1_000)] = 200,
) -> TableList:
    """List tables and views with their kind, row counts and bytes where Snowflake reports them."""
    db = default_database(deps, database)
    conditions = ["TABLE_SCHEMA <> 'INFORMATION_SCHEMA'"]
    params: list[Any] = []
    if schema:
        conditions.append("TABLE_SCHEMA = %s")
        params.append(_unquote(_identifier(schema, "schema")))
    if name_like:
        conditions.append("TABLE_NAME ILIKE %s")
        params.append(name_like)
    # Identifiers are validated by _identifier and values are bound, never interpolated.
    sql = (
        "SELECT TABLE_CATALOG, TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, ROW_COUNT, BYTES, COMMENT "  # noqa: S608
        f"FROM {db}.INFORMATION_SCHEMA.TABLES WHERE {' AND '.join(conditions)} "
        f"ORDER BY TABLE_SCHEMA, TABLE_NAME LIMIT {limit + 1}"
    )
    _, rows = await metadata(deps, sql, params or None, "snowflake_list_tables", limit + 1)
    tables = [
        Table(
            database=str(r[0]), schema_name=str(r[1]), name=str(r[2]), kind=str(r[3]),
            row_count=_int(r[4]), bytes=_int(r[5]), comment=_text(r[6]),
        )
        for r in rows[:limit]
    ]
    return TableList(tables=tables, truncated=len(rows) > limit, local=deps.sf.is_local, source=deps.source)


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def snowflake_describe_table(
    deps: SnowflakeDeps,
    table: Annotated[
        str,
        Field(description="table, schema.table or database.schema.table", min_length=1, max_length=800),
    ],
    max_columns: Annotated[int, Field(description="Most columns to return.", ge=1, le=2_000)] = 500,
) -> TableDescription:
    """Describe a table's columns: type, nullability, default, primary key and comment."""
    ref = _qualified(table, "table")
    # the guard's table-source rules apply here too: a quoted path is a file, not a table
    _guard(f"DESCRIBE TABLE {ref}", read_tool=True, settings=deps.settings)
    names, rows = await metadata(deps, f"DESCRIBE TABLE {ref}", None, "snowflake_describe_table", max_columns + 1)
    at = {n: i for i, n in enumerate(names)}


    def cell(row: Any, name: str) -> Any:
        return row[at[name]] if name in at else None


    columns = [
        TableColumn(
            name=str(cell(r, "name")), type=str(cell(r, "type")), nullable=cell(r, "null?") == "Y",
            default=_text(cell(r, "default")), primary_key=cell(r, "primary key") == "Y",
            comment=_text(cell(r, "comment")),
        )
        for r in rows[:max_columns]
    ]
    return TableDescription(
        table=ref, columns=columns, truncated=len(rows) > max_columns, local=deps.sf.is_local, source=deps.source
    )


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=False, open_world=True)
async def snowflake_sample_table(
    deps: SnowflakeDeps,
    table: Annotated[
        str,
        Field(description="table, schema.table or database.schema.table", min_length=1, max_length=800),
    ],
    ctx: Context[Any, Any],
    rows: Annotated[int, Field(description="How many sample rows.", ge=1, le=1_000)] = 10,
) -> QueryResult:
    """A random sample of a table's rows, to see what the data looks like; for chosen rows use snowflake_query."""
    ref = _qualified(table, "table")
    sql = f"SELECT * FROM {ref} SAMPLE ({rows} ROWS)"  # noqa: S608 - ref validated, rows an int
    statement = _guard(sql, read_tool=True, settings=deps.settings)
    return await run_page(deps, statement, sql, rows, None, None, ctx, "snowflake_sample_table")


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def snowflake_explain(
    deps: SnowflakeDeps,
    sql: Annotated[str, Field(description="One query (SELECT / WITH … SELECT).", min_length=1, max_length=100_000)],
) -> ExplainResult:
    """Check a query without running it: its tables, result columns, and Snowflake's plan when available."""
    statement = _guard(sql, read_tool=True, settings=deps.settings)
    if statement.kind is StatementKind.EXPLAIN:
        raise InvalidArgument("pass the query itself, without EXPLAIN")
    if statement.kind is not StatementKind.SELECT:
        raise InvalidArgument(f"snowflake_explain takes a query; this is {statement.kind.value}")
    principal = current_principal().name
    columns = await deps.sf.describe_only(statement.sql, principal=principal)
    plan: JsonValue = None
    plan_truncated = False
    note = None
    try:
        _, rows = await metadata(deps, f"EXPLAIN USING JSON {statement.sql}", None, "snowflake_explain", 1)
        text = str(rows[0][0]) if rows and rows[0] else ""
        plan_truncated = len(text) > _PLAN_CHARS
        try:
            plan = text[:_PLAN_CHARS] if plan_truncated else json.loads(text)
        except ValueError:
            plan = text[:_PLAN_CHARS]
    except SophiaError as error:
        note = f"the warehouse did not produce a plan ({error.code.value}); columns come from compiling only"
    return ExplainResult(
        kind=statement.kind.value, statement=statement.sql, tables=list(statement.tables),
        columns=_columns(columns), plan=plan, plan_truncated=plan_truncated, note=note, local=deps.sf.is_local,
        source=deps.source,
    )


@tool(
    title="Snowflake: cancel statement",
    role=Role.VIEWER, read_only=False, destructive=False, idempotent=True, open_world=True,
)
async def snowflake_cancel(
    deps: SnowflakeDeps,
    request_id: Annotated[
        str,
        Field(
            description="request_id of a running statement (shown in progress messages and results).",
            pattern=r"^[0-9a-fA-F-]{36}$",
        ),
    ],
) -> CancelResult:
    """Cancel a statement this server is running for you (admins: for anyone)."""
    principal = current_principal()
    cancelled = await deps.sf.cancel(
        request_id.lower(), principal=principal.name, any_principal=principal.role >= Role.ADMIN
    )
    if not cancelled:
        raise NotFound(f"no running statement {request_id} of yours; it may have finished already")
    return CancelResult(request_id=request_id, cancelled=True, message="cancel sent; the statement stops")


# -- the server -----------------------------------------------------------------------------

TOOLS = Toolset((
    snowflake_query,
    snowflake_execute,
    snowflake_list_databases,
    snowflake_list_schemas,
    snowflake_list_tables,
    snowflake_describe_table,
    snowflake_sample_table,
    snowflake_explain,
    snowflake_cancel,
))


def build_server(settings: SnowflakeSettings, client: SnowflakeClient | None = None) -> SophiaServer:
    """The Snowflake MCP server; it does not connect until a tool needs it."""
    sf = client or SnowflakeClient(settings)
    cursors = _Cursors()
    source = _LOCAL_SOURCE if sf.is_local else sf.address()

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        try:
            yield None
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(sf.close)

    server = SophiaServer("snowflake", settings=settings, instructions=INSTRUCTIONS, lifespan=lifespan)
    TOOLS.register(server, SnowflakeDeps(cursors=cursors, settings=settings, sf=sf, source=source))
    return server


def _new_request_id() -> str:
    import uuid

    return str(uuid.uuid4())


async def check(settings: SnowflakeSettings) -> str:
    """Config + connectivity: log in and run one statement; one line, or a SophiaError."""
    client = SnowflakeClient(settings)
    try:
        return await client.check("sophia-check")
    finally:
        await anyio.to_thread.run_sync(client.close)
