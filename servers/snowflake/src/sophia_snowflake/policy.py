"""The SQL guard: parse, classify and authorise exactly one Snowflake statement.

Layers (the server-side ones live in client.py):

1. The text is screened for invisible and look-alike characters outside string literals and
   quoted identifiers, so what a human reads in a preview is what the parser sees.
2. sqlglot (Snowflake dialect) parses it; exactly one statement, no unparseable input.
3. The statement is classified into a `StatementKind` by its syntax tree, never by a regex on
   the text; reads are walked node by node, so DML hidden in a CTE, SELECT … INTO, locking
   reads, stage scans and side-effecting SYSTEM$ functions are found.
4. Every function call and table source is checked by name (sql_functions.py): file, glob,
   scan, settings, session and SQL-text functions are refused in every mode, and so is a table
   named like a file path (DuckDB reads `FROM 'x.csv'` as a file); on the local demo warehouse
   (DuckDB under fakesnow) only functions on an allow-list run at all.
5. The statement that runs is re-rendered from the checked tree without comments, so a lexer
   that disagrees with sqlglot about comments or strings cannot smuggle a second statement.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NoReturn

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError, TokenError

from .kinds import DANGEROUS_KINDS, DEFAULT_PERMISSIONS, DML_KINDS, READ_KINDS, StatementKind
from .sql_functions import (
    FILES,
    LOCAL_ALLOWED_TYPED,
    LOCAL_NAMED_FUNCTIONS,
    NAMED_CALL_CLASSES,
    STAGE_FILES,
    refusal_reason,
)

__all__ = [
    "DANGEROUS_KINDS",
    "DEFAULT_PERMISSIONS",
    "DML_KINDS",
    "READ_KINDS",
    "GuardedStatement",
    "SqlRefused",
    "SqlSyntaxError",
    "StatementKind",
    "authorise",
    "page_sql",
    "parse_statement",
]

DIALECT = "snowflake"


# SYSTEM$ functions that only read; every other SYSTEM$ call (cancel/abort queries, send e-mail or
# notifications, change pipes and tasks, ...) has side effects and is refused inside a read.
READ_ONLY_SYSTEM_FUNCTIONS = frozenset(
    {
        "SYSTEM$TYPEOF",
        "SYSTEM$CLUSTERING_INFORMATION",
        "SYSTEM$CLUSTERING_DEPTH",
        "SYSTEM$EXPLAIN_PLAN_JSON",
        "SYSTEM$EXPLAIN_JSON_TO_TEXT",
        "SYSTEM$GET_TAG",
        "SYSTEM$GET_TAG_ON_CURRENT_COLUMN",
        "SYSTEM$GET_TAG_ON_CURRENT_TABLE",
        "SYSTEM$PIPE_STATUS",
        "SYSTEM$TASK_DEPENDENTS_ENABLE_STATUS",
        "SYSTEM$VERIFY_EXTERNAL_OAUTH_TOKEN",
        "SYSTEM$WHITELIST",
        "SYSTEM$ALLOWLIST",
    }
)

# Nodes that change data, schema, session or transaction state: none may appear inside a read.
_WRITE_NODES: tuple[type[exp.Expr], ...] = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.TruncateTable,
    exp.Command,
    exp.Copy,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Use,
    exp.Set,
    exp.Grant,
    exp.Revoke,
    exp.Put,
    exp.Into,
    exp.Comment,
    exp.Undrop,
    exp.MultitableInserts,
    exp.Describe,
    exp.Show,
)

# Words after CREATE/ALTER/DROP that make a statement a security change (never by default).
_SECURITY_OBJECTS = re.compile(
    r"^\s*(?:OR\s+REPLACE\s+)?(?:IF\s+(?:NOT\s+)?EXISTS\s+)?"
    r"(?:USER|ROLE|DATABASE\s+ROLE|APPLICATION\s+ROLE|NETWORK\s+(?:POLICY|RULE)|"
    r"(?:API|STORAGE|SECURITY|NOTIFICATION|EXTERNAL\s+ACCESS|CATALOG|GIT\s+HTTPS\s+API)?\s*INTEGRATION|"
    r"(?:PASSWORD|SESSION|AUTHENTICATION|MASKING|ROW\s+ACCESS|PACKAGES|AGGREGATION|PROJECTION)\s+POLICY|"
    r"SHARE|SECRET|ACCOUNT|CONNECTION|REPLICATION\s+GROUP|FAILOVER\s+GROUP)\b",
    re.IGNORECASE,
)
_SECURITY_CREATE_KINDS = frozenset(
    {
        "USER",
        "ROLE",
        "DATABASE ROLE",
        "NETWORK POLICY",
        "NETWORK RULE",
        "STORAGE INTEGRATION",
        "API INTEGRATION",
        "SECURITY INTEGRATION",
        "NOTIFICATION INTEGRATION",
        "EXTERNAL ACCESS INTEGRATION",
        "INTEGRATION",
        "SHARE",
        "SECRET",
        "ACCOUNT",
        "PASSWORD POLICY",
        "SESSION POLICY",
        "AUTHENTICATION POLICY",
        "MASKING POLICY",
        "ROW ACCESS POLICY",
    }
)

# Characters that render as nothing or reorder text: refused anywhere, strings included, so a
# preview cannot show a human something other than what runs (Trojan Source).
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Cc", "Co", "Cs", "Cn"})
_ALLOWED_CONTROLS = frozenset({"\t", "\n", "\r"})
_SHOW_COMMAND_SAFE = re.compile(r"^[A-Za-z0-9_\s.,'%=()\"$-]*$")

# A table name DuckDB would read as a file (a replacement scan): a path, or a name with a file
# extension. Local mode also refuses any name part holding characters no demo table has.
_PATH_LIKE = re.compile(
    r"[/\\]|\.(?:csv|tsv|txt|tbl|dat|parquet|json|jsonl|ndjson|arrow|ipc|feather|avro|orc|xlsx?|db|duckdb|"
    r"sqlite3?|gz|gzip|zst|bz2|xz|lz4|zip|tar)\b",
    re.IGNORECASE,
)
_LOCAL_NAME_PART = re.compile(r"[\w $-]*")
_LOCAL_MODE_HINT = (
    "the local demo warehouse runs only standard Snowflake scalar, aggregate, window, JSON and date functions "
    "and FLATTEN/GENERATOR/SPLIT_TO_TABLE; configure a Snowflake account (SOPHIA_SNOWFLAKE_ACCOUNT) for the rest"
)


class SqlRefused(Exception):
    """The statement parsed but a rule forbids it; `rule` is a stable name for the rule."""

    def __init__(self, rule: str, message: str, kind: StatementKind | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.kind = kind


class SqlSyntaxError(Exception):
    """The statement could not be parsed; position is 1-based line and column."""

    def __init__(self, message: str, line: int | None, column: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


@dataclass(frozen=True)
class GuardedStatement:
    """One checked statement: its kind, the exact text that will run, and what it touches."""

    kind: StatementKind
    sql: str
    tables: tuple[str, ...] = ()
    tree: exp.Expr | None = field(default=None, compare=False, repr=False)

    @property
    def is_read(self) -> bool:
        return self.kind in READ_KINDS

    @property
    def pageable(self) -> bool:
        """Whether LIMIT/OFFSET can be applied to it (queries, not SHOW/DESCRIBE/EXPLAIN)."""
        return self.tree is not None and isinstance(self.tree, exp.Query)


def parse_statement(sql: str, *, local: bool = False) -> GuardedStatement:
    """Parse and classify exactly one statement; raise SqlSyntaxError or SqlRefused.

    `local` is the local demo warehouse (DuckDB under fakesnow): only allow-listed functions run.
    """
    try:
        return _parse_cached(sql, local)
    except RecursionError:
        raise SqlRefused("too_complex", "The statement nests too deeply to check; simplify it.") from None


# Paging repeats the same text for every page: parse it once. Refusals are raised, never cached;
# the cached tree is never mutated (page_sql works on a copy).
@functools.lru_cache(maxsize=256)
def _parse_cached(sql: str, local: bool) -> GuardedStatement:
    return _parse_statement(sql, local)


def _parse_statement(sql: str, local: bool) -> GuardedStatement:
    _screen_characters(sql)
    try:
        parsed = sqlglot.parse(sql, read=DIALECT)
    except ParseError as error:
        first = error.errors[0] if error.errors else {}
        raise SqlSyntaxError(
            str(first.get("description") or "invalid SQL"), first.get("line"), first.get("col")
        ) from None
    except TokenError as error:
        raise SqlSyntaxError(f"cannot tokenize the statement: {error}", None, None) from None
    except SqlglotError as error:
        raise SqlSyntaxError(f"cannot parse the statement: {error}", None, None) from None
    statements = [s for s in parsed if s is not None and not isinstance(s, exp.Semicolon)]
    if not statements:
        raise SqlRefused("empty_statement", "The SQL text holds no statement; send exactly one statement.")
    if len(statements) > 1:
        raise SqlRefused(
            "multiple_statements",
            f"The SQL text holds {len(statements)} statements; send exactly one statement per call.",
        )
    return _classify(statements[0], local)


def authorise(
    statement: GuardedStatement,
    role: str,
    *,
    read_tool: bool,
    permissions: Mapping[str, Iterable[StatementKind]] | None = None,
    admin_dangerous_kinds: Iterable[StatementKind] = (),
) -> None:
    """Raise SqlRefused unless `role` may run `statement` through the read or the write tool."""
    kind = statement.kind
    if read_tool:
        if kind not in READ_KINDS:
            raise SqlRefused(
                "read_tool_reads_only",
                f"snowflake_query runs reads only (SELECT, SHOW, DESCRIBE, EXPLAIN); this is {kind.value}. "
                "Use snowflake_execute for writes.",
                kind,
            )
        allowed = _permissions_for(role, permissions)
        if kind not in allowed:
            raise SqlRefused("role_not_allowed", f"Role {role} may not run {kind.value} statements.", kind)
        return
    if kind in READ_KINDS:
        raise SqlRefused(
            "execute_is_for_writes", f"{kind.value} is a read: run it with snowflake_query.", kind
        )
    if kind in DANGEROUS_KINDS:
        if role == "admin" and kind in set(admin_dangerous_kinds):
            return
        raise SqlRefused(
            "never_allowed",
            f"{kind.value} statements are never run through this server "
            "(an admin can enable a kind with SOPHIA_SNOWFLAKE_ADMIN_DANGEROUS_KINDS).",
            kind,
        )
    if kind not in _permissions_for(role, permissions):
        raise SqlRefused(
            "role_not_allowed",
            f"Role {role} may not run {kind.value} statements "
            "(permissions are set by SOPHIA_SNOWFLAKE_STATEMENT_PERMISSIONS).",
            kind,
        )


def page_sql(statement: GuardedStatement, offset: int, limit: int) -> str:
    """The statement's SQL restricted to rows [offset, offset + limit), from the checked tree."""
    if not statement.pageable or statement.tree is None:
        return statement.sql
    tree = statement.tree.copy()
    if isinstance(tree, exp.Select) and not tree.args.get("offset"):
        existing = tree.args.get("limit")
        if existing is None:
            return _render(tree.limit(limit, copy=False).offset(offset, copy=False) if offset else tree.limit(limit))
        if isinstance(existing, exp.Limit) and _int_literal(existing.expression) is not None:
            cap = _int_literal(existing.expression) or 0
            remaining = max(0, cap - offset)
            tree.set("limit", None)
            tree = tree.limit(min(limit, remaining), copy=False)
            return _render(tree.offset(offset, copy=False) if offset else tree)
    if isinstance(tree, exp.Select) and isinstance(tree.args.get("offset"), exp.Offset):
        existing_limit = tree.args.get("limit")
        start = _int_literal(tree.args["offset"].expression)
        end = _int_literal(existing_limit.expression) if isinstance(existing_limit, exp.Limit) else None
        if start is not None and (existing_limit is None or end is not None):
            remaining = limit if end is None else max(0, min(limit, end - offset))
            tree.set("limit", None)
            tree.set("offset", None)
            return _render(tree.limit(remaining, copy=False).offset(start + offset, copy=False))
    wrapped = exp.select("*").from_(exp.Subquery(this=tree, alias=exp.TableAlias(this=exp.to_identifier("q"))))
    wrapped = wrapped.limit(limit, copy=False)
    return _render(wrapped.offset(offset, copy=False) if offset else wrapped)


