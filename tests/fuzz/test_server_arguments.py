"""Every tool of every server against argument sets generated from its input schema (TARGET per server).

In memory through the SDK client (the request path is the same one the transports feed): valid
sets from the schema, the same with hostile values swapped in (wrong types, huge and deep values,
control characters), required keys dropped and unknown keys added. Every call must come back as a
result or a tool error with a stable code; none may crash the tool (`internal`), leak a traceback,
or leave the server unable to answer the next call. The caller is an admin so every tool's own
validation runs (destructive tools stop at confirmation: no generated call can hold a valid token).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp.types import CallToolResult
from sophia_shared.auth import Principal, Role
from sophia_shared.cli import BUILDERS
from sophia_shared.errors import ErrorCode
from sophia_shared.server import SophiaServer
from sophia_shared.testing import connect, error_code

from .hostile import argument_sets, variants

SERVERS = ["memory", "snowflake", "docker", "pulumi", "gong", "retool"]
SETS_PER_EXAMPLE = 5
# Argument sets per server (generated sets and their hostile variants). The figure is
# 10,000, the default (SOPHIA_FUZZ_ARGUMENT_SETS lowers it for a quick local run): about 15-30 s per
# server on 2 cores through the whole request path, audit record included.
TARGET = int(os.environ.get("SOPHIA_FUZZ_ARGUMENT_SETS", "10000"))
EXAMPLES = max(10, TARGET // 80)  # each generated set makes 29-90 argument sets
CALL_S = 60.0  # a bound on one call, never an expectation: a call still running then is a hang
CODES = {code.value for code in ErrorCode} - {ErrorCode.INTERNAL.value}


def _server(name: str) -> SophiaServer:
    importlib.import_module(f"sophia_{name}.__main__")
    server = BUILDERS[name]()
    assert isinstance(server, SophiaServer)
    return server


def check_answer(tool: str, arguments: dict[str, Any], result: Any) -> None:
    assert isinstance(result, CallToolResult), (tool, type(result))
    text = " ".join(getattr(block, "text", "") for block in result.content)
    assert "Traceback" not in text, (tool, text[:300])
    if result.is_error:
        code = error_code(result)
        assert code in CODES, (tool, code, text[:300], _short(arguments))


def _short(arguments: dict[str, Any]) -> dict[str, str]:
    return {k[:40]: str(v)[:80] for k, v in arguments.items()}


@pytest.mark.parametrize("name", SERVERS)
def test_generated_argument_sets_get_a_result_or_a_coded_error(
    name: str, sophia_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOPHIA_DOCKER_HOST", f"unix://{sophia_home}/no-docker.sock")
    # Every tool, including those an unconfigured server hides: they must answer not_configured.
    monkeypatch.setenv("SOPHIA_LIST_ALL_TOOLS", "1")
    server = _server(name)
    admin = Principal("fuzz", Role.ADMIN, kind="test")
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(
        connect(server, principal=admin)
    ) as client:
        tools = portal.call(client.list_tools)
        schemas = {tool.name: tool.input_schema for tool in tools}
        # One strategy per tool, built once (building them per draw made generation the bottleneck).
        calls = st.one_of([st.tuples(st.just(name), argument_sets(schema)) for name, schema in schemas.items()])
        made = 0

        async def bounded_calls(planned: list[tuple[str, dict[str, Any]]]) -> list[Any]:
            """Each call in turn, bounded; a hang is returned as its TimeoutError, to fail with its arguments."""
            answers: list[Any] = []
            for tool, arguments in planned:
                try:
                    with anyio.fail_after(CALL_S):
                        answers.append(await client.call(tool, arguments))
                except TimeoutError as hung:
                    answers.append(hung)
                    break
            return answers

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(st.lists(calls, min_size=SETS_PER_EXAMPLE, max_size=SETS_PER_EXAMPLE))
        def batch(generated: list[tuple[str, dict[str, Any]]]) -> None:
            nonlocal made
            planned = [(tool, arguments) for tool, base in generated for arguments in variants(base, schemas[tool])]
            planned = planned[: max(0, TARGET - made)]
            # One hop into the portal's loop per example, not per call: the calls still run one at a time,
            # and each answer is checked against its own arguments.
            for (tool, arguments), result in zip(planned, portal.call(bounded_calls, planned), strict=False):
                if isinstance(result, TimeoutError):
                    pytest.fail(f"{tool} did not answer within {CALL_S} s: {_short(arguments)}")
                check_answer(tool, arguments, result)
                made += 1

        batch()
        listed = portal.call(client.list_tools)
    assert made >= TARGET
    assert [t.name for t in listed] == [t.name for t in tools]
