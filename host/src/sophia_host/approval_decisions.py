"""A person's decision on a pending approval, the one way both `sophia approve`/`deny` and the dashboard take.

The decision is made in the approvals store (approvals.py: the model's next identical call then runs
exactly once, or is refused) and recorded in the audit log (server `approvals`, tool `approve` or
`deny`, the decider as principal, the approval's id, server, tool and requester as its arguments).
"""

from __future__ import annotations

from sophia_shared.approvals import Approval, ApprovalStore
from sophia_shared.audit import AuditEvent, AuditLog, Outcome
from sophia_shared.auth import Principal
from sophia_shared.confirm import principal_key
from sophia_shared.errors import Forbidden


def decide(store: ApprovalStore, audit: AuditLog, approval_id: str, *, approve: bool, by: Principal,
           role: str | None = None, not_by_requester: bool = False) -> Approval:
    """Approve or deny `approval_id` as `by`, and record it; `not_by_requester` refuses the very
    credential that asked (a model holding the requester's token cannot approve its own call)."""
    if not_by_requester and store.get(approval_id).principal_key == principal_key(by):
        raise Forbidden("the credential that asked for this call cannot approve or deny it; "
                        "decide with another login (or `sophia approve` on the host's machine)")
    decided = store.decide(approval_id, approve=approve, by=by.name)
    audit.append(AuditEvent(
        principal=by.name, principal_kind=by.audit_kind, role=role or by.role.label, server="approvals",
        tool="approve" if approve else "deny",
        arguments={"approval_id": decided.id, "server": decided.server, "tool": decided.tool,
                   "for": decided.principal},
        outcome=Outcome.OK, error_code=None, duration_ms=0.0, correlation_id=decided.id,
    ))
    return decided