def explain_sql(statement: GuardedStatement) -> str:
    """EXPLAIN of a checked query, as JSON (Snowflake's machine-readable plan)."""
    return f"EXPLAIN USING JSON {statement.sql}"


def _permissions_for(role: str, permissions: Mapping[str, Iterable[StatementKind]] | None) -> frozenset[StatementKind]:
    table = permissions if permissions is not None else DEFAULT_PERMISSIONS
    return frozenset(table.get(role, ()))


def _int_literal(node: exp.Expr | None) -> int | None:
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return int(node.this)
        except ValueError:
            return None
    return None


def _render(tree: exp.Expr) -> str:
    return tree.sql(dialect=DIALECT, comments=False)


def _screen_characters(sql: str) -> None:
    for position, char in enumerate(sql):
        if char in _ALLOWED_CONTROLS:
            continue
        if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
            raise SqlRefused(
                "invisible_character",
                f"Character U+{ord(char):04X} at offset {position} is invisible or reorders text; remove it.",
            )
    if sql.isascii():
        return
    try:
        tokens = sqlglot.tokenize(sql, read=DIALECT)
    except TokenError as error:
        raise SqlSyntaxError(f"cannot tokenize the statement: {error}", None, None) from None
    quoted_types = {
        sqlglot.TokenType.STRING,
        sqlglot.TokenType.IDENTIFIER,
        sqlglot.TokenType.RAW_STRING,
        sqlglot.TokenType.NATIONAL_STRING,
        sqlglot.TokenType.HEREDOC_STRING,
    }
    quoted = [(token.start, token.end) for token in tokens if token.token_type in quoted_types]
    for position, char in enumerate(sql):
        if char.isascii() or any(start <= position <= end for start, end in quoted):
            continue
        line = sql.count("\n", 0, position) + 1
        raise SqlRefused(
            "lookalike_character",
            f"Non-ASCII character U+{ord(char):04X} at line {line} outside a string or quoted identifier; "
            "keywords, bare names, whitespace and comments must be plain ASCII (quote unusual names).",
        )


