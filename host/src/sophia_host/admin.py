"""`sophia token ...` and `sophia audit ...`: the admin commands of the shared mechanisms."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

# The shared mechanisms (pydantic settings, the audit log, PostgreSQL drivers) are imported by the
# commands that use them, so that `sophia --help` loads none of them.
from sophia_shared.errors import SophiaError

if TYPE_CHECKING:
    from sophia_shared.audit import AuditLog
    from sophia_shared.auth import Tokens

token_app = typer.Typer(
    help="Bearer tokens for HTTP clients, stored hashed (under SOPHIA_HOME, or in PostgreSQL: SOPHIA_TOKENS_DSN).",
    no_args_is_help=True, rich_markup_mode=None,
)
audit_app = typer.Typer(help="The keyed, hash-chained audit log of every tool call.", no_args_is_help=True,
                        rich_markup_mode=None)


def _fail(exc: SophiaError) -> typer.Exit:
    typer.echo(f"sophia: {exc.code.value}: {exc.message}", err=True)
    return typer.Exit(2)


@contextmanager
def _tokens() -> Iterator[Tokens]:
    from sophia_shared.auth import token_store

    store = token_store()
    try:
        yield store
    finally:
        store.close()


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="a label for the token, e.g. the client or machine: laptop, ci")],
    role: Annotated[str, typer.Option(help="viewer, developer, devops or admin")] = "developer",
    user: Annotated[str | None, typer.Option(
        help="the person the token acts as (their memory, their audit name); default: you, the OS user "
             "running this command, which is who stdio runs as")] = None,
) -> None:
    """Create a token; it is printed once and stored only as a hash."""
    from sophia_shared.auth import Role

    try:
        with _tokens() as store:
            record, plaintext = store.create(name, Role.parse(role), user=user or _default_user())
    except SophiaError as exc:
        raise _fail(exc) from None
    typer.echo(plaintext)
    typer.echo(f"created token {record.id} ({record.name}) for user {record.user} with role {record.role.label}; "
               "it is shown only now", err=True)


def _default_user() -> str:
    from sophia_shared.auth import os_user
    from sophia_shared.settings import SuiteSettings

    # The person creating a token is, by default, the one who will use it: so over HTTP they see
    # the same memory as over stdio (SOPHIA_USER, else the OS user), not a tenant named after the token.
    return SuiteSettings().user or os_user()


@token_app.command("list")
def token_list() -> None:
    """List tokens (never their values)."""
    try:
        with _tokens() as store:
            records = store.list()
    except SophiaError as exc:
        raise _fail(exc) from None
    for record in records:
        state = "revoked" if record.revoked else "active"
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(record.created))
        typer.echo(f"{record.id}  {record.name:<24} {record.user:<16} {record.role.label:<10} {state:<8} {created}")


@token_app.command("revoke")
def token_revoke(name_or_id: Annotated[str, typer.Argument(help="the token's name or id")]) -> None:
    """Revoke a token: at once here, within SOPHIA_TOKEN_CACHE_S on hosts sharing a token database."""
    try:
        with _tokens() as store:
            record = store.revoke(name_or_id)
    except SophiaError as exc:
        raise _fail(exc) from None
    typer.echo(f"revoked token {record.id} ({record.name})")


def _log() -> AuditLog:
    from sophia_shared.audit import AuditLog
    from sophia_shared.settings import SuiteSettings

    return AuditLog(dsn=SuiteSettings().audit_dsn)


@audit_app.command("tail")
def audit_tail(n: Annotated[int, typer.Option("-n", help="how many records")] = 20) -> None:
    """Show the last records."""
    for r in _log().tail(n):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r["ts"]))
        code = f" {r['error_code']}" if r["error_code"] else ""
        typer.echo(f"{r['seq']:>6} {stamp} {r['principal']}({r['role']}) {r['server']}.{r['tool']} "
                   f"{r['outcome']}{code} {r['duration_ms']:.1f}ms {r['arguments']}")


@audit_app.command("export")
def audit_export() -> None:
    """Print every record as JSON lines (for a SIEM or an archive)."""
    for r in _log().records():
        r.pop("id", None)
        typer.echo(json.dumps(r, sort_keys=True))


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the seals, the chain, the head and the checkpoints: exit 0 when intact, 1 naming each problem."""
    report = _log().verify()
    for note in report.notes:
        typer.echo(f"note: {note}", err=True)
    if report.intact:
        typer.echo(f"audit log intact: {report.records} records")
        return
    for problem in report.problems:
        typer.echo(problem)
    typer.echo(f"audit log NOT intact: {len(report.problems)} problem(s) in {report.records} records", err=True)
    raise typer.Exit(1)


@audit_app.command("rotate-key")
def audit_rotate_key() -> None:
    """Seal new records with a new key; old keys stay in the keyring so old records still verify."""
    from sophia_shared.audit import AuditUnavailable
    from sophia_shared.audit_keys import KeyringError
    from sophia_shared.auth import local_principal
    from sophia_shared.settings import SuiteSettings

    try:
        old, new = _log().rotate_key(principal=local_principal(SuiteSettings()).name)
    except KeyringError as exc:
        typer.echo(f"sophia: {exc}", err=True)
        raise typer.Exit(2) from None
    except AuditUnavailable as exc:
        raise _fail(exc) from None
    typer.echo(f"audit key rotated: new records are sealed with {new}" + (f" (was {old})" if old else ""))


@audit_app.command("checkpoint-sql")
def audit_checkpoint_sql(
    writer_role: Annotated[str, typer.Option(help="the PostgreSQL role the servers connect as")],
) -> None:
    """Print the SQL that another role runs once to own the checkpoint table (SOPHIA_AUDIT_CHECKPOINT_DSN)."""
    from sophia_shared.audit_checkpoint import checkpoint_table_sql

    typer.echo(checkpoint_table_sql(writer_role), nl=False)
