"""The demo warehouse is a sandbox (issue 14): no file, settings or engine access through it.

Three layers, each tested on its own:
- the statement guard refuses file, glob, scan, settings and session functions by name in both
  modes, and in local mode runs only allow-listed functions (the attack and legitimate corpora);
- the real tool, through the real connector, refuses every attack with `forbidden` and answers
  every legitimate read, against the local warehouse (local mode) and against a fakesnow server
  standing in for an account (account mode: only the guard protects; that engine is unlocked);
- the local warehouse's engine refuses file reads itself when the guard is bypassed (a raw
  connector session), and its process holds no secret from the server's environment.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from sophia_shared.errors import Forbidden
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect, error_code, error_data, error_of
from sophia_snowflake.client import SnowflakeClient
from sophia_snowflake.local import CHILD_ENVIRONMENT_NAMES, RESULTS_KEPT, LocalWarehouse
from sophia_snowflake.policy import SqlRefused, SqlSyntaxError, authorise, parse_statement
from sophia_snowflake.settings import SnowflakeSettings
from sophia_snowflake.tools import build_server

from .sandbox_corpus import DEMO_ANALYTICS, FILE_AND_ENGINE_ATTACKS, FILE_AND_ENGINE_STATEMENTS
from .test_policy import ALLOWED_READS, REFUSED_BY_READ_TOOL

ADMIN = Principal("ada", Role.ADMIN, kind="test")
VIEWER = Principal("vera", Role.VIEWER, kind="test")
MODES = [pytest.param(False, id="account"), pytest.param(True, id="local")]


@pytest.fixture(autouse=True)
def _quiet_sqlglot() -> Iterator[None]:
    # sqlglot warns on every statement it falls back to a Command for; the corpus has many.
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


# -- the guard ------------------------------------------------------------------------------


@pytest.mark.parametrize("local", MODES)
@pytest.mark.parametrize(("sql", "rule"), FILE_AND_ENGINE_ATTACKS)
def test_file_and_engine_functions_are_refused_by_name(sql: str, rule: str | None, local: bool) -> None:
    with pytest.raises((SqlRefused, SqlSyntaxError)) as refused:
        authorise(parse_statement(sql, local=local), "admin", read_tool=True)
    if rule is None:
        assert isinstance(refused.value, SqlSyntaxError)
    else:
        assert isinstance(refused.value, SqlRefused) and refused.value.rule == rule, refused.value


@pytest.mark.parametrize("local", MODES)
@pytest.mark.parametrize("sql", FILE_AND_ENGINE_STATEMENTS)
def test_file_and_engine_statements_are_refused_by_both_tools(sql: str, local: bool) -> None:
    for read_tool in (True, False):
        with pytest.raises((SqlRefused, SqlSyntaxError)):
            authorise(parse_statement(sql, local=local), "admin", read_tool=read_tool)


def test_a_file_read_says_what_to_do_instead() -> None:
    for sql in ("SELECT content FROM read_text('/proc/self/environ')", "select * from '/etc/passwd'"):
        with pytest.raises(SqlRefused) as refused:
            parse_statement(sql, local=True)
        assert refused.value.rule == "file_access"
        assert "snowflake_list_tables" in refused.value.message and "demo tables" in refused.value.message


@pytest.mark.parametrize("sql", ALLOWED_READS + DEMO_ANALYTICS)
def test_legitimate_reads_pass_the_local_allow_list(sql: str) -> None:
    statement = parse_statement(sql, local=True)
    authorise(statement, "viewer", read_tool=True)
    assert statement.is_read


@pytest.mark.parametrize(
    "sql",
    [
        "select version()",
        "select * from orders where current_query() like '%'",
        "select bar(5, 0, 10)",
        "select list_value(1, 2)",
        "select * from range(3) r, lateral (select uuidv7())",
        "select enum_range(null::varchar)",
    ],
)
def test_local_mode_refuses_functions_off_the_allow_list(sql: str) -> None:
    with pytest.raises(SqlRefused) as refused:
        parse_statement(sql, local=True)
    assert refused.value.rule == "function_not_allowed_locally"
    assert "SOPHIA_SNOWFLAKE_ACCOUNT" in refused.value.message
    parse_statement(sql, local=False)  # an account runs its own catalogue


# -- the real tool, both modes --------------------------------------------------------------


def _local_settings(monkeypatch: pytest.MonkeyPatch) -> SnowflakeSettings:
    for name in list(os.environ):
        if name.startswith("SOPHIA_SNOWFLAKE_"):
            monkeypatch.delenv(name)
    settings = SnowflakeSettings(login_timeout_s=60)
    assert settings.is_local
    return settings


async def _run_corpus(settings: SnowflakeSettings) -> dict[str, Any]:
    """Every attack and every legitimate read through snowflake_query, as an admin."""
    attacks = [sql for sql, _ in FILE_AND_ENGINE_ATTACKS] + FILE_AND_ENGINE_STATEMENTS + REFUSED_BY_READ_TOOL
    passed: list[str] = []
    not_forbidden: list[tuple[str, str | None]] = []
    legit_refused: list[tuple[str, str]] = []
    analytics_failed: list[tuple[str, str | None]] = []
    server = build_server(settings)
    async with connect(server, principal=ADMIN) as client:
        with anyio.fail_after(600):
            for sql in attacks:
                result = await client.call("snowflake_query", {"sql": sql, "max_rows": 5})
                code = error_code(result)
                if code is None:
                    passed.append(sql)
                elif code not in {"forbidden", "invalid_argument"}:
                    not_forbidden.append((sql, code))
            for sql in ALLOWED_READS:
                result = await client.call("snowflake_query", {"sql": sql, "max_rows": 5})
                # The engine may not have an object or function a legitimate read names (fakesnow
                # is not Snowflake); what must never happen is the guard refusing it.
                if error_code(result) == "forbidden":
                    legit_refused.append((sql, str(error_data(result).get("rule"))))
            for sql in DEMO_ANALYTICS:
                result = await client.call("snowflake_query", {"sql": sql, "max_rows": 5})
                if error_code(result) is not None:
                    analytics_failed.append((sql, error_code(result)))
            sanity = await client.call("snowflake_query", {"sql": "select count(*) from orders"})
    return {
        "attacks": len(attacks), "passed": passed, "not_forbidden": not_forbidden,
        "legit": len(ALLOWED_READS) + len(DEMO_ANALYTICS), "legit_refused": legit_refused,
        "analytics_failed": analytics_failed, "sanity": sanity,
    }


@pytest.mark.anyio
@pytest.mark.integration
async def test_the_corpus_through_the_real_tool_in_local_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = await _run_corpus(_local_settings(monkeypatch))
    assert outcome["passed"] == [] and outcome["not_forbidden"] == []
    assert outcome["legit_refused"] == [] and outcome["analytics_failed"] == []
    assert error_code(outcome["sanity"]) is None
    print(f"local mode: {outcome['attacks']}/{outcome['attacks']} attacks refused, "
          f"{len(outcome['legit_refused'])}/{outcome['legit']} legitimate reads refused")


@pytest.mark.anyio
@pytest.mark.integration
async def test_the_corpus_through_the_real_tool_in_account_mode(shop_settings: SnowflakeSettings) -> None:
    # Account mode against fakesnow: the engine behind it is NOT locked, so only the guard stands
    # between these attacks and the test machine's files.
    outcome = await _run_corpus(shop_settings)
    assert outcome["passed"] == [] and outcome["not_forbidden"] == []
    assert outcome["legit_refused"] == [] and outcome["analytics_failed"] == []
    assert error_code(outcome["sanity"]) is None
    print(f"account mode: {outcome['attacks']}/{outcome['attacks']} attacks refused, "
          f"{len(outcome['legit_refused'])}/{outcome['legit']} legitimate reads refused")


# -- the engine and the process -------------------------------------------------------------


@pytest.fixture(scope="module")
def warehouse() -> Iterator[LocalWarehouse]:
    """The local warehouse child, started with a secret in the parent's environment."""
    os.environ["SOPHIA_SANDBOX_TEST_SECRET"] = "s3cr3t-never-in-the-child"
    local = LocalWarehouse(timeout_s=120)
    try:
        local.ensure_started()
    finally:
        del os.environ["SOPHIA_SANDBOX_TEST_SECRET"]
    yield local
    local.stop()


