"""Every tool of every server against 10,000 argument sets per server generated from its input schema.

In memory through the SDK client (the request path is the same one the transports feed): valid
sets from the schema, the same with hostile values swapped in (wrong types, huge and deep values,
control characters), required keys dropped and unknown keys added. Every call must come back as a
result or a tool error with a stable code; none may crash the tool (`internal`), leak a traceback,
or leave the server unable to answer the next call. The caller is an admin so every tool's own
validation runs (destructive tools stop at confirmation: no generated call can hold a valid token).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

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

from .hostile import argument_sets

SERVERS = ["memory", "snowflake", "docker", "pulumi", "gong", "retool"]
CALLS_PER_EXAMPLE = 25
EXAMPLES = int(__import__("os").environ.get("FUZZ_EX", "400"))  # 10,000 argument sets per server
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
        assert code in CODES, (tool, code, text[:300], {k: str(v)[:80] for k, v in arguments.items()})


@pytest.mark.parametrize("name", SERVERS)
def test_generated_argument_sets_get_a_result_or_a_coded_error(
    name: str, sophia_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOPHIA_DOCKER_HOST", f"unix://{sophia_home}/no-docker.sock")
    server = _server(name)
    admin = Principal("fuzz", Role.ADMIN, kind="test")
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(
        connect(server, principal=admin)
    ) as client:
        tools = portal.call(client.list_tools)
        calls = st.sampled_from(tools).flatmap(
            lambda tool: st.tuples(st.just(tool.name), argument_sets(tool.input_schema)))
        made = 0

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(st.lists(calls, min_size=CALLS_PER_EXAMPLE, max_size=CALLS_PER_EXAMPLE))
        def batch(generated: list[tuple[str, dict[str, Any]]]) -> None:
            nonlocal made
            for tool, arguments in generated:
                check_answer(tool, arguments, portal.call(client.call, tool, arguments))
                made += 1

        batch()
        listed = portal.call(client.list_tools)
    assert made >= 10_000
    assert [t.name for t in listed] == [t.name for t in tools]