def _classify(tree: exp.Expr, local: bool) -> GuardedStatement:
    if isinstance(tree, exp.Command):
        return _classify_command(tree, local)
    # Functions and table sources are checked in every statement kind (SHOW … IN f(), DESCRIBE
    # of a query, CREATE … AS SELECT, INSERT … SELECT), before the kind decides anything else.
    # File transfers name stages and files by design: their kind is refused unless an admin
    # enabled it, and then their sources are what the admin asked for.
    sources = not isinstance(tree, (exp.Copy, exp.Put, exp.ListStage))
    for node in tree.walk():
        _check_node(node, local, sources=sources)
    if isinstance(tree, exp.Query):
        _check_read_tree(tree)
        return GuardedStatement(StatementKind.SELECT, _render(tree), _tables(tree), tree)
    if isinstance(tree, exp.Show):
        return GuardedStatement(StatementKind.SHOW, _render(tree), (), tree)
    if isinstance(tree, exp.Describe):
        return GuardedStatement(StatementKind.DESCRIBE, _render(tree), _tables(tree), tree)
    dml = {exp.Insert: StatementKind.INSERT, exp.MultitableInserts: StatementKind.INSERT}
    dml.update({exp.Update: StatementKind.UPDATE, exp.Delete: StatementKind.DELETE, exp.Merge: StatementKind.MERGE})
    for node_type, kind in dml.items():
        if isinstance(tree, node_type):
            _check_no_dangerous_inside(tree)
            return GuardedStatement(kind, _render(tree), _tables(tree), tree)
    if isinstance(tree, (exp.Put, exp.ListStage)):
        return _refusable(StatementKind.FILE_TRANSFER, tree)
    if isinstance(tree, exp.Copy):
        return _refusable(StatementKind.COPY, tree)
    if isinstance(tree, (exp.Transaction, exp.Commit, exp.Rollback)):
        return _refusable(StatementKind.TRANSACTION, tree)
    if isinstance(tree, exp.Use):
        return _refusable(StatementKind.USE, tree)
    if isinstance(tree, exp.Set):
        return _refusable(StatementKind.SET, tree)
    if isinstance(tree, (exp.Grant, exp.Revoke)):
        return GuardedStatement(StatementKind.GRANT, _render(tree), (), tree)
    if isinstance(tree, exp.Alter):
        kind_name = str(tree.args.get("kind") or "").upper()
        if kind_name == "SESSION":
            return _refusable(StatementKind.ALTER_SESSION, tree)
        if kind_name in _SECURITY_CREATE_KINDS:
            return _refusable(StatementKind.SECURITY, tree)
        return GuardedStatement(StatementKind.DDL, _render(tree), _tables(tree), tree)
    if isinstance(tree, (exp.Create, exp.Drop)):
        kind_name = str(tree.args.get("kind") or "").upper()
        if kind_name in _SECURITY_CREATE_KINDS:
            return _refusable(StatementKind.SECURITY, tree)
        if isinstance(tree, exp.Create):
            _check_no_dangerous_inside(tree)
        return GuardedStatement(StatementKind.DDL, _render(tree), _tables(tree), tree)
    if isinstance(tree, (exp.TruncateTable, exp.Comment, exp.Undrop)):
        return GuardedStatement(StatementKind.DDL, _render(tree), _tables(tree), tree)
    raise SqlRefused(
        "unknown_statement",
        f"Unrecognised statement ({type(tree).__name__}); only known statement kinds are run.",
    )