def _raw_connection(port: int, **extra: Any) -> Any:
    import snowflake.connector

    return snowflake.connector.connect(
        account="fakesnow", user="raw", password="raw", host="127.0.0.1", port=port, protocol="http",
        login_timeout=60, network_timeout=60, **extra,
    )


ENGINE_ATTACKS = [
    "SELECT content FROM read_text('/proc/self/environ')",
    "SELECT * FROM read_csv('/etc/passwd', header=false)",
    "select * from read_blob('/etc/hostname')",
    "select * from read_text('/etc/*')",  # a glob pattern (sqlglot cannot parse glob() for fakesnow)
    "select * from '/etc/passwd'",
    'select * from "/etc/hostname.csv"',
    "select * from parquet_scan('/tmp/x.parquet')",
]


@pytest.mark.integration
def test_the_engine_refuses_file_reads_when_the_guard_is_bypassed(warehouse: LocalWarehouse) -> None:
    import snowflake.connector

    assert warehouse.port is not None
    shared = _raw_connection(warehouse.port, database="DEMO", schema="PUBLIC")
    # a login may ask fakesnow for a database of its own: it is locked the same way
    isolated = _raw_connection(warehouse.port, database="ELSEWHERE", schema="PUBLIC",
                               session_parameters={"FAKESNOW_DB_PATH": ":isolated:"})
    try:
        for connection in (shared, isolated):
            cursor = connection.cursor()
            for sql in ENGINE_ATTACKS:
                with pytest.raises(snowflake.connector.errors.ProgrammingError) as refused:
                    cursor.execute(sql)
                assert refused.value.errno in {3001, 2003}, (sql, refused.value)
                assert "s3cr3t" not in str(refused.value)
            # DuckDB's own switches cannot be turned back on (fakesnow keeps Snowflake's SET as a
            # session variable; the DuckDB setting is what current_setting reports)
            cursor.execute("SET enable_external_access = true")
            cursor.execute("select current_setting('enable_external_access')")
            assert cursor.fetchone() == (False,)
            cursor.execute("select current_setting('lock_configuration')")
            assert cursor.fetchone() == (True,)
            cursor.execute("select current_setting('memory_limit')")
            limit = cursor.fetchone()
            assert limit is not None and str(limit[0]).replace(" ", "").upper() in {"1GB", "953.6MIB", "1000.0MB"}
        cursor = shared.cursor()
        cursor.execute("select count(*) from orders")
        assert cursor.fetchone() == (400,)
    finally:
        shared.close()
        isolated.close()


