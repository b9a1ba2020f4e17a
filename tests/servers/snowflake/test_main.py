"""`sophia-snowflake` end to end: spawned over stdio with the real SDK client, and `check`, against fakesnow."""

from __future__ import annotations

import os
import subprocess
import sys

import anyio
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from sophia_shared.testing import error_code, structured

from .conftest import FakesnowServer

COMMAND = [sys.executable, "-m", "sophia_snowflake"]

# list_every_tool: these tests are about the whole catalogue, not about who may see which tool.
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("list_every_tool")]


def _env(server: FakesnowServer | None, database: str = "SHOP", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPHIA_SNOWFLAKE_")}
    if server is not None:
        env.update(
            SOPHIA_SNOWFLAKE_ACCOUNT="fakesnow", SOPHIA_SNOWFLAKE_USER="e2e", SOPHIA_SNOWFLAKE_PASSWORD="e2e-pass",
            SOPHIA_SNOWFLAKE_HOST=server.host, SOPHIA_SNOWFLAKE_PORT=str(server.port),
            SOPHIA_SNOWFLAKE_PROTOCOL="http", SOPHIA_SNOWFLAKE_DATABASE=database, SOPHIA_SNOWFLAKE_SCHEMA="PUBLIC",
        )
    env.update(extra)
    return env


@pytest.mark.anyio
async def test_stdio_lists_tools_and_queries(fakesnow_server: FakesnowServer, shop_database: str) -> None:
    params = StdioServerParameters(
        command=COMMAND[0], args=COMMAND[1:], env=_env(fakesnow_server, shop_database, SOPHIA_STDIO_ROLE="viewer")
    )
    with anyio.fail_after(60):
        async with Client(params) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            result = await client.call_tool("snowflake_query", {"sql": "select count(*) as n from orders"})
            write = await client.call_tool("snowflake_query", {"sql": "delete from orders"})
    assert names == {
        "snowflake_query", "snowflake_execute", "snowflake_list_databases", "snowflake_list_schemas",
        "snowflake_list_tables", "snowflake_describe_table", "snowflake_sample_table", "snowflake_explain",
        "snowflake_cancel",
    }
    assert structured(result)["rows"] == [[400]]
    assert error_code(write) == "forbidden"


def test_check_logs_in_and_reports(fakesnow_server: FakesnowServer, shop_database: str) -> None:
    ok = subprocess.run(
        [*COMMAND, "check"], capture_output=True, text=True, timeout=120, env=_env(fakesnow_server, shop_database),
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "ok: Snowflake account fakesnow" in ok.stdout and str(fakesnow_server.port) in ok.stdout
    assert "e2e-pass" not in ok.stdout + ok.stderr


def test_start_up_imports_no_heavy_library() -> None:
    """initialize and tools/list must not wait for the connector, sqlglot or fakesnow."""
    probe = (
        "import sys, sophia_snowflake.__main__ as m; "
        "from sophia_snowflake.settings import SnowflakeSettings; from sophia_snowflake.tools import build_server; "
        "build_server(SnowflakeSettings(account='a', user='u', password='p')); "
        "print([n for n in ('snowflake.connector', 'sqlglot', 'fakesnow', 'pyarrow') if n in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
