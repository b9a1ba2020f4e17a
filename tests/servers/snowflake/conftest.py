"""Real-system fixtures: one fakesnow server per test session, reached by the real connector over HTTP."""

from __future__ import annotations

import re
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sophia_snowflake.local import demo_statements
from sophia_snowflake.settings import SnowflakeSettings

SHOP = "SHOP"  # the demo dataset, seeded once per session through the real connector


@dataclass(frozen=True)
class FakesnowServer:
    host: str
    port: int
    pid: int


def _drain(stream: Any) -> None:
    # fakesnow logs every request; an undrained pipe would block the server once it fills.
    for _ in iter(stream.readline, b""):
        pass


@pytest.fixture(scope="session")
def fakesnow_server() -> Iterator[FakesnowServer]:
    """`fakesnow -s` on a free loopback port, stopped by its PID at the end of the session."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fakesnow", "-s", "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, bufsize=0,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    port = None
    seen: list[str] = []
    while port is None:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([process.stderr], [], [], max(0.0, remaining))
        if not ready:
            process.kill()
            process.wait()
            pytest.fail(f"fakesnow did not start within 60 s: {seen[-5:]}")
        line = process.stderr.readline().decode("utf-8", "replace")
        if not line:
            pytest.fail(f"fakesnow exited with {process.wait()}: {seen[-5:]}")
        seen.append(line)
        found = re.search(r"running on http://127\.0\.0\.1:(\d+)", line)
        if found:
            port = int(found.group(1))
    threading.Thread(target=_drain, args=(process.stderr,), daemon=True).start()
    try:
        yield FakesnowServer("127.0.0.1", port, process.pid)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def settings_for(server: FakesnowServer, database: str, **overrides: Any) -> SnowflakeSettings:
    """Settings pointing the real connector at the fakesnow server, as at a real account."""
    values: dict[str, Any] = {
        "account": "fakesnow", "user": "tester", "password": "fake", "host": server.host, "port": server.port,
        "protocol": "http", "database": database, "schema_name": "PUBLIC", "login_timeout_s": 10,
    }
    values.update(overrides)
    return SnowflakeSettings(**values)


@pytest.fixture(scope="session")
def shop_database(fakesnow_server: FakesnowServer) -> str:
    """The demo dataset in database SHOP, loaded once through the real connector."""
    import snowflake.connector

    connection = snowflake.connector.connect(
        account="fakesnow", user="seed", password="fake", host=fakesnow_server.host, port=fakesnow_server.port,
        protocol="http", database=SHOP, schema="PUBLIC",
    )
    try:
        cursor = connection.cursor()
        for statement in demo_statements(SHOP, "PUBLIC"):
            cursor.execute(statement)
    finally:
        connection.close()
    return SHOP


@pytest.fixture
def shop_settings(fakesnow_server: FakesnowServer, shop_database: str) -> SnowflakeSettings:
    return settings_for(fakesnow_server, shop_database)


@pytest.fixture
def scratch_settings(fakesnow_server: FakesnowServer) -> SnowflakeSettings:
    """A database of its own for a test that writes."""
    return settings_for(fakesnow_server, f"SCRATCH_{uuid.uuid4().hex[:10].upper()}")
