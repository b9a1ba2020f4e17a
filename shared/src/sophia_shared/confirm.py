"""Confirmation of destructive calls.

Where the client supports elicitation, the request path asks it (the SDK's `Resolve(Elicit)`
form, which works over stateless HTTP too). Otherwise, by default (SOPHIA_CONFIRM_MODE=approval),
the call answers `approval_required` with a short approval id and a preview, recorded in the
approvals store (approvals.py) that no tool can write; the person approves it out of band
(`sophia approve ID`), and the same principal's repeat of the exact same call (one digest of tool,
arguments and the system's own binding, e.g. a plan hash) then runs once. With
SOPHIA_CONFIRM_MODE=token (CI), the call answers `confirmation_required` with a single-use token
bound to the principal and that digest, valid 5 minutes, which the model repeats the call with.
A host whose caller can elicit gets the token (ELICITS_META_KEY, trusted parents only) and turns
it into its own prompt.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import anyio.to_thread
from mcp.server.mcpserver import (
    AcceptedElicitation,
    CancelledElicitation,
    Context,
    DeclinedElicitation,
    Elicit,
    ElicitationResult,
    Resolve,
)
from pydantic import BaseModel, Field
from pydantic_core import to_jsonable_python

from .approvals import Approval, ApprovalStore, Binding, Status
from .audit import canonical_json
from .errors import ApprovalRequired, ConfirmationRequired, Forbidden
from .redact import get_logger, redact

if TYPE_CHECKING:
    from .auth import Principal
    from .server import SophiaServer, ToolSpec
    from .settings import SuiteSettings

log = get_logger("sophia")

CONFIRMATION_TOKEN_ARG = "confirmation_token"  # noqa: S105 - an argument name
TOKEN_TTL_S = 300.0


class Preview(BaseModel):
    """Exactly what a confirmed call would do. `binding` (e.g. a plan hash) is folded into the token."""

    summary: str
    details: dict[str, Any] = Field(default_factory=dict)
    binding: str | None = None


class Confirmation(BaseModel):
    """The form shown to the user by an elicitation-capable client."""

    confirm: bool = Field(description="Run this operation?")


@dataclass
class _Gate:
    """A resolver's verdict when it did not elicit: skip, token supplied, or must ask; `tokens`:
    whether the caller may be handed a token (token mode, or a host that will prompt its caller)."""

    kind: str  # skip | token | ask
    preview: Preview | None = None
    tokens: bool = False


@dataclass
class _Issued:
    principal: str
    digest: str
    expires: float
    used: bool = False


@dataclass
class ConfirmationGate:
    """Asks for approvals, issues and redeems confirmation tokens; builds the per-tool elicitation resolver."""

    PARAM = "sophia_confirmation"
    ttl_s: float = TOKEN_TTL_S
    mode: str = "approval"  # approval | token (SOPHIA_CONFIRM_MODE)
    server: str = ""
    approvals: ApprovalStore | None = None  # opened on the first approval (SOPHIA_HOME or the tokens' DSN)
    suite: SuiteSettings | None = None  # the server's settings, which say where approvals live
    _issued: dict[str, _Issued] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def parameter_annotation(self, resolver: Any) -> Any:
        return Annotated[ElicitationResult[Confirmation], Resolve(resolver)]

    def resolver(self, spec: ToolSpec, arg_names: list[str], server: SophiaServer) -> Any:
        """A resolver taking the tool's arguments by name: previews, then elicits or defers to tokens."""

        async def resolve_confirmation(**kwargs: Any) -> Any:
            ctx: Context[Any, Any] = kwargs.pop("sophia_ctx")
            token = kwargs.pop(CONFIRMATION_TOKEN_ARG, None)
            args = {n: kwargs[n] for n in arg_names}
            if spec.confirm_when is not None and not await spec.confirm_when(**args):
                return _Gate("skip")
            preview = await self.preview(spec, args)
            tokens = self.mode == "token" or _host_will_prompt(ctx, server)
            if token:
                return _Gate("token", preview, tokens)
            if client_can_elicit(ctx):
                return Elicit(_render(spec.name, preview), Confirmation)
            return _Gate("ask", preview, tokens)

        params = [inspect.Parameter("sophia_ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)]
        params += [
            inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=Any)
            for n in [*arg_names, CONFIRMATION_TOKEN_ARG]
        ]
        resolve_confirmation.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        resolve_confirmation.__annotations__ = {
            "sophia_ctx": Context, **{n: Any for n in [*arg_names, CONFIRMATION_TOKEN_ARG]}, "return": Any,
        }
        resolve_confirmation.__name__ = f"confirm_{spec.name}"
        return resolve_confirmation

    async def preview(self, spec: ToolSpec, args: dict[str, Any]) -> Preview:
        if spec.preview is not None:
            return await spec.preview(**args)
        shown = {k: v for k, v in to_jsonable_python(args).items() if v is not None}
        return Preview(summary=f"{spec.name} with {canonical_json(shown)}", details={"arguments": shown})

    async def check(
        self, spec: ToolSpec, outcome: Any, token: str | None, args: dict[str, Any], principal: Principal
    ) -> None:
        """Let the call through, or raise confirmation_required / forbidden."""
        if isinstance(outcome, DeclinedElicitation | CancelledElicitation):
            raise Forbidden(f"the user declined {spec.name}; nothing was done")
        data = outcome.data if isinstance(outcome, AcceptedElicitation) else outcome
        if isinstance(data, Confirmation):
            if not data.confirm:
                raise Forbidden(f"the user declined {spec.name}; nothing was done")
            return
        if not isinstance(data, _Gate):
            raise Forbidden(f"{spec.name} was not confirmed; nothing was done")
        if data.kind == "skip":
            return
        preview = data.preview or await self.preview(spec, args)
        digest = self._digest(spec.name, args, preview.binding)
        key = principal_key(principal)
        if data.kind == "token" and token:
            refusal = self._redeem(token, key, digest)
            if refusal is None:
                return
            if data.tokens:
                raise self._ask(spec.name, preview, key, digest, refused=refusal)
        elif data.tokens:
            raise self._ask(spec.name, preview, key, digest)
        # No token may be handed out here: the person approves out of band.
        binding = Binding(principal.name, key, self.server, spec.name, digest)
        await anyio.to_thread.run_sync(self._approval, binding, preview)

    def _store(self) -> ApprovalStore:
        if self.approvals is None:
            self.approvals = ApprovalStore.from_settings(self.suite)
        return self.approvals

    def _approval(self, binding: Binding, preview: Preview) -> None:
        """Return when the person approved this exact call (now spent); else raise pending / denied."""
        store = self._store()
        settled = store.settle(binding)
        if settled is not None and settled.status is Status.USED:
            log.info("%s.%s runs on approval %s by %s", binding.server, binding.tool, settled.id, settled.decided_by)
            return
        if settled is not None:
            raise Forbidden(f"{settled.decided_by or 'the user'} denied {binding.tool} (approval {settled.id}); "
                            "nothing was done", data={"approval_id": settled.id, "status": Status.DENIED.value})
        shown = json.loads(redact(canonical_json(preview.model_dump(mode="json", exclude={"binding"}))))
        pending = store.request(binding, shown["summary"], shown.get("details") or {})
        # Where the person may be looking (the client's server log, the host's log of this child).
        log.warning("approval %s waits for %s: %s.%s; `sophia approve %s` or `sophia deny %s`",
                    pending.id, binding.principal, binding.server, binding.tool, pending.id, pending.id)
        raise _pending(pending, shown)

    def _ask(
        self, tool: str, preview: Preview, principal: str, digest: str, refused: str | None = None
    ) -> ConfirmationRequired:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._expire()
            self._issued[token] = _Issued(principal=principal, digest=digest, expires=time.time() + self.ttl_s)
        lead = f"the confirmation token was refused: {refused}. " if refused else ""
        summary = redact(preview.summary)
        message = (
            f"{lead}{tool} needs the user's confirmation. Show the user this preview: {summary} — "
            f"if they approve, repeat the same call with the same arguments and "
            f"{CONFIRMATION_TOKEN_ARG}={token!r} (single use, valid {int(self.ttl_s)} s)."
        )
        data: dict[str, Any] = {
            "confirmation_token": token,
            "expires_in_s": int(self.ttl_s),
            "preview": json.loads(redact(canonical_json(preview.model_dump(mode="json", exclude={"binding"})))),
        }
        if refused:
            data["refused"] = refused
        return ConfirmationRequired(message, data=data)

    def _redeem(self, token: str, principal: str, digest: str) -> str | None:
        """None when the token is good (and now spent); otherwise why it was refused."""
        with self._lock:
            issued = self._issued.get(token)
            if issued is None:
                return "unknown token (never issued by this server, or expired long ago)"
            if issued.used:
                return "already used; each token runs one call"
            if time.time() > issued.expires:
                return "expired; tokens are valid for 5 minutes"
            if issued.principal != principal:
                return "issued to another principal"
            if issued.digest != digest:
                return "the arguments (or the plan they would apply) changed since it was issued"
            issued.used = True
            return None

    def _expire(self) -> None:
        cutoff = time.time() - self.ttl_s  # keep spent/expired tokens one more TTL to name them
        for key in [k for k, v in self._issued.items() if v.expires < cutoff]:
            del self._issued[key]

    @staticmethod
    def _digest(tool: str, args: dict[str, Any], binding: str | None) -> str:
        body = canonical_json({"tool": tool, "args": to_jsonable_python(args), "binding": binding})
        return hashlib.sha256(body.encode()).hexdigest()


def principal_key(principal: Principal) -> str:
    """What a confirmation is bound to: the person and how they authenticated (another token of the
    same person is another principal: it cannot spend this one's approval)."""
    return canonical_json([principal.name, principal.kind, principal.credential])


def _pending(approval: Approval, preview: dict[str, Any]) -> ApprovalRequired:
    left = max(0, int(approval.expires - time.time()))
    message = (
        f"{approval.tool} needs the user's approval, which only the user can give (not you). Show them this "
        f"preview and ask them to run `sophia approve {approval.id}` (or `sophia deny {approval.id}`) on their "
        f"machine; once they have approved, repeat exactly the same call (valid {left} s). "
        f"Preview: {preview['summary']}"
    )
    return ApprovalRequired(message, data={"approval_id": approval.id, "status": approval.status.value,
                                           "expires_in_s": left, "preview": preview})


def _host_will_prompt(ctx: Context[Any, Any], server: SophiaServer) -> bool:
    """Whether our trusted parent (a host) said its caller can answer a prompt for this call."""
    if not server.trust_meta_principal:
        return False
    from .request import ELICITS_META_KEY
    from .server import _request_meta

    meta = _request_meta(ctx)
    return isinstance(meta, dict) and meta.get(ELICITS_META_KEY) is True


def client_can_elicit(ctx: Context[Any, Any]) -> bool:
    """True when the caller declared form elicitation (so it can show the user a prompt)."""
    try:
        capabilities = ctx.client_capabilities
    except (ValueError, AttributeError, LookupError):
        return False
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def _render(tool: str, preview: Preview) -> str:
    # The binding is part of the question, so a changed plan is a new question: the SDK asks
    # again instead of reusing an answer given to the old plan.
    bound = f" [binding {preview.binding}]" if preview.binding else ""
    return f"Confirm {tool}: {preview.summary}{bound}"