def _refusable(kind: StatementKind, tree: exp.Expr) -> GuardedStatement:
    return GuardedStatement(kind, _render(tree), (), tree)


def _classify_command(tree: exp.Command, local: bool) -> GuardedStatement:
    """sqlglot falls back to Command for syntax it does not model; classify by its first words."""
    name = tree.name.upper()
    body = tree.expression
    if isinstance(body, exp.Literal):
        rest = str(body.this)
    elif isinstance(body, exp.Expr):
        rest = body.sql(dialect=DIALECT)
    else:
        rest = str(body or "")
    words = rest.split()
    first = words[0].upper() if words else ""
    raw = f"{name} {rest}".strip()
    if name == "EXPLAIN":
        inner_text = re.sub(r"^\s*USING\s+(?:TABULAR|JSON|TEXT)\b", "", rest, flags=re.IGNORECASE)
        inner = _parse_statement(inner_text, local)
        if inner.kind is not StatementKind.SELECT:
            raise SqlRefused(
                "explain_reads_only", f"EXPLAIN is accepted for queries only; this explains {inner.kind.value}."
            )
        return GuardedStatement(StatementKind.EXPLAIN, explain_sql(inner), inner.tables, inner.tree)
    _check_command_calls(raw)
    if name == "SHOW":
        # Rendered from raw text (sqlglot has no tree for it): accept only plain words, names,
        # patterns and quoted strings, never comments or statement separators.
        if not _SHOW_COMMAND_SAFE.fullmatch(rest) or "--" in rest:
            raise SqlRefused("unsafe_show", "This SHOW form holds characters not accepted; use a plain SHOW.")
        return GuardedStatement(StatementKind.SHOW, raw)
    if name in {"GET", "REMOVE", "RM", "PUT", "LIST", "LS"}:
        return GuardedStatement(StatementKind.FILE_TRANSFER, raw)
    if name == "CALL":
        return GuardedStatement(StatementKind.CALL, raw)
    if name == "EXECUTE":
        return GuardedStatement(StatementKind.EXECUTE, raw)
    if name in {"BEGIN", "DECLARE", "LET", "RETURN", "IF", "FOR", "WHILE", "REPEAT", "LOOP", "CASE"}:
        return GuardedStatement(StatementKind.SCRIPTING, raw)
    if name in {"START", "COMMIT", "ROLLBACK", "END", "ABORT"}:
        return GuardedStatement(StatementKind.TRANSACTION, raw)
    if name in {"UNSET", "SET"}:
        return GuardedStatement(StatementKind.SET, raw)
    if name == "USE":
        return GuardedStatement(StatementKind.USE, raw)
    if name in {"CREATE", "ALTER", "DROP", "UNDROP"}:
        if name == "ALTER" and first == "ACCOUNT":
            return GuardedStatement(StatementKind.ALTER_ACCOUNT, raw)
        if name == "ALTER" and first == "SESSION":
            return GuardedStatement(StatementKind.ALTER_SESSION, raw)
        if _SECURITY_OBJECTS.match(rest):
            return GuardedStatement(StatementKind.SECURITY, raw)
        if "$$" in rest or re.search(r"\b(?:PROCEDURE|FUNCTION|TASK)\b", rest, re.IGNORECASE):
            return GuardedStatement(StatementKind.SCRIPTING, raw)
        return GuardedStatement(StatementKind.DDL, raw)
    if name in {"GRANT", "REVOKE"}:
        return GuardedStatement(StatementKind.GRANT, raw)
    raise SqlRefused("unknown_statement", f"Unrecognised statement {name}; only known statement kinds are run.")


