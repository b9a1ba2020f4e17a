"""Argument filling by each parameter's JSON schema: only what the sentence states, the rest missing."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sophia_agent.router.arguments import fill, schema_types
from sophia_agent.router.tools import RoutableTool

TODAY = dt.date(2026, 12, 2)


def tool(name: str, properties: dict[str, Any], required: list[str] | None = None) -> RoutableTool:
    return RoutableTool(name, "", {"type": "object", "properties": properties, "required": required or []})


CONTAINER = {"type": "string", "pattern": r"^/?[A-Za-z0-9][A-Za-z0-9_.-]*$", "maxLength": 128}
LOGS = tool("docker_container_logs", {"container": CONTAINER, "tail": {"type": ["integer", "null"], "minimum": 1,
                                                                        "maximum": 1000}}, ["container"])


def test_a_name_after_the_word_for_the_parameter_and_a_number_after_its_own_word() -> None:
    assert fill(LOGS, "tail 50 lines of the logs of container web-1") == ({"container": "web-1", "tail": 50}, [])


def test_a_quote_right_after_the_word_for_the_parameter_is_its_value() -> None:
    delete = tool("demo_delete", {"item": {"type": "string"}, "reason": {"type": "string"}}, ["item"])
    assert fill(delete, 'Delete the item "db backup"') == ({"item": "db backup"}, [])
    assert fill(delete, "delete item named 'old logs' for reason 'disk full'") == (
        {"item": "old logs", "reason": "disk full"}, [])
    # A quote that follows no parameter's word is left for free-text parameters only.
    assert fill(delete, '"db backup" is what to delete') == ({}, ["item"])


def test_the_word_before_the_noun_names_it_too() -> None:
    assert fill(LOGS, "show me the logs of the api container")[0] == {"container": "api"}


def test_a_required_value_the_sentence_does_not_give_is_missing_not_guessed() -> None:
    assert fill(LOGS, "show me the logs") == ({}, ["container"])


def test_values_outside_the_schema_bounds_are_not_taken() -> None:
    arguments, missing = fill(LOGS, "last 5000 lines of container -bad")
    assert "tail" not in arguments  # above its maximum
    assert missing == ["container"]  # "-bad" does not match the pattern


def test_a_bare_id_is_the_id_of_what_the_tool_is_about() -> None:
    delete = tool("memory_delete", {"id": {"type": "string"}}, ["id"])
    assert fill(delete, "delete memory 42") == ({"id": "42"}, [])
    call = tool("gong_get_call", {"call_id": {"type": "string", "pattern": "^[0-9]{1,30}$"}}, ["call_id"])
    assert fill(call, "details of call 7782342274025937895")[0] == {"call_id": "7782342274025937895"}


def test_enum_values_are_taken_when_the_sentence_names_them() -> None:
    grant = tool("grant", {"object_type": {"type": "string", "enum": ["app", "folder", "resource"]},
                           "access_level": {"type": "string", "enum": ["use", "edit", "own"]}},
                 ["object_type", "access_level"])
    assert fill(grant, "give the team edit rights on the Finance folder") == (
        {"object_type": "folder", "access_level": "edit"}, [])
    assert fill(grant, "give the team rights") == ({}, ["object_type", "access_level"])


def test_quoted_text_fills_free_text_parameters_and_sql_is_read_from_its_first_keyword() -> None:
    search = tool("memory_search", {"query": {"type": "string"}}, ["query"])
    assert fill(search, 'search my notes for "migration plan"') == ({"query": "migration plan"}, [])
    query = tool("snowflake_query", {"sql": {"type": "string"}}, ["sql"])
    assert fill(query, "please run select count(*) from orders")[0] == {"sql": "select count(*) from orders"}
    assert fill(query, 'run "select 1" now')[0] == {"sql": "select 1"}


def test_email_and_dates() -> None:
    invite = tool("invite", {"email": {"type": "string", "format": "email"}}, ["email"])
    assert fill(invite, "invite jane.doe@example.com to retool") == ({"email": "jane.doe@example.com"}, [])
    calls = tool("calls", {"from_date": {"type": "string", "format": "date"}})
    assert fill(calls, "calls since 2026-11-01", today=TODAY)[0] == {"from_date": "2026-11-01"}
    assert fill(calls, "calls from yesterday", today=TODAY)[0] == {"from_date": "2026-12-01"}


def test_bfcl_type_spellings_and_nullable_unions() -> None:
    assert schema_types({"type": "float"}) == {"number"}
    assert schema_types({"type": "dict"}) == {"object"}
    assert schema_types({"anyOf": [{"type": "integer"}, {"type": "null"}]}) == {"integer"}
    unit = {"type": "string", "enum": ["celsius", "fahrenheit"]}
    weather = tool("weather", {"days": {"type": "integer"}, "unit": unit, "precise": {"type": "boolean"}})
    assert fill(weather, "forecast for the next days 3 in celsius") == ({"days": 3, "unit": "celsius"}, [])


def test_a_hostile_schema_cannot_break_filling() -> None:
    odd = tool("odd", {"a": {"type": "string", "pattern": "(unclosed"}, "b": {"type": 7}, "c": "not a schema"},
               ["a", "b", "c"])
    arguments, missing = fill(odd, "a value b 3")
    assert "c" in missing  # not a property the router knows how to read
    assert set(arguments) <= {"a", "b"}