@pytest.mark.integration
def test_an_engine_refusal_is_answered_not_retried(warehouse: LocalWarehouse) -> None:
    import snowflake.connector

    assert warehouse.port is not None
    connection = _raw_connection(warehouse.port, database="DEMO", schema="PUBLIC")
    try:
        cursor = connection.cursor()
        # a DuckDB error fakesnow does not map (a bad conversion) is a statement error, not HTTP 500
        with pytest.raises(snowflake.connector.errors.ProgrammingError):
            cursor.execute("select 'abc'::integer")
        cursor.execute("select 1")
        assert cursor.fetchone() == (1,)
    finally:
        connection.close()


@pytest.mark.integration
def test_the_warehouse_keeps_only_the_latest_results(warehouse: LocalWarehouse) -> None:
    import snowflake.connector

    assert warehouse.port is not None
    connection = _raw_connection(warehouse.port, database="DEMO", schema="PUBLIC")
    try:
        cursor = connection.cursor()
        cursor.execute("select 'first'")
        first = cursor.sfqid
        cursor.execute(f"select * from table(result_scan('{first}'))")
        assert cursor.fetchone() == ("first",)
        for n in range(RESULTS_KEPT):
            cursor.execute(f"select {n}")
        # fakesnow kept every result for RESULT_SCAN, forever; the sandbox keeps the latest ones
        with pytest.raises(snowflake.connector.errors.ProgrammingError):
            cursor.execute(f"select * from table(result_scan('{first}'))")
    finally:
        connection.close()


@pytest.mark.integration
def test_the_warehouse_process_gets_only_the_environment_it_needs(warehouse: LocalWarehouse) -> None:
    process = warehouse._process
    assert process is not None
    with open(f"/proc/{process.pid}/environ", "rb") as environ:
        entries = [entry for entry in environ.read().split(b"\0") if entry]
    names = {entry.split(b"=", 1)[0].decode() for entry in entries}
    assert names <= set(CHILD_ENVIRONMENT_NAMES)
    assert not any(b"s3cr3t" in entry for entry in entries)
    assert not any(name.startswith("SOPHIA_") for name in names)


@pytest.mark.anyio
@pytest.mark.integration
async def test_an_engine_refusal_through_the_tool_is_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the engine refuses reaches the caller as `forbidden` with what to do (guard aside)."""
    settings = _local_settings(monkeypatch)
    sf = SnowflakeClient(settings)
    try:
        with anyio.fail_after(180):
            columns, rows = await sf.rows(
                "select count(*) from orders", None, principal="p", correlation_id="c", tool="t", limit=1
            )
            assert rows == [(400,)]
            with pytest.raises(Forbidden) as refused:
                await sf.rows("SELECT content FROM read_text('/proc/self/environ')", None,
                              principal="p", correlation_id="c", tool="t", limit=1)
    finally:
        sf.close()
    assert "snowflake_list_tables" in str(refused.value)
    assert columns[0].type.startswith("NUMBER")


@pytest.mark.anyio
@pytest.mark.integration
async def test_the_review_attacks_are_forbidden_for_a_viewer_in_local_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    server = build_server(_local_settings(monkeypatch))
    async with connect(server, principal=VIEWER) as client:
        with anyio.fail_after(180):
            results = [
                await client.call("snowflake_query", {"sql": sql})
                for sql in ("SELECT content FROM read_text('/proc/self/environ')",
                            "SELECT * FROM read_csv('/etc/shadow', header=false)",
                            "SELECT * FROM read_blob('/root/.sophia/memory/memory.db')")
            ]
            results.append(await client.call("snowflake_describe_table", {"table": '"/etc/passwd"'}))
            results.append(await client.call("snowflake_sample_table", {"table": '"/etc/hostname.csv"'}))
    for result in results:
        assert error_code(result) == "forbidden"
        assert error_data(result)["rule"] == "file_access"
        assert "snowflake_list_tables" in error_of(result)["message"]