def _check_read_tree(tree: exp.Expr) -> None:
    for node in tree.walk():
        if isinstance(node, _WRITE_NODES):
            raise SqlRefused(
                "write_inside_read",
                f"The query contains a {type(node).__name__.upper()} part; a read may not change anything.",
                StatementKind.SELECT,
            )
        if isinstance(node, exp.Select) and node.args.get("locks"):
            raise SqlRefused("locking_read", "SELECT … FOR UPDATE takes locks; remove the FOR UPDATE clause.")


def _check_no_dangerous_inside(tree: exp.Expr) -> None:
    for node in tree.walk():
        if node is not tree and isinstance(node, (exp.Command, exp.Copy, exp.Put, exp.Transaction, exp.Use)):
            raise SqlRefused("nested_statement", "The statement embeds another statement; send it on its own.")


def _check_node(node: exp.Expr, local: bool, *, sources: bool) -> None:
    if isinstance(node, exp.Table) and sources:
        _check_table_source(node, local)
    elif isinstance(node, exp.DynamicIdentifier):
        _check_identifier_call(node, local)
    if isinstance(node, exp.Func):
        _check_function(node, local)


def _check_table_source(table: exp.Table, local: bool) -> None:
    source = table.this
    if source is None:
        return
    if source.sql(dialect=DIALECT).startswith("@"):
        raise SqlRefused(
            "stage_access", "Reading files from a stage (@...) is not allowed; query tables and views.",
            StatementKind.FILE_TRANSFER,
        )
    if isinstance(source, exp.Literal) and source.is_string:
        _refuse_path(str(source.this), local)
    for part in (table.args.get("catalog"), table.args.get("db"), source):
        if isinstance(part, exp.Identifier):
            _check_name_part(part.name, local)


