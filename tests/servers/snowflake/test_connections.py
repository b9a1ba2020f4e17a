"""The user's own Snowflake connections (connections.toml / config.toml), against the fakesnow server.

The files are laid out as the Snowflake CLI and connector write them under SNOWFLAKE_HOME; the
connection they name is the session's fakesnow server, reached through the real connector.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import ValidationError
from servers.snowflake.conftest import FakesnowServer
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect, structured
from sophia_snowflake.settings import SnowflakeSettings
from sophia_snowflake.tools import build_server

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def _connection(fakesnow: FakesnowServer, database: str) -> str:
    return (
        f'account = "fakesnow"\nuser = "someone"\npassword = "anything"\nhost = "127.0.0.1"\n'
        f'port = {fakesnow.port}\nprotocol = "http"\ndatabase = "{database}"\nschema = "PUBLIC"\n'
    )


@pytest.fixture
def snowflake_home() -> Path:
    home = Path(os.environ["SNOWFLAKE_HOME"])  # the suite conftest's empty, per-test directory
    home.mkdir(parents=True)
    return home


async def _count_customers(settings: SnowflakeSettings) -> dict[str, Any]:
    with anyio.fail_after(60):
        async with connect(build_server(settings), principal=Principal("t", Role.VIEWER, kind="test")) as client:
            result = await client.call("snowflake_query", {"sql": "select count(*) as n from customers"})
    assert not result.is_error, result.content
    return structured(result)


async def test_a_named_connection_of_connections_toml(
    fakesnow_server: FakesnowServer, shop_database: str, snowflake_home: Path
) -> None:
    (snowflake_home / "connections.toml").write_text(
        "[other]\naccount = \"nowhere\"\nuser = \"x\"\n\n[shop]\n" + _connection(fakesnow_server, shop_database)
    )
    (snowflake_home / "connections.toml").chmod(0o600)
    settings = SnowflakeSettings(connection_name="shop")
    assert not settings.is_local
    data = await _count_customers(settings)
    assert data["local"] is False and data["rows"] == [[data["rows"][0][0]]] and data["rows"][0][0] > 0
    assert data["source"] == f"Snowflake account fakesnow (connection 'shop' of {snowflake_home}/connections.toml)"
    with anyio.fail_after(60):
        async with connect(build_server(settings), principal=Principal("t", Role.VIEWER, kind="test")) as client:
            tables = structured(await client.call("snowflake_list_tables", {}))
    assert tables["source"] == data["source"] and tables["local"] is False


async def test_the_default_connection_is_used_without_any_setting(
    fakesnow_server: FakesnowServer, shop_database: str, snowflake_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (snowflake_home / "config.toml").write_text(
        'default_connection_name = "work"\n\n[connections.work]\n' + _connection(fakesnow_server, shop_database)
    )
    assert SnowflakeSettings().file_connection is not None
    data = await _count_customers(SnowflakeSettings())
    assert "connection 'work' of" in str(data["source"]) and str(data["source"]).endswith("config.toml)")
    # SNOWFLAKE_DEFAULT_CONNECTION_NAME wins over config.toml, as in the connector.
    monkeypatch.setenv("SNOWFLAKE_DEFAULT_CONNECTION_NAME", "missing")
    assert SnowflakeSettings().is_local


def test_no_files_means_the_labelled_demo_warehouse_and_a_wrong_name_fails_at_start(snowflake_home: Path) -> None:
    assert SnowflakeSettings().is_local
    (snowflake_home / "connections.toml").write_text('[dev]\naccount = "acme"\nuser = "me"\n')
    with pytest.raises(ValidationError, match=r"CONNECTION_NAME='prod' is not a connection .*known: dev"):
        SnowflakeSettings(connection_name="prod")
    (snowflake_home / "connections.toml").write_text("[dev\n")
    with pytest.raises(ValidationError, match=r"connections\.toml is not valid TOML"):
        SnowflakeSettings()
    # An account set here wins: the files are not read.
    assert SnowflakeSettings(account="acme", user="me").file_connection is None
