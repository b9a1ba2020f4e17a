"""client.py: connection arguments, JSON-safe values, per-principal pools and re-login, against fakesnow."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from sophia_shared.errors import LimitExceeded, Unavailable
from sophia_shared.settings import SettingsError, load_settings
from sophia_snowflake.client import SnowflakeClient, json_safe
from sophia_snowflake.policy import parse_statement
from sophia_snowflake.settings import SnowflakeSettings

from .conftest import FakesnowServer, settings_for


def test_password_settings_map_to_connector_arguments() -> None:
    settings = SnowflakeSettings(
        account="acme-xy12345", user="svc", password="s3cret", warehouse="WH", database="DB", schema_name="SC",
        role="ANALYST", host="acme.example", port=8443, protocol="https", statement_timeout_s=60,
    )
    args = SnowflakeClient(settings).connect_args()
    assert {k: args[k] for k in ("account", "user", "password", "warehouse", "database", "schema", "role")} == {
        "account": "acme-xy12345", "user": "svc", "password": "s3cret", "warehouse": "WH", "database": "DB",
        "schema": "SC", "role": "ANALYST",
    }
    assert (args["host"], args["port"], args["protocol"]) == ("acme.example", 8443, "https")
    params = args["session_parameters"]
    assert params["MULTI_STATEMENT_COUNT"] == 1 and params["STATEMENT_TIMEOUT_IN_SECONDS"] == 60
    assert "authenticator" not in args


def test_key_pair_oauth_and_pat_map_to_authenticators(tmp_path: Path) -> None:
    key = tmp_path / "rsa_key.p8"
    key.write_text("-----BEGIN ENCRYPTED PRIVATE KEY-----\n...\n")
    key_pair = SnowflakeClient(
        SnowflakeSettings(account="a", user="u", private_key_file=key, private_key_file_pwd="pw")
    ).connect_args()
    assert key_pair["authenticator"] == "SNOWFLAKE_JWT"
    assert key_pair["private_key_file"] == str(key) and key_pair["private_key_file_pwd"] == "pw"
    oauth = SnowflakeClient(SnowflakeSettings(account="a", oauth_token="tok")).connect_args()
    assert (oauth["authenticator"], oauth["token"]) == ("oauth", "tok")
    pat = SnowflakeClient(SnowflakeSettings(account="a", user="u", pat="pat-value")).connect_args()
    assert (pat["authenticator"], pat["token"]) == ("PROGRAMMATIC_ACCESS_TOKEN", "pat-value")


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"account": "a", "user": "u", "password": "p", "pat": "t"}, "password and pat"),
        ({"account": "a"}, "USER"),
        ({"admin_dangerous_kinds": ["insert"]}, "ADMIN_DANGEROUS_KINDS"),
        ({"statement_timeout_s": 0}, "STATEMENT_TIMEOUT_S"),
        ({"account": "a", "user": "u", "private_key_file": "/nonexistent/key.p8"}, "private key file"),
    ],
)
def test_bad_settings_fail_with_one_line(overrides: dict[str, Any], setting: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(SnowflakeSettings, **overrides)
    line = str(error.value)
    assert "\n" not in line and setting in line


def test_secrets_never_show_in_settings_repr() -> None:
    settings = SnowflakeSettings(account="a", user="u", password="hunter2-secret")
    assert "hunter2-secret" not in repr(settings)


@pytest.mark.parametrize(
    ("value", "type_name", "expected"),
    [
        (None, "", None),
        (True, "BOOLEAN", True),
        (42, "NUMBER(38,0)", 42),
        (2**60, "NUMBER(38,0)", str(2**60)),
        (decimal.Decimal("12.50"), "NUMBER(10,2)", "12.50"),
        (decimal.Decimal("7"), "NUMBER(38,0)", 7),
        (decimal.Decimal("123456789012345678901234567890"), "NUMBER(38,0)", "123456789012345678901234567890"),
        (1.5, "REAL", 1.5),
        (float("nan"), "REAL", "nan"),
        (dt.date(2025, 1, 2), "DATE", "2025-01-02"),
        (dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "TIMESTAMP_TZ", "2025-01-02T03:04:05+00:00"),
        (dt.time(1, 2, 3), "TIME", "01:02:03"),
        (b"\x00\x01", "BINARY", "AAE="),
        ('{"a": [1, 2]}', "VARIANT", {"a": [1, 2]}),
        ("[1, 2]", "ARRAY", [1, 2]),
        ("not json", "VARIANT", "not json"),
        ("plain", "VARCHAR", "plain"),
    ],
)
def test_json_safe_values(value: Any, type_name: str, expected: Any) -> None:
    safe, cut = json_safe(value, type_name)
    assert safe == expected and not cut
    json.dumps(safe)


def test_long_cells_are_cut_and_flagged() -> None:
    safe, cut = json_safe("x" * 50_000, "VARCHAR")
    assert cut and isinstance(safe, str) and len(safe) < 10_000


async def _select_one(client: SnowflakeClient, principal: str) -> Any:
    return await client.query_page(
        parse_statement("select 1 as one"), principal=principal, correlation_id="t", offset=0, rows=10,
        max_chars=10_000,
    )


@pytest.mark.anyio
@pytest.mark.integration
async def test_connections_are_pooled_per_principal(fakesnow_server: FakesnowServer) -> None:
    client = SnowflakeClient(settings_for(fakesnow_server, "POOLS"))
    try:
        with anyio.fail_after(60):
            await _select_one(client, "alice")
            await _select_one(client, "alice")
            await _select_one(client, "bob")
            async with anyio.create_task_group() as group:
                for _ in range(3):
                    group.start_soon(_select_one, client, "carol")
    finally:
        client.close()
    # alice: one login reused once; bob: his own; carol: up to three concurrent sessions of her own
    assert client.stats.reused >= 1
    assert 3 <= client.stats.connects <= 5


@pytest.mark.anyio
@pytest.mark.integration
async def test_an_expired_session_is_re_established_transparently(fakesnow_server: FakesnowServer) -> None:
    client = SnowflakeClient(settings_for(fakesnow_server, "EXPIRY"))
    try:
        with anyio.fail_after(60):
            await _select_one(client, "alice")
            pooled = client._pools["alice"].idle[0].connection
            # End the session server-side, as Snowflake does when a session expires.
            request = urllib.request.Request(
                f"http://{fakesnow_server.host}:{fakesnow_server.port}/session?delete=true", method="POST",
                headers={"Authorization": f'Snowflake Token="{pooled.rest.token}"'}, data=b"{}",
            )
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback fakesnow
                assert json.load(response)["success"] is True
            page = await _select_one(client, "alice")
    finally:
        client.close()
    assert page.rows == [[1]]
    assert client.stats.reconnects == 1


@pytest.mark.anyio
@pytest.mark.integration
async def test_an_unreachable_warehouse_is_unavailable(fakesnow_server: FakesnowServer) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings = settings_for(fakesnow_server, "X", port=closed_port, login_timeout_s=2)
    client = SnowflakeClient(settings)
    try:
        with anyio.fail_after(60), pytest.raises(Unavailable) as error:
            await _select_one(client, "alice")
    finally:
        client.close()
    assert str(closed_port) in error.value.message
    assert "fake" not in (error.value.message + str(error.value.data)).replace("fakesnow", "")  # no password


@pytest.mark.anyio
@pytest.mark.integration
async def test_a_principal_over_its_pool_limit_is_told_so(fakesnow_server: FakesnowServer) -> None:
    client = SnowflakeClient(settings_for(fakesnow_server, "LIMITS", pool_max_per_principal=1, login_timeout_s=1))
    try:
        # Hold alice's only connection from inside the pool, then ask for another one.
        connection = await anyio.to_thread.run_sync(client._acquire, "alice")
        with anyio.fail_after(30), pytest.raises(LimitExceeded):
            await _select_one(client, "alice")
        client._release("alice", connection)
        with anyio.fail_after(30):
            page = await _select_one(client, "alice")
    finally:
        client.close()
    assert page.rows == [[1]]


@pytest.mark.anyio
async def test_cancel_of_nothing_running_is_false() -> None:
    client = SnowflakeClient(SnowflakeSettings(account="a", user="u", password="p"))
    assert await client.cancel("0b0c7f52-5d2e-4a43-9a43-1f6f6f6f6f6f", principal="a", any_principal=True) is False
    assert client.running() == []



class _RecordingProxy:
    """A loopback HTTP proxy in front of fakesnow that records what the real connector sends.

    fakesnow accepts but ignores session and statement parameters, so the server-side guards
    are checked on the wire: what Snowflake would receive.
    """

    def __init__(self, upstream: FakesnowServer) -> None:
        import gzip
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[tuple[str, dict[str, Any]]] = []
        recorded = self.requests
        base = f"http://{upstream.host}:{upstream.port}"

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                raw = gzip.decompress(body) if self.headers.get("Content-Encoding") == "gzip" else body
                try:
                    recorded.append((self.path.split("?")[0], json.loads(raw or b"{}")))
                except ValueError:
                    recorded.append((self.path.split("?")[0], {}))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in {"host", "content-length"}}
                forward = urllib.request.Request(  # noqa: S310 - loopback fakesnow
                    base + self.path, data=body, headers=headers, method="POST"
                )
                try:
                    with urllib.request.urlopen(forward, timeout=30) as response:  # noqa: S310 - loopback
                        status, payload = response.status, response.read()
                except urllib.error.HTTPError as error:
                    status, payload = error.code, error.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def __enter__(self) -> _RecordingProxy:
        import threading

        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.anyio
@pytest.mark.integration
async def test_server_side_guards_are_sent_on_every_session_and_statement(fakesnow_server: FakesnowServer) -> None:
    with _RecordingProxy(fakesnow_server) as proxy:
        proxied = FakesnowServer("127.0.0.1", proxy.port, fakesnow_server.pid)
        client = SnowflakeClient(settings_for(proxied, "GUARDS", statement_timeout_s=45))
        try:
            with anyio.fail_after(60):
                await client.query_page(
                    parse_statement("select 1 as one /* ; drop table x */"), principal="alice",
                    correlation_id="corr-123", offset=0, rows=10, max_chars=10_000,
                )
        finally:
            client.close()
    logins = [body for path, body in proxy.requests if path == "/session/v1/login-request"]
    queries = [body for path, body in proxy.requests if path == "/queries/v1/query-request"]
    assert len(logins) == 1 and len(queries) == 1
    session = logins[0]["data"]["SESSION_PARAMETERS"]
    assert session["MULTI_STATEMENT_COUNT"] == 1 and session["STATEMENT_TIMEOUT_IN_SECONDS"] == 45
    assert json.loads(session["QUERY_TAG"]) == {"app": "sophia"}
    statement = queries[0]
    assert statement["sqlText"] == "SELECT 1 AS one LIMIT 11"  # re-rendered from the checked tree
    parameters = statement["parameters"]
    assert int(parameters["MULTI_STATEMENT_COUNT"]) == 1
    assert int(parameters["STATEMENT_TIMEOUT_IN_SECONDS"]) == 45
    tag = json.loads(parameters["QUERY_TAG"])
    assert tag["principal"] == "alice" and tag["correlation_id"] == "corr-123" and tag["tool"] == "snowflake_query"


@pytest.mark.parametrize(
    ("errno", "sqlstate", "message", "code", "data"),
    [
        (1003, "42000", "SQL compilation error:\nsyntax error line 3 at position 7 unexpected 'from'.",
         "invalid_argument", {"line": 3, "position": 7}),
        (2003, "42S02", "SQL compilation error:\nObject 'SHOP.PUBLIC.NOPE' does not exist or not authorized.",
         "not_found", {"object": "SHOP.PUBLIC.NOPE"}),
        (630, "57014", "Statement reached its statement or warehouse timeout of 10 second(s) and was canceled.",
         "timeout", {}),
        (604, "57014", "SQL execution was cancelled by the client due to a timeout. SQL execution canceled",
         "timeout", {}),
        (604, "57014", "SQL execution canceled", "conflict", {}),
        (390114, "08001", "Authentication token has expired.  The user must authenticate again.",
         "unavailable", {}),
        (2140, "42601", "SQL compilation error: Unknown function NOPE", "invalid_argument", {}),
    ],
)
def test_snowflake_errors_map_to_stable_codes(
    errno: int, sqlstate: str, message: str, code: str, data: dict[str, Any]
) -> None:
    """Snowflake's documented error shapes (errno, SQLSTATE, message), built with the connector's own class."""
    from snowflake.connector.errors import ProgrammingError
    from sophia_snowflake.client import _map_error

    mapped = _map_error(ProgrammingError(msg=message, errno=errno, sqlstate=sqlstate), "Snowflake account acme")
    assert mapped.code.value == code
    assert data.items() <= mapped.data.items()


@pytest.mark.anyio
@pytest.mark.integration
async def test_a_cancelled_caller_aborts_its_statement(fakesnow_server: FakesnowServer) -> None:
    """When the MCP request is cancelled, the tool's task is cancelled: the statement is aborted."""
    import threading

    aborted, started = threading.Event(), threading.Event()

    class Recording(SnowflakeClient):
        def _execute(self, *args: Any, **kwargs: Any) -> Any:
            started.set()  # in the worker thread, once the statement is registered as running
            return super()._execute(*args, **kwargs)

        def _abort(self, request_id: str) -> None:
            super()._abort(request_id)
            aborted.set()

    client = Recording(settings_for(fakesnow_server, "ABORTS"))
    long_read = parse_statement("select count(*) from table(generator(rowcount => 200000000))")
    try:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                group.start_soon(partial_query, client, long_read)
                # Logging in happens in a worker thread first; wait until the statement runs.
                assert await anyio.to_thread.run_sync(started.wait, 30)
                assert [principal for _, principal, _ in client.running()] == ["alice"]
                group.cancel_scope.cancel()
            assert aborted.is_set()
            assert client.running() == []
            page = await _select_one(client, "alice")  # the pool still serves alice
    finally:
        client.close()
    assert page.rows == [[1]]


async def partial_query(client: SnowflakeClient, statement: Any) -> None:
    await client.query_page(statement, principal="alice", correlation_id="t", offset=0, rows=1, max_chars=10_000)


@pytest.mark.anyio
@pytest.mark.integration
async def test_idle_sessions_of_principals_that_left_are_closed(fakesnow_server: FakesnowServer) -> None:
    client = SnowflakeClient(settings_for(fakesnow_server, "SWEEP", pool_idle_s=1e-9))
    try:
        with anyio.fail_after(60):
            await _select_one(client, "alice")
            assert len(client._pools["alice"].idle) == 1
            await _select_one(client, "bob")
            # bob's release swept alice's idle session (the connector's close() against fakesnow
            # swallows an internal error, so is_closed() is not a usable signal here)
            assert "alice" not in client._pools
            assert len(client._pools["bob"].idle) == 1
    finally:
        client.close()