def _check_identifier_call(node: exp.DynamicIdentifier, local: bool) -> None:
    argument = node.this
    if isinstance(argument, exp.Literal) and argument.is_string:
        name = str(argument.this)
        if _PATH_LIKE.search(name) or (local and not all(_LOCAL_NAME_PART.fullmatch(p) for p in name.split("."))):
            _refuse_path(name, local)
    elif local:
        raise SqlRefused(
            "dynamic_identifier", "On the local demo warehouse IDENTIFIER() takes a quoted literal name, e.g. "
            "IDENTIFIER('orders'); write the name out."
        )


def _check_name_part(name: str, local: bool) -> None:
    if _PATH_LIKE.search(name) or (local and not _LOCAL_NAME_PART.fullmatch(name)):
        _refuse_path(name, local)


def _refuse_path(path: str, local: bool) -> NoReturn:
    shown = path if len(path) <= 80 else path[:77] + "..."
    where = "the demo tables" if local else "tables and views"
    raise SqlRefused(
        "file_access",
        f"{shown!r} names a file, not a table: this server never reads files through the warehouse. "
        f"Query {where} by name instead (snowflake_list_tables lists them).",
        StatementKind.FILE_TRANSFER,
    )


def _function_names(node: exp.Func) -> tuple[str, ...]:
    if type(node).__name__ in NAMED_CALL_CLASSES:
        return (node.name.upper(),)
    return tuple(name.upper() for name in type(node).sql_names())


