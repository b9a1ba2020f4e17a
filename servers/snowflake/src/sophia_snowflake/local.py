"""The local demo warehouse: a fakesnow server on loopback, in a child process, with demo data.

Used when no Snowflake account is configured. The child binds its port and seeds the demo
dataset before it says "ready", and exits when its stdin closes, so it never outlives the MCP
server that started it, even when that server is killed.

The child is a sandbox, whatever the statement guard lets through:

- fakesnow serves every session from cursors of one in-process DuckDB database. Once the demo
  data is loaded, that database gets `enable_external_access=false` (no file, glob, COPY,
  ATTACH, extension or replacement-scan access) and `lock_configuration=true` (no SET, RESET or
  PRAGMA can undo it); both are database-wide, so every session's cursor inherits them. A login
  that asks fakesnow for a database of its own (FAKESNOW_DB_PATH) gets one locked the same way.
- The child starts with a minimal environment (`child_environment`): none of the server's
  settings or secrets, so even a read of /proc/self/environ would find nothing to leak.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import importlib
import json
import logging
import os
import random
import select
import socket
import subprocess
import sys
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger("sophia.snowflake")

READY_PREFIX = "sophia-snowflake-local ready "

# What the child inherits from the server's environment: enough for Python to find its packages
# and for text to decode, nothing else (no SOPHIA_* setting, no token, no HOME).
CHILD_ENVIRONMENT_NAMES = ("PATH", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "LANG", "LC_ALL", "LC_CTYPE", "TZ")

# Applied to the warehouse's DuckDB database after the demo data is loaded; order matters (the
# lock comes last, or it would refuse the others). The memory cap keeps a hostile query from
# taking the host's memory (DuckDB's default is 80% of RAM); the demo data needs a few MB.
SANDBOX_SETTINGS = (
    "SET enable_external_access = false",
    "SET memory_limit = '1GB'",
    "SET lock_configuration = true",
)

DEMO_TABLES = ("CUSTOMERS", "PRODUCTS", "ORDERS", "ORDER_ITEMS")


class LocalWarehouseError(RuntimeError):
    """The local warehouse could not be started."""


class LocalWarehouse:
    """Starts (once, on demand) and stops the fakesnow child; thread-safe."""

    def __init__(self, *, port: int = 0, database: str = "DEMO", schema: str = "PUBLIC", timeout_s: float = 30.0):
        self._requested_port = port
        self.database = database
        self.schema = schema
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def ensure_started(self) -> int:
        """Start the warehouse if it is not running; return its port."""
        with self._lock:
            if self.running and self.port is not None:
                return self.port
            self._start()
            assert self.port is not None
            return self.port

    def _start(self) -> None:
        # -P: the working directory is not on the child's import path (no stray duckdb.py there).
        command = [
            sys.executable, "-P", "-m", "sophia_snowflake.local",
            "--port", str(self._requested_port), "--database", self.database, "--schema", self.schema,
        ]
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, env=child_environment(os.environ)
        )
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], self._timeout_s)
        line = process.stdout.readline().decode("utf-8", "replace").strip() if ready else ""
        if not line.startswith(READY_PREFIX):
            process.kill()
            process.wait()
            raise LocalWarehouseError(
                f"the local fakesnow warehouse did not start within {self._timeout_s:g} s "
                f"(exit code {process.returncode}); see the server's stderr"
            )
        self._process = process
        self.port = int(line.removeprefix(READY_PREFIX))
        log.info("local fakesnow warehouse on 127.0.0.1:%s (pid %s)", self.port, process.pid)

    def stop(self) -> None:
        """Stop the child by its PID: close its stdin (it exits), then terminate if it lingers."""
        with self._lock:
            process, self._process = self._process, None
            if process is None:
                return
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdout is not None:
                process.stdout.close()


def child_environment(parent: Mapping[str, str]) -> dict[str, str]:
    """The child's whole environment: the few names Python needs, taken from `parent`."""
    return {name: parent[name] for name in CHILD_ENVIRONMENT_NAMES if name in parent}


def lock_down(duck_conn: Any) -> None:
    """Turn off DuckDB's external access and lock its configuration, for the whole database."""
    for statement in SANDBOX_SETTINGS:
        duck_conn.execute(statement)


