"""`sophia approvals`, `sophia approve ID`, `sophia deny ID`: the person's side of pending approvals.

Each decision is an audit record (server `approvals`, tool `approve`/`deny`, the deciding OS user as
principal, the approval's id, server, tool and requester as its arguments), so the log tells the
whole story: the call pending, the decision, the call run (or refused).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated

import typer

# The store, settings and audit log are imported by the commands that use them: `sophia --help`
# loads none of them.
from sophia_shared.errors import SophiaError

if TYPE_CHECKING:
    from sophia_shared.approvals import Approval

ApprovalId = Annotated[str, typer.Argument(help="the approval's id, as the tool's answer showed it")]


def _fail(exc: SophiaError) -> typer.Exit:
    typer.echo(f"sophia: {exc.code.value}: {exc.message}", err=True)
    return typer.Exit(2)


def approvals(
    every: Annotated[bool, typer.Option("--all", help="also decided, used and expired approvals")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """List approvals waiting for you (what would run, for whom, until when)."""
    from sophia_shared.approvals import ApprovalStore

    try:
        found = ApprovalStore.from_settings().list(everything=every)
    except SophiaError as exc:
        raise _fail(exc) from None
    for approval in found:
        if as_json:
            typer.echo(json.dumps(approval.as_dict(), sort_keys=True, default=str))
        else:
            typer.echo(_line(approval))
    if not found and not as_json:
        typer.echo("no pending approvals" if not every else "no approvals", err=True)


def approve(approval_id: ApprovalId) -> None:
    """Approve a pending call: the model's next identical call (same principal, same arguments) runs once."""
    _decide(approval_id, approve=True)


def deny(approval_id: ApprovalId) -> None:
    """Deny a pending call: the model's next identical call is refused (forbidden)."""
    _decide(approval_id, approve=False)


def _decide(approval_id: str, *, approve: bool) -> None:
    from sophia_shared.approvals import ApprovalStore
    from sophia_shared.audit import AuditLog
    from sophia_shared.auth import local_principal
    from sophia_shared.settings import SuiteSettings

    from .approval_decisions import decide

    suite = SuiteSettings()
    me = local_principal(suite)
    try:
        decided = decide(ApprovalStore.from_settings(suite), AuditLog(dsn=suite.audit_dsn), approval_id,
                         approve=approve, by=me, role="admin")
    except SophiaError as exc:
        raise _fail(exc) from None
    left = max(0, int(decided.expires - time.time()))
    typer.echo(f"{'approved' if approve else 'denied'} {decided.id}: {decided.server}.{decided.tool} for "
               f"{decided.principal}" + (f"; the same call now runs once (within {left} s)" if approve else ""))


def _line(approval: Approval) -> str:
    left = int(approval.expires - time.time())
    state = approval.status.value if left > 0 else "expired"
    return (f"{approval.id}  {state:<8} {approval.principal:<16} {approval.server}.{approval.tool:<28} "
            f"{max(left, 0):>5}s  {approval.summary[:200]}")
