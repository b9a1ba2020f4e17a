"""Function inventories: every table function of DuckDB (the local warehouse) and of Snowflake is classified.

An engine or sqlglot upgrade that brings a function nobody classified fails here, so it is reviewed
before the guard meets it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sophia_snowflake.policy import SqlRefused, SqlSyntaxError, authorise, parse_statement
from sophia_snowflake.sql_functions import (
    DUCKDB_TABLE_FUNCTIONS,
    LOCAL_ALLOWED_TYPED,
    LOCAL_NAMED_FUNCTIONS,
    LOCAL_REFUSED_TYPED,
    NAMED_CALL_CLASSES,
    SNOWFLAKE_TABLE_FUNCTIONS,
    duckdb_table_function_verdict,
    refusal_reason,
)
from sqlglot import exp

SNOWFLAKE_LIST = Path(__file__).parent / "data" / "snowflake_table_functions.txt"


def _duckdb_functions(kinds: tuple[str, ...]) -> list[str]:
    import duckdb

    # The same DuckDB (version and built-in extensions) fakesnow runs on, asked directly.
    connection = duckdb.connect(":memory:")
    try:
        placeholders = ", ".join("?" for _ in kinds)
        query = f"select distinct function_name from duckdb_functions() where function_type in ({placeholders})"
        rows = connection.execute(query + " order by 1", list(kinds)).fetchall()
    finally:
        connection.close()
    return [str(name) for (name,) in rows]


DUCKDB_TABLE_NAMES = _duckdb_functions(("table", "table_macro"))


def _refusal_rule(sql: str, *, local: bool) -> str | None:
    """The guard's rule refusing `sql`, or None (a syntax error is not a rule: arity is not ours)."""
    try:
        authorise(parse_statement(sql, local=local), "admin", read_tool=True)
    except SqlRefused as refused:
        return refused.rule
    except SqlSyntaxError:
        return None
    return None


def _refused(sql: str, *, local: bool) -> bool:
    try:
        authorise(parse_statement(sql, local=local), "admin", read_tool=True)
    except (SqlRefused, SqlSyntaxError):
        return True
    return False


def test_the_duckdb_inventory_is_the_real_engine() -> None:
    assert len(DUCKDB_TABLE_NAMES) > 50
    assert {"read_text", "read_csv", "glob", "duckdb_settings", "range"} <= set(DUCKDB_TABLE_NAMES)


def test_every_duckdb_table_function_is_classified() -> None:
    unclassified = [name for name in DUCKDB_TABLE_NAMES if duckdb_table_function_verdict(name) is None]
    assert unclassified == [], (
        f"DuckDB has table functions nobody classified: {unclassified}; add each to "
        "sophia_snowflake.sql_functions.DUCKDB_TABLE_FUNCTIONS (allowed or refused, with the reason)"
    )


@pytest.mark.parametrize("name", DUCKDB_TABLE_NAMES)
def test_each_duckdb_table_function_meets_its_verdict_in_the_guard(name: str) -> None:
    verdict = duckdb_table_function_verdict(name)
    assert verdict is not None
    quoted = f'select * from "{name}"(1)'  # quoted: the name reaches the guard exactly as DuckDB knows it
    if verdict.allowed:
        assert name.upper() in LOCAL_NAMED_FUNCTIONS
        assert refusal_reason(name) is None
        assert _refusal_rule(f"select * from {name}(1, 2)", local=True) is None
    else:
        assert refusal_reason(name) is not None, f"{name} is classified refused but not refused by name"
        for local in (False, True):
            assert _refused(quoted, local=local)
            assert _refused(f"select * from {name.upper()}(1)", local=local)
            assert _refused(f"with t as (select * from {name}(1)) select * from t", local=local)


def test_no_stale_duckdb_classifications() -> None:
    # a name that left DuckDB stays classified only if it is still refused by name (harmless), so
    # the allowed side never grows beyond what the engine has
    stale_allowed = [n for n, v in DUCKDB_TABLE_FUNCTIONS.items() if v.allowed and n not in DUCKDB_TABLE_NAMES]
    assert stale_allowed == []


def test_duckdb_scalars_that_read_settings_or_files_are_refused_by_name() -> None:
    scalars = set(_duckdb_functions(("scalar", "macro", "aggregate")))
    for name in ("current_setting", "setseed", "getvariable", "write_log", "sleep_ms", "json_serialize_sql"):
        if name in scalars:
            assert refusal_reason(name) is not None, name
            assert _refused(f"select {name}('x')", local=False)


def test_the_snowflake_list_is_fully_classified() -> None:
    lines = [line.strip() for line in SNOWFLAKE_LIST.read_text().splitlines()]
    names = [line for line in lines if line and not line.startswith("#")]
    assert len(names) == len(set(names)) and len(names) > 50
    unclassified = [name for name in names if name not in SNOWFLAKE_TABLE_FUNCTIONS]
    assert unclassified == [], f"classify these in SNOWFLAKE_TABLE_FUNCTIONS: {unclassified}"
    assert set(SNOWFLAKE_TABLE_FUNCTIONS) <= set(names), "keep the data file and the classification in step"


@pytest.mark.parametrize("name", sorted(SNOWFLAKE_TABLE_FUNCTIONS))
def test_each_snowflake_table_function_meets_its_verdict_in_account_mode(name: str) -> None:
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    verdict = SNOWFLAKE_TABLE_FUNCTIONS[name]
    sql = f"select * from table(information_schema.{name}())"
    assert _refused(sql, local=False) is not verdict.allowed, (name, verdict)
    # in local mode nothing refused anywhere runs, and metadata fakesnow lacks is not on the list
    if not verdict.allowed:
        assert _refused(sql, local=True)


def test_every_sqlglot_function_class_is_classified() -> None:
    classes: set[str] = set()
    pending: list[type[exp.Func]] = [exp.Func]
    while pending:
        for subclass in pending.pop().__subclasses__():
            classes.add(subclass.__name__)
            pending.append(subclass)
    known = LOCAL_ALLOWED_TYPED | set(LOCAL_REFUSED_TYPED) | NAMED_CALL_CLASSES
    assert sorted(classes - known) == [], "sqlglot has function classes nobody classified (sql_functions.py)"
    assert not (LOCAL_ALLOWED_TYPED & set(LOCAL_REFUSED_TYPED))
    # typed classes whose names are refused everywhere are never on the local allow-list
    for name in LOCAL_ALLOWED_TYPED:
        cls = getattr(exp, name, None)
        if cls is not None:
            assert all(refusal_reason(sql_name) is None for sql_name in cls.sql_names()), name