class BoundedResults(OrderedDict[str, Any]):
    """fakesnow keeps every statement's result for RESULT_SCAN, forever: keep the latest few."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.capacity:
            self.popitem(last=False)


RESULTS_KEPT = 256


def _sandbox_fakesnow(fake_server: Any) -> None:
    """Make every database fakesnow serves a locked one, the shared one and any a login asks for."""
    lock_down(fake_server.shared_fs.duck_conn)
    base = fake_server.FakeSnow

    class SandboxedFakeSnow(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            lock_down(self.duck_conn)
            self.results_cache = BoundedResults(RESULTS_KEPT)

    # fakesnow's login builds a fresh FakeSnow for FAKESNOW_DB_PATH sessions by this global name.
    fake_server.FakeSnow = SandboxedFakeSnow


# What the sandbox's refusals look like to the connector: Snowflake's "insufficient privileges".
PERMISSION_ERRNO, PERMISSION_SQLSTATE = 3001, "42501"
_ENGINE_ERRNO, _ENGINE_SQLSTATE = 100000, "22000"


def _answer_engine_errors() -> None:
    """Make fakesnow answer every failure of a statement as a statement error.

    fakesnow turns the DuckDB errors it does not map (a permission refusal of the sandbox, a
    locked setting, a bad conversion) and its own bugs into HTTP 500, which the connector
    retries until its own timeout: the caller would wait minutes for a refusal.
    """
    cursor_class: Any = importlib.import_module("fakesnow.cursor").FakeSnowflakeCursor
    for name in ("execute", "_describe_only", "_describe_last_sql"):
        setattr(cursor_class, name, _engine_errors_as_statement_errors(getattr(cursor_class, name)))


def _engine_errors_as_statement_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    import duckdb
    from snowflake.connector.errors import Error as SnowflakeError
    from snowflake.connector.errors import ProgrammingError

    @functools.wraps(method)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except SnowflakeError:
            raise  # fakesnow's own answer: it already becomes a statement error
        except duckdb.PermissionException as error:
            raise ProgrammingError(
                msg=_first_line(error), errno=PERMISSION_ERRNO, sqlstate=PERMISSION_SQLSTATE
            ) from None
        except duckdb.Error as error:
            raise ProgrammingError(msg=_first_line(error), errno=_ENGINE_ERRNO, sqlstate=_ENGINE_SQLSTATE) from None
        except (AssertionError, AttributeError, IndexError, KeyError, TypeError, ValueError) as error:
            # fakesnow cannot emulate this statement (a gap in its transforms, not a caller error)
            log.warning("fakesnow failed on a statement: %s", type(error).__name__)
            raise ProgrammingError(
                msg=f"the local warehouse (fakesnow) cannot run this statement ({type(error).__name__})",
                errno=_ENGINE_ERRNO, sqlstate=_ENGINE_SQLSTATE,
            ) from None

    return guarded


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:500] if text else type(error).__name__


def demo_statements(database: str, schema: str) -> list[str]:
    """The demo dataset: customers, products, orders (with a VARIANT column) and order items."""
    rng = random.Random(20261121)  # fixed seed: the demo data is the same on every machine
    countries = ["DE", "FR", "GB", "US", "JP", "BR", "IN", "NL"]
    segments = ["enterprise", "mid-market", "smb"]
    first = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Leslie"]
    last = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman"]
    products = [
        ("Widget", "hardware", 19.99), ("Gadget", "hardware", 49.50), ("Sprocket", "hardware", 4.25),
        ("Analytics Pro", "software", 299.00), ("Backup Plus", "software", 89.00),
        ("Support Gold", "services", 1200.00), ("Onboarding", "services", 450.00),
        ("Sensor Kit", "hardware", 135.75), ("API Access", "software", 59.99), ("Training Day", "services", 800.00),
        ("Cable Set", "hardware", 12.49), ("Data Export", "software", 25.00),
    ]
    base = dt.date(2025, 1, 1)
    statements = [
        f"CREATE DATABASE IF NOT EXISTS {database}",
        f"CREATE SCHEMA IF NOT EXISTS {database}.{schema}",
        f"USE SCHEMA {database}.{schema}",
        "CREATE TABLE CUSTOMERS (ID NUMBER(38,0) NOT NULL, NAME VARCHAR, COUNTRY VARCHAR(2), "
        "SEGMENT VARCHAR, CREATED_AT DATE)",
        "CREATE TABLE PRODUCTS (ID NUMBER(38,0) NOT NULL, NAME VARCHAR, CATEGORY VARCHAR, UNIT_PRICE NUMBER(10,2))",
        "CREATE TABLE ORDERS (ID NUMBER(38,0) NOT NULL, CUSTOMER_ID NUMBER(38,0), ORDERED_AT DATE, "
        "STATUS VARCHAR, TOTAL NUMBER(12,2), DETAILS VARIANT)",
        "CREATE TABLE ORDER_ITEMS (ORDER_ID NUMBER(38,0), PRODUCT_ID NUMBER(38,0), QUANTITY NUMBER(9,0), "
        "UNIT_PRICE NUMBER(10,2))",
    ]
    customers = []
    for cid in range(1, 51):
        name = f"{rng.choice(first)} {rng.choice(last)}"
        created = base + dt.timedelta(days=rng.randrange(0, 300))
        customers.append(f"({cid}, '{name}', '{rng.choice(countries)}', '{rng.choice(segments)}', '{created}')")
    statements.append("INSERT INTO CUSTOMERS VALUES " + ", ".join(customers))  # noqa: S608 - generated literals
    statements.append(
        "INSERT INTO PRODUCTS VALUES "  # noqa: S608 - generated literals
        + ", ".join(f"({i}, '{n}', '{c}', {p:.2f})" for i, (n, c, p) in enumerate(products, start=1))
    )
    orders, items = [], []
    for oid in range(1, 401):
        lines = [(rng.randrange(1, len(products) + 1), rng.randrange(1, 6)) for _ in range(rng.randrange(1, 5))]
        total = sum(products[pid - 1][2] * qty for pid, qty in lines)
        for pid, qty in lines:
            items.append(f"({oid}, {pid}, {qty}, {products[pid - 1][2]:.2f})")
        details = json.dumps({"channel": rng.choice(["web", "partner", "sales"]), "lines": len(lines)})
        status = rng.choice(["placed", "shipped", "shipped", "delivered", "cancelled"])
        ordered = base + dt.timedelta(days=rng.randrange(0, 330))
        orders.append((oid, rng.randrange(1, 51), ordered, status, total, details))
    statements.append(
        "INSERT INTO ORDERS SELECT column1, column2, column3::DATE, column4, column5, PARSE_JSON(column6) FROM VALUES "  # noqa: S608 - generated literals
        + ", ".join(f"({o}, {c}, '{d}', '{s}', {t:.2f}, '{j}')" for o, c, d, s, t, j in orders)
    )
    statements.append("INSERT INTO ORDER_ITEMS VALUES " + ", ".join(items))  # noqa: S608 - generated literals
    statements.append(
        "CREATE VIEW REVENUE_BY_COUNTRY AS SELECT c.COUNTRY, COUNT(*) AS ORDERS, SUM(o.TOTAL) AS REVENUE "
        "FROM ORDERS o JOIN CUSTOMERS c ON c.ID = o.CUSTOMER_ID WHERE o.STATUS <> 'cancelled' GROUP BY c.COUNTRY"
    )
    return statements


def _seed(database: str, schema: str) -> None:
    # fakesnow's package exports a function named `server` that hides the submodule from mypy.
    fake_server: Any = importlib.import_module("fakesnow.server")
    # every session's connection takes this mapping when it logs in: bound it before the first
    fake_server.shared_fs.results_cache = BoundedResults(RESULTS_KEPT)
    conn: Any = fake_server.shared_fs.connect(database, schema)
    cursor = conn.cursor()
    for statement in demo_statements(database, schema):
        cursor.execute(statement)
    conn.close()


def main(argv: list[str] | None = None) -> int:
    """Child process: bind loopback, seed, announce readiness, serve until stdin closes."""
    parser = argparse.ArgumentParser(prog="python -m sophia_snowflake.local")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--database", default="DEMO")
    parser.add_argument("--schema", default="PUBLIC")
    args = parser.parse_args(argv)

    import uvicorn

    fake_server: Any = importlib.import_module("fakesnow.server")

    logging.getLogger("fakesnow.server").setLevel(logging.WARNING)
    # fakesnow warns on every Arrow result; the child's stderr is the MCP server's log.
    warnings.filterwarnings("ignore", category=UserWarning)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    _seed(args.database.upper(), args.schema.upper())
    _sandbox_fakesnow(fake_server)
    _answer_engine_errors()
    server = uvicorn.Server(uvicorn.Config(fake_server.app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="fakesnow", daemon=True)
    thread.start()
    # Connections made before uvicorn's loop runs wait in the listen backlog, so "ready" is true now.
    print(f"{READY_PREFIX}{sock.getsockname()[1]}", flush=True)
    # Nobody reads our stdout after this line: anything written there later must not fill the pipe.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.stdin.buffer.read()
    server.should_exit = True
    thread.join(timeout=5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
