"""Bearer tokens in PostgreSQL: one table shared by every host, hashed, revocations seen within the cache bound."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import httpx
import psycopg
import pytest
from sophia_shared.auth import (
    PostgresTokenStore,
    Role,
    SophiaTokenVerifier,
    TokenStore,
    TokenStoreUnavailable,
    token_store,
)
from sophia_shared.errors import InvalidArgument, NotFound, Unavailable
from sophia_shared.http import http_app
from sophia_shared.memory.settings import MemorySettings
from sophia_shared.settings import SuiteSettings
from sophia_shared.testing import serve_in_thread

pytestmark = pytest.mark.integration

HOST_MODULE = "sophia_host"
UNREACHABLE = "postgresql://postgres@/nowhere?host=/nonexistent-socket-dir"


@pytest.fixture
def dsn(postgres_database_factory: Callable[[str], str], request: pytest.FixtureRequest) -> str:
    return postgres_database_factory(request.node.name)


@pytest.fixture
def two_hosts(dsn: str) -> Iterator[tuple[PostgresTokenStore, PostgresTokenStore]]:
    """Two stores on one database, as two hosts would hold them."""
    first, second = PostgresTokenStore(dsn, cache_s=60.0), PostgresTokenStore(dsn, cache_s=60.0)
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def test_a_token_created_on_one_host_works_on_the_other(two_hosts: tuple[PostgresTokenStore, ...]) -> None:
    one, other = two_hosts
    record, plaintext = one.create("dana", Role.DEVOPS)
    found = other.lookup(plaintext)
    assert found is not None
    assert (found.id, found.name, found.role) == (record.id, "dana", Role.DEVOPS)
    assert other.lookup(plaintext + "x") is None
    assert [(r.name, r.revoked) for r in other.list()] == [("dana", False)]


def test_tokens_are_stored_only_as_hashes(dsn: str, two_hosts: tuple[PostgresTokenStore, ...]) -> None:
    _record, plaintext = two_hosts[0].create("vic", Role.VIEWER)
    with psycopg.connect(dsn) as conn:
        dump = json.dumps(conn.execute("SELECT * FROM sophia_tokens").fetchall(), default=str)
    assert plaintext not in dump
    assert plaintext.removeprefix("sph_") not in dump


def test_a_revocation_on_one_host_is_seen_on_the_other_once_the_cache_expires(
    two_hosts: tuple[PostgresTokenStore, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    one, other = two_hosts
    _record, plaintext = one.create("ops", Role.DEVOPS)
    clock = [1000.0]
    monkeypatch.setattr("sophia_shared.auth.time.monotonic", lambda: clock[0])
    assert other.lookup(plaintext) is not None
    one.revoke("ops")
    # Within the bound the other host may still trust its cached check; at the bound it asks again.
    clock[0] += other.cache_s - 0.001
    assert other.lookup(plaintext) is not None
    clock[0] += 0.001
    assert other.lookup(plaintext) is None
    # The revoking host itself forgets at once.
    assert one.lookup(plaintext) is None


def test_with_no_cache_a_revocation_is_seen_on_the_next_request(dsn: str) -> None:
    one, other = PostgresTokenStore(dsn, cache_s=0.0), PostgresTokenStore(dsn, cache_s=0.0)
    try:
        _record, plaintext = one.create("now", Role.VIEWER)
        assert other.lookup(plaintext) is not None
        one.revoke("now")
        assert other.lookup(plaintext) is None
    finally:
        one.close()
        other.close()


def test_one_active_token_per_name_across_hosts(two_hosts: tuple[PostgresTokenStore, ...]) -> None:
    one, other = two_hosts
    first, _ = one.create("ci", Role.DEVELOPER)
    with pytest.raises(InvalidArgument, match="an active token named 'ci' exists"):
        other.create("ci", Role.ADMIN)
    assert other.revoke(first.id).revoked
    with pytest.raises(NotFound):
        one.revoke("ci")
    second, _ = other.create("ci", Role.VIEWER)
    assert [(r.id, r.revoked) for r in one.list()] == [(first.id, True), (second.id, False)]
    with pytest.raises(InvalidArgument):
        one.create("  ", Role.VIEWER)


def test_concurrent_creates_of_one_name_from_two_processes_make_one_token(dsn: str, tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from sophia_shared.auth import PostgresTokenStore, Role\n"
        "from sophia_shared.errors import InvalidArgument\n"
        "store = PostgresTokenStore(sys.argv[1])\n"
        "made = 0\n"
        "for _ in range(20):\n"
        "    try:\n"
        "        store.create('race', Role.VIEWER); made += 1\n"
        "    except InvalidArgument:\n"
        "        pass\n"
        "    try:\n"
        "        store.revoke('race')\n"
        "    except Exception:\n"
        "        pass\n"
        "store.close()\n"
        "print(made)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, dsn], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    with psycopg.connect(dsn) as conn:
        active = conn.execute("SELECT count(*) FROM sophia_tokens WHERE revoked_at IS NULL").fetchone()
        total = conn.execute("SELECT count(*) FROM sophia_tokens").fetchone()
    assert active is not None and total is not None
    assert active[0] <= 1
    assert total[0] == sum(int(o) for o in outputs)


def test_the_suite_database_url_selects_postgres_for_tokens_audit_and_memory(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOPHIA_DATABASE_URL", dsn)
    suite = SuiteSettings()
    assert suite.audit_dsn == dsn
    assert suite.tokens_dsn is not None and suite.tokens_dsn.get_secret_value() == dsn
    memory = MemorySettings()
    assert memory.backend() == "postgres"
    store = token_store(suite)
    try:
        assert isinstance(store, PostgresTokenStore)
    finally:
        store.close()
    # The specific settings still win.
    monkeypatch.setenv("SOPHIA_AUDIT_DSN", "postgresql://postgres@/audit_only?host=/tmp")
    monkeypatch.setenv("SOPHIA_MEMORY_DSN", "sqlite:///tmp/elsewhere.db")
    assert SuiteSettings().audit_dsn == "postgresql://postgres@/audit_only?host=/tmp"
    assert MemorySettings().backend() == "sqlite"
    monkeypatch.delenv("SOPHIA_DATABASE_URL")
    assert isinstance(token_store(SuiteSettings()), TokenStore)
    monkeypatch.setenv("SOPHIA_TOKENS_DSN", "mysql://nope")
    with pytest.raises(InvalidArgument, match="SOPHIA_TOKENS_DSN"):
        token_store(SuiteSettings())


def test_sophia_token_commands_against_the_database(dsn: str, sophia_home: Path) -> None:
    env = {"SOPHIA_HOME": str(sophia_home), "SOPHIA_DATABASE_URL": dsn, "PATH": "/usr/bin:/bin"}

    def sophia(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", HOST_MODULE, *args], env=env, capture_output=True,
                              text=True, timeout=120, check=False)

    created = sophia("token", "create", "--name", "robot", "--role", "viewer")
    assert created.returncode == 0, created.stderr
    plaintext = created.stdout.strip()
    assert plaintext.startswith("sph_")
    assert not (sophia_home / "tokens.json").exists()
    store = PostgresTokenStore(dsn)
    try:
        assert store.lookup(plaintext) is not None
        listed = sophia("token", "list")
        assert listed.returncode == 0 and "robot" in listed.stdout and "active" in listed.stdout
        assert plaintext not in listed.stdout
        assert sophia("token", "revoke", "robot").returncode == 0
        assert PostgresTokenStore(dsn, cache_s=0).lookup(plaintext) is None
        again = sophia("token", "revoke", "robot")
        assert again.returncode == 2 and "not_found" in again.stderr
    finally:
        store.close()


def test_an_unreachable_token_database_is_unavailable_not_a_bad_token() -> None:
    store = PostgresTokenStore(UNREACHABLE)
    try:
        with pytest.raises(Unavailable):
            store.lookup("sph_whatever")
    finally:
        store.close()


@pytest.mark.anyio
async def test_the_verifier_refuses_with_unavailable_when_the_store_cannot_be_asked() -> None:
    verifier = SophiaTokenVerifier(PostgresTokenStore(UNREACHABLE))
    try:
        with anyio.fail_after(30), pytest.raises(TokenStoreUnavailable):
            await verifier.verify_token("sph_whatever")
    finally:
        verifier.store.close()


def test_over_http_an_unreachable_token_database_answers_503_unavailable() -> None:
    from shared.demo_server import DemoSettings, build_server

    server = build_server(DemoSettings())
    suite = SuiteSettings(tokens_dsn=UNREACHABLE)

    def make_app(port: int) -> object:
        return http_app(server, transport="http", host="127.0.0.1", port=port, suite=suite)

    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    with serve_in_thread(make_app, factory=True) as url:
        response = httpx.post(f"{url}/mcp", json=body, timeout=30,
                              headers={"Authorization": "Bearer sph_whatever",
                                       "Accept": "application/json, text/event-stream"})
        anonymous = httpx.post(f"{url}/mcp", json=body, timeout=30,
                               headers={"Accept": "application/json, text/event-stream"})
    assert response.status_code == 503
    assert response.json()["error"]["data"]["code"] == "unavailable"
    # No token at all is still a plain 401: the store is not asked.
    assert anonymous.status_code == 401


def test_a_token_connection_dropped_by_the_server_is_replaced_on_the_next_lookup(dsn: str) -> None:
    store = PostgresTokenStore(dsn, cache_s=0.0)
    try:
        _record, plaintext = store.create("idle", Role.VIEWER)
        with psycopg.connect(dsn, autocommit=True) as conn:
            ended = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        assert ended
        assert store.lookup(plaintext) is not None
    finally:
        store.close()


def test_a_store_from_before_users_is_migrated_in_place(dsn: str) -> None:
    """Tokens made before users keep working and act as their name (where their memories are)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("""CREATE TABLE sophia_tokens (token_hash text PRIMARY KEY, id text NOT NULL UNIQUE,
                        name text NOT NULL, role text NOT NULL, created double precision NOT NULL,
                        revoked_at double precision)""")
        conn.execute("INSERT INTO sophia_tokens VALUES (%s, 'old1', 'make-run', 'developer', 1.0, NULL)",
                     (hashlib.sha256(b"sph_old-token").hexdigest(),))
    store = PostgresTokenStore(dsn, cache_s=0.0)
    try:
        old = store.lookup("sph_old-token")
        _record, plaintext = store.create("laptop", Role.VIEWER, user="alice")
        new = store.lookup(plaintext)
        listed = {r.name: r.user for r in store.list()}
    finally:
        store.close()
    assert old is not None and (old.name, old.user) == ("make-run", "make-run")
    assert new is not None and (new.name, new.user, new.role) == ("laptop", "alice", Role.VIEWER)
    assert listed == {"make-run": "make-run", "laptop": "alice"}
    with pytest.raises(InvalidArgument):
        PostgresTokenStore(dsn).create("x", Role.VIEWER, user="space:team")