def _check_function(node: exp.Func, local: bool) -> None:
    names = _function_names(node)
    shown = names[0] if names and names[0] else type(node).__name__.upper()
    for name in names:
        if name.startswith("SYSTEM$") and name not in READ_ONLY_SYSTEM_FUNCTIONS:
            raise SqlRefused(
                "side_effect_function", f"{name} can change state or send data out; it is not allowed in statements."
            )
        _refuse_by_name(name, local)
    if not local:
        return
    if type(node).__name__ in NAMED_CALL_CLASSES:
        allowed = shown in LOCAL_NAMED_FUNCTIONS
    else:
        allowed = type(node).__name__ in LOCAL_ALLOWED_TYPED
    if not allowed:
        raise SqlRefused(
            "function_not_allowed_locally",
            f"{shown[:80]} is not on the local demo warehouse's allow-list: {_LOCAL_MODE_HINT}.",
        )


def _refuse_by_name(name: str, local: bool) -> None:
    reason = refusal_reason(name)
    if reason is None:
        return
    shown = name[:80]
    if reason in (FILES, STAGE_FILES):
        where = "the demo tables" if local else "tables and views"
        raise SqlRefused(
            "file_access",
            f"{shown} {reason}: this server never reads files through the warehouse. "
            f"Query {where} by name instead (snowflake_list_tables lists them).",
            StatementKind.FILE_TRANSFER,
        )
    raise SqlRefused("forbidden_function", f"{shown} {reason}, so it is refused in every statement; remove it.")


def _check_command_calls(raw: str) -> None:
    """In text sqlglot did not model, refuse every call of a refused function (NAME followed by '(')."""
    try:
        tokens = sqlglot.tokenize(raw, read=DIALECT)
    except TokenError as error:
        raise SqlSyntaxError(f"cannot tokenize the statement: {error}", None, None) from None
    for token, following in itertools.pairwise(tokens):
        if following.token_type is sqlglot.TokenType.L_PAREN and token.token_type not in _NOT_NAMES:
            name = token.text.upper()
            if name.startswith("SYSTEM$") and name not in READ_ONLY_SYSTEM_FUNCTIONS:
                raise SqlRefused(
                    "side_effect_function",
                    f"{name[:80]} can change state or send data out; it is not allowed in statements.",
                )
            _refuse_by_name(name, local=False)


_NOT_NAMES = frozenset({sqlglot.TokenType.STRING, sqlglot.TokenType.NUMBER, sqlglot.TokenType.L_PAREN})


def _tables(tree: exp.Expr) -> tuple[str, ...]:
    ctes = {cte.alias_or_name.upper() for cte in tree.find_all(exp.CTE)}
    names: list[str] = []
    for table in tree.find_all(exp.Table):
        name = ".".join(part for part in (table.catalog, table.db, table.name) if part)
        if name and name.upper() not in ctes and name not in names:
            names.append(name)
    return tuple(names[:20])
