"""Every tool end to end: the in-memory SDK client → SophiaServer → real connector → fakesnow server."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect, error_code, error_data, error_of, structured
from sophia_snowflake.settings import SnowflakeSettings
from sophia_snowflake.tools import build_server

# list_every_tool: these tests are about the whole catalogue, not about who may see which tool.
pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.usefixtures("list_every_tool")]

VIEWER = Principal("vera", Role.VIEWER, kind="test")
DEVOPS = Principal("dmitri", Role.DEVOPS, kind="test")
ADMIN = Principal("ada", Role.ADMIN, kind="test")
# The catalogue needs no warehouse: building the server never connects.
OFFLINE = SnowflakeSettings(account="offline", user="u", password="p")


async def test_every_tool_declares_role_and_all_annotations() -> None:
    server = build_server(OFFLINE)
    with anyio.fail_after(10):
        async with connect(server) as client:
            tools = await client.list_tools()
    assert len(tools) == 9
    for tool in tools:
        hints = tool.annotations
        assert hints is not None, tool.name
        for hint in (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint, hints.open_world_hint):
            assert hint is not None, tool.name
        assert tool.meta is not None and tool.meta["sophia"]["role"] in {"viewer", "devops"}
        assert tool.description and tool.output_schema, tool.name
    by_name = {t.name: t for t in tools}
    assert {n for n, t in by_name.items() if t.meta and t.meta["sophia"].get("confirm")} == {"snowflake_execute"}
    assert by_name["snowflake_execute"].meta == {"sophia": {"role": "devops", "confirm": True}}
    read_only = {n for n, t in by_name.items() if t.annotations and t.annotations.read_only_hint}
    assert read_only == set(by_name) - {"snowflake_execute", "snowflake_cancel"}


async def test_read_only_mode_hides_writes() -> None:
    server = build_server(OFFLINE.model_copy(update={"read_only": True}))
    with anyio.fail_after(10):
        async with connect(server, principal=ADMIN) as client:
            names = {t.name for t in await client.list_tools()}
            refused = await client.call("snowflake_execute", {"sql": "delete from t"})
    assert "snowflake_execute" not in names and "snowflake_cancel" not in names and "snowflake_query" in names
    assert error_code(refused) == "forbidden"


async def test_query_returns_typed_json_safe_rows(shop_settings: SnowflakeSettings) -> None:
    server = build_server(shop_settings)
    async with connect(server, principal=VIEWER) as client:
        with anyio.fail_after(30):
            result = await client.call(
                "snowflake_query",
                {"sql": "select id, ordered_at, total, details, status from orders where id <= 3 order by id"},
            )
    assert not result.is_error, result.content
    data = structured(result)
    assert [c["name"] for c in data["columns"]] == ["ID", "ORDERED_AT", "TOTAL", "DETAILS", "STATUS"]
    types = {c["name"]: c["type"] for c in data["columns"]}
    assert types["TOTAL"] == "NUMBER(12,2)" and types["ORDERED_AT"] == "DATE" and types["DETAILS"] == "VARIANT"
    assert [row[0] for row in data["rows"]] == [1, 2, 3]
    first = data["rows"][0]
    assert isinstance(first[1], str) and first[1].count("-") == 2  # ISO date
    assert all(isinstance(row[2], float) for row in data["rows"])  # NUMBER(12,2): JSON numbers only
    assert isinstance(first[3], dict) and set(first[3]) == {"channel", "lines"}  # VARIANT parsed
    assert data["truncated"] is False and data["next_cursor"] is None
    assert data["local"] is False and data["kind"] == "select"


async def test_a_numeric_column_has_one_json_type(shop_settings: SnowflakeSettings) -> None:
    """NUMBER(12,2) came back as ints and strings mixed; now each numeric column is all numbers, or all
    exact decimal text when one value would not survive a double, and its json_type says which."""
    server = build_server(shop_settings)
    sql = (
        "select total, id, column1 as big, column2 as cents from orders, "
        "(select * from values (1::number(38,0), 0.10::number(20,2)), "
        "(9007199254740993::number(38,0), 2.50::number(20,2))) order by id limit 20"
    )
    async with connect(server, principal=VIEWER) as client:
        with anyio.fail_after(30):
            result = await client.call("snowflake_query", {"sql": sql})
    assert not result.is_error, result.content
    data = structured(result)
    kinds = {c["name"]: c["json_type"] for c in data["columns"]}
    assert kinds == {"TOTAL": "number", "ID": "number", "BIG": "string", "CENTS": "number"}
    columns = list(zip(*data["rows"], strict=True))
    assert all(isinstance(v, float) for v in columns[0] if v is not None)  # scale 2: numbers, never "12.50"
    assert all(type(v) is int for v in columns[1])
    assert set(columns[2]) == {"1", "9007199254740993"}  # one too big for a double: all text
    assert set(columns[3]) == {0.1, 2.5}


async def test_paging_walks_the_whole_result_with_cursors(shop_settings: SnowflakeSettings) -> None:
    sql = "select seq4() as n from table(generator(rowcount => 250)) order by n"
    server = build_server(shop_settings)
    seen: list[int] = []
    pages = 0
    async with connect(server, principal=VIEWER) as client:
        cursor: str | None = None
        with anyio.fail_after(60):
            while True:
                args: dict[str, Any] = {"sql": sql, "max_rows": 100}
                if cursor:
                    args["cursor"] = cursor
                result = await client.call("snowflake_query", args)
                assert not result.is_error, result.content
                data = structured(result)
                assert data["offset"] == len(seen)
                seen.extend(row[0] for row in data["rows"])
                pages += 1
                cursor = data["next_cursor"]
                if cursor is None:
                    assert data["truncated"] is False
                    break
                assert data["truncated"] is True
    assert pages == 3
    assert seen == list(range(250))


async def test_show_results_page_too(shop_settings: SnowflakeSettings) -> None:
    server = build_server(shop_settings)
    async with connect(server, principal=VIEWER) as client:
        with anyio.fail_after(30):
            first = structured(await client.call("snowflake_query", {"sql": "show tables", "max_rows": 2}))
            second = structured(await client.call(
                "snowflake_query", {"sql": "show tables", "max_rows": 2, "cursor": first["next_cursor"]}
            ))
    name = [c["name"] for c in first["columns"]].index("name")
    assert first["kind"] == "show" and first["row_count"] == 2 and first["truncated"] is True
    assert second["offset"] == 2
    assert {r[name] for r in first["rows"]}.isdisjoint(r[name] for r in second["rows"])


async def test_a_cursor_is_bound_to_its_statement_and_principal(shop_settings: SnowflakeSettings) -> None:
    server = build_server(shop_settings)
    async with connect(server, principal=VIEWER) as client:
        with anyio.fail_after(30):
            first = structured(await client.call("snowflake_query", {"sql": "select id from customers order by id",
                                                                     "max_rows": 5}))
            cursor = first["next_cursor"]
            assert cursor
            other_sql = await client.call("snowflake_query", {"sql": "select id from orders", "cursor": cursor})
            other_user = await client.call(
                "snowflake_query", {"sql": "select id from customers order by id", "cursor": cursor},
                principal=Principal("eve", Role.VIEWER, kind="test"),
            )
            forged = await client.call(
                "snowflake_query", {"sql": "select id from customers order by id", "cursor": cursor[:-3] + "AAA"}
            )
    assert error_code(other_sql) == "invalid_argument"
    assert error_code(other_user) == "invalid_argument"
    assert error_code(forged) == "invalid_argument"


async def test_pages_are_cut_by_size_and_say_so(shop_settings: SnowflakeSettings) -> None:
    server = build_server(shop_settings)
    async with connect(server, principal=VIEWER) as client:
        with anyio.fail_after(30):
            result = await client.call(
                "snowflake_query", {"sql": "select * from orders order by id", "max_rows": 400, "max_chars": 2000}
            )
            data = structured(result)
            assert data["truncated"] is True and data["next_cursor"]
            assert 0 < data["row_count"] < 400
            follow = structured(
                await client.call("snowflake_query", {"sql": "select * from orders order by id", "max_rows": 400,
                                                      "max_chars": 2000, "cursor": data["next_cursor"]})
            )
    assert follow["offset"] == data["row_count"]
    assert follow["rows"][0][0] == data["rows"][-1][0] + 1


async def test_a_full_page_stays_under_the_server_result_cap(shop_settings: SnowflakeSettings) -> None:
    settings = shop_settings.model_copy(update={"max_result_chars": 8_000})
    server = build_server(settings)
    sql = "select * from order_items order by order_id, product_id"
    async with connect(server, principal=VIEWER) as client:
        with anyio.fail_after(30):
            result = await client.call("snowflake_query", {"sql": sql, "max_rows": 5_000})
    assert not result.is_error, result.content
    data = structured(result)
    assert data["truncated"] is True and data["next_cursor"]
    assert 50 < data["row_count"] < 998
    text = sum(len(getattr(c, "text", "")) for c in result.content)
    assert 4_000 < text <= 8_000
    assert text == len(json.dumps(data, ensure_ascii=False, separators=(",", ":")))


@pytest.mark.parametrize(
    "sql",
    [
        "insert into customers values (999, 'x', 'DE', 'smb', '2025-01-01')",
        "with x as (delete from customers returning *) select * from x",
        "select 1; delete from customers",
        "delete /* select */ from customers",
        "copy into @s from customers",
        "call cleanup()",
        "alter session set multi_statement_count = 0",
        "commit",
    ],
)
async def test_the_read_tool_refuses_writes_even_for_admins(shop_settings: SnowflakeSettings, sql: str) -> None:
    server = build_server(shop_settings)
    async with connect(server, principal=ADMIN) as client:
        with anyio.fail_after(30):
            result = await client.call("snowflake_query", {"sql": sql})
            count = structured(await client.call("snowflake_query", {"sql": "select count(*) from customers"}))
    assert error_code(result) == "forbidden"
    assert error_data(result)["rule"]
    assert count["rows"] == [[50]]


async def test_syntax_errors_carry_position_and_parser_message(shop_settings: SnowflakeSettings) -> None:
    server = build_server(shop_settings)
    async with connect(server, principal=VIEWER) as client:
        with anyio.fail_after(30):
            result = await client.call("snowflake_query", {"sql": "select id,\n  from where customers"})
    assert error_code(result) == "invalid_argument"
    data = error_data(result)
    assert data["line"] == 2 and data["column"] >= 1
    assert "line 2" in error_of(result)["message"]


async def test_unknown_objects_are_named(shop_settings: SnowflakeSettings) -> None:
    server = build_server(shop_settings)
    async with connect(server, principal=VIEWER) as client:
        with anyio.fail_after(30):
            query = await client.call("snowflake_query", {"sql": "select * from no_such_table"})
            described = await client.call("snowflake_describe_table", {"table": "no_such_table"})
    assert error_code(query) == "not_found"
    assert "NO_SUCH_TABLE" in error_of(query)["message"]
    assert error_code(described) == "not_found"


async def test_execute_needs_confirmation_then_writes(scratch_settings: SnowflakeSettings) -> None:
    server = build_server(scratch_settings)
    async with connect(server, principal=ADMIN) as client:
        with anyio.fail_after(60):
            create_sql = "create table notes (id int, body varchar)"
            first = await client.call("snowflake_execute", {"sql": create_sql})
            assert error_code(first) == "confirmation_required"
            token = error_data(first)["confirmation_token"]
            preview = error_data(first)["preview"]
            assert preview["details"]["kind"] == "ddl" and "CREATE TABLE notes" in preview["details"]["statement"]
            created = await client.call("snowflake_execute", {"sql": create_sql, "confirmation_token": token})
            assert not created.is_error, created.content

            insert_sql = "insert into notes values (1, 'hello'), (2, 'world')"
            asked = await client.call("snowflake_execute", {"sql": insert_sql}, principal=DEVOPS)
            assert error_code(asked) == "confirmation_required"
            reused = await client.call(
                "snowflake_execute", {"sql": insert_sql + ", (3, 'x')", "confirmation_token":
                                      error_data(asked)["confirmation_token"]}, principal=DEVOPS,
            )
            assert error_code(reused) == "confirmation_required"  # a token binds the exact statement
            done = await client.call(
                "snowflake_execute", {"sql": insert_sql, "confirmation_token": error_data(asked)["confirmation_token"]},
                principal=DEVOPS,
            )
            assert not done.is_error, done.content
            assert structured(done)["rows_affected"] == 2
            rows = structured(await client.call("snowflake_query", {"sql": "select body from notes order by id"}))
    assert rows["rows"] == [["hello"], ["world"]]


async def test_the_preview_warns_when_every_row_changes(scratch_settings: SnowflakeSettings) -> None:
    server = build_server(scratch_settings)
    async with connect(server, principal=DEVOPS) as client:
        with anyio.fail_after(30):
            everything = await client.call("snowflake_execute", {"sql": "delete from notes"})
            some = await client.call("snowflake_execute", {"sql": "update notes set body = 'x' where id = 1"})
    assert error_code(everything) == "confirmation_required"
    assert error_data(everything)["preview"]["details"]["every_row"] is True
    assert "every row" in error_data(everything)["preview"]["summary"]
    assert error_data(some)["preview"]["details"]["every_row"] is False


async def test_execute_with_elicitation(scratch_settings: SnowflakeSettings) -> None:
    server = build_server(scratch_settings)
    async with connect(server, principal=ADMIN, elicitation="accept") as client:
        with anyio.fail_after(60):
            created = await client.call("snowflake_execute", {"sql": "create table t (a int)"})
            assert not created.is_error, created.content
    async with connect(server, principal=ADMIN, elicitation="decline") as client:
        with anyio.fail_after(60):
            declined = await client.call("snowflake_execute", {"sql": "drop table t"})
            still = await client.call("snowflake_query", {"sql": "select count(*) from t"})
    assert declined.is_error
    assert structured(still)["rows"] == [[0]]


@pytest.mark.parametrize(
    ("principal", "sql", "rule"),
    [
        (DEVOPS, "create table x (a int)", "role_not_allowed"),
        (DEVOPS, "grant select on table customers to role r", "role_not_allowed"),
        (ADMIN, "put file:///etc/passwd @~", "never_allowed"),
        (ADMIN, "copy into @s from customers", "never_allowed"),
        (ADMIN, "execute immediate 'drop table customers'", "never_allowed"),
        (ADMIN, "use role accountadmin", "never_allowed"),
        (ADMIN, "create user mallory", "never_allowed"),
        (ADMIN, "select * from customers", "execute_is_for_writes"),
    ],
)
async def test_execute_refusals(scratch_settings: SnowflakeSettings, principal: Principal, sql: str, rule: str) -> None:
    server = build_server(scratch_settings)
    async with connect(server, principal=principal) as client:
        with anyio.fail_after(30):
            result = await client.call("snowflake_execute", {"sql": sql})
    assert error_code(result) == "forbidden"
    assert error_data(result)["rule"] == rule


async def test_viewers_cannot_execute(scratch_settings: SnowflakeSettings) -> None:
    server = build_server(scratch_settings)
    async with connect(server, principal=VIEWER) as client:
        with anyio.fail_after(30):
            result = await client.call("snowflake_execute", {"sql": "delete from t"})
    assert error_code(result) == "forbidden"


async def test_metadata_tools(shop_settings: SnowflakeSettings) -> None:
    server = build_server(shop_settings)
    async with connect(server, principal=VIEWER) as client:
        with anyio.fail_after(60):
            databases = structured(await client.call("snowflake_list_databases", {}))
            schemas = structured(await client.call("snowflake_list_schemas", {}))
            tables = structured(await client.call("snowflake_list_tables", {"schema": "public"}))
            liked = structured(await client.call("snowflake_list_tables", {"name_like": "ORDER%"}))
            described = structured(await client.call("snowflake_describe_table", {"table": "shop.public.orders"}))
            sample = structured(await client.call("snowflake_sample_table", {"table": "customers", "rows": 5}))
    assert "SHOP" in [d["name"] for d in databases["databases"]]
    assert "PUBLIC" in [s["name"] for s in schemas["schemas"]]
    by_name = {t["name"]: t for t in tables["tables"]}
    assert {"CUSTOMERS", "PRODUCTS", "ORDERS", "ORDER_ITEMS"} <= set(by_name)
    assert by_name["CUSTOMERS"]["row_count"] == 50 and by_name["CUSTOMERS"]["kind"] == "BASE TABLE"
    assert sorted(t["name"] for t in liked["tables"]) == ["ORDERS", "ORDER_ITEMS"]
    columns = {c["name"]: c for c in described["columns"]}
    assert columns["TOTAL"]["type"] == "NUMBER(12,2)" and columns["ID"]["nullable"] is False
    assert sample["row_count"] == 5 and len(sample["columns"]) == 5


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("snowflake_describe_table", {"table": "orders; drop table orders"}),
        ("snowflake_describe_table", {"table": "a.b.c.d"}),
        ("snowflake_sample_table", {"table": "orders where 1=1"}),
        ("snowflake_list_tables", {"schema": "x' or '1'='1"}),
        ("snowflake_list_schemas", {"database": "demo; drop"}),
        ("snowflake_query", {"sql": "select 1", "max_rows": 0}),
        ("snowflake_query", {"sql": ""}),
        ("snowflake_cancel", {"request_id": "not-a-uuid"}),
    ],
)
async def test_bad_arguments_are_refused_clearly(
    shop_settings: SnowflakeSettings, tool: str, args: dict[str, Any]
) -> None:
    server = build_server(shop_settings)
    async with connect(server, principal=VIEWER) as client:
        with anyio.fail_after(30):
            result = await client.call(tool, args)
    assert error_code(result) == "invalid_argument"


async def test_explain_compiles_without_running(shop_settings: SnowflakeSettings) -> None:
    server = build_server(shop_settings)
    async with connect(server, principal=VIEWER) as client:
        with anyio.fail_after(30):
            result = await client.call(
                "snowflake_explain",
                {"sql": "select c.country, sum(o.total) as revenue from orders o join customers c "
                        "on c.id = o.customer_id group by 1 -- by country"},
            )
            refused = await client.call("snowflake_explain", {"sql": "delete from orders"})
    data = structured(result)
    assert [c["name"] for c in data["columns"]] == ["COUNTRY", "REVENUE"]
    assert sorted(data["tables"]) == ["customers", "orders"]
    assert "--" not in data["statement"]
    # fakesnow has no EXPLAIN: the tool says so instead of failing; real Snowflake fills `plan`.
    assert data["plan"] is not None or data["note"]
    assert error_code(refused) == "forbidden"


async def test_progress_names_the_request(shop_settings: SnowflakeSettings) -> None:
    server = build_server(shop_settings)
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    async with connect(server, principal=VIEWER) as client:
        with anyio.fail_after(30):
            result = await client.call("snowflake_query", {"sql": "select 1"}, progress_callback=on_progress)
    request_id = structured(result)["request_id"]
    assert any(request_id in m and "started" in m for m in messages)
    assert any(request_id in m and "done" in m for m in messages)


async def test_cancel_of_an_unknown_statement_is_not_found(shop_settings: SnowflakeSettings) -> None:
    server = build_server(shop_settings)
    async with connect(server, principal=VIEWER) as client:
        with anyio.fail_after(30):
            result = await client.call("snowflake_cancel", {"request_id": "0b0c7f52-5d2e-4a43-9a43-1f6f6f6f6f6f"})
    assert error_code(result) == "not_found"


async def test_cancel_a_running_statement(shop_settings: SnowflakeSettings) -> None:
    """A long statement is cancelled by its request id; the caller's query ends with `conflict`.

    fakesnow answers the connector's abort request but cannot stop DuckDB mid-statement, so the
    statement runs to its end there and the server reports it as cancelled.
    """
    server = build_server(shop_settings)
    started = anyio.Event()
    request_ids: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if message and "started" in message:
            request_ids.append(message.split()[1].rstrip(":"))
            started.set()

    outcome: dict[str, Any] = {}
    async with connect(server, principal=VIEWER) as client:
        async def long_query() -> None:
            outcome["query"] = await client.call(
                "snowflake_query",
                {"sql": "select count(*) from table(generator(rowcount => 300000000)) a"},
                progress_callback=on_progress,
            )

        with anyio.fail_after(120):
            async with anyio.create_task_group() as group:
                group.start_soon(long_query)
                await started.wait()
                other = await client.call("snowflake_cancel", {"request_id": request_ids[0]},
                                          principal=Principal("eve", Role.VIEWER, kind="test"))
                outcome["other"] = other
                outcome["cancel"] = await client.call("snowflake_cancel", {"request_id": request_ids[0]})
    assert error_code(outcome["other"]) == "not_found"  # someone else's statement is invisible
    # The statement is registered before its "started" progress goes out, so the cancel finds it.
    assert structured(outcome["cancel"])["cancelled"] is True
    assert error_code(outcome["query"]) == "conflict"
    assert error_data(outcome["query"])["cancelled"] is True
