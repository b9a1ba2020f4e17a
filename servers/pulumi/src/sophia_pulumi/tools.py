"""The Pulumi MCP tools: typed, documented, thin — every one calls client.py."""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from mcp.server.mcpserver import Context
from pydantic import Field
from sophia_shared.audit import AuditEvent, Outcome
from sophia_shared.errors import Conflict, Forbidden, InvalidArgument, NotFound
from sophia_shared.paging import decode_offset, encode_offset
from sophia_shared.redact import sanitize_untrusted
from sophia_shared.server import Preview, Role, SophiaServer, current_correlation_id, current_principal
from sophia_shared.tool_meta import role_only
from sophia_shared.toolset import Toolset, tool

from .client import PulumiClient, SavedPlan
from .models import (
    ChangePreview,
    ConfigEntry,
    ConfigSetResult,
    HistoryPage,
    OperationResult,
    OutputValue,
    ResourceChange,
    ResourceItem,
    ResourcePage,
    Source,
    StackConfig,
    StackList,
    StackOutputs,
)
from .policy import NAME_PATTERN, check_config_key, urns_hash
from .settings import PulumiSettings

INSTRUCTIONS = (
    "Pulumi stacks: read outputs, resources, history and config; change infrastructure only through "
    "pulumi_preview -> user confirmation -> pulumi_up (bound to the exact saved plan). Every tool names "
    "its project and stack; no stack is ever created implicitly. Secrets are redacted."
)
OUTPUT_VALUE_CAP = 4_000
OUTPUTS_CAP = 200
CONFIG_CAP = 500
STACKS_CAP = 500

Project = Annotated[
    str, Field(description="Project name, e.g. 'webapp'.", min_length=1, max_length=100, pattern=NAME_PATTERN)
]
Stack = Annotated[
    str,
    Field(
        description="Stack name, e.g. 'dev' (not org-qualified).",
        min_length=1,
        max_length=100,
        pattern=NAME_PATTERN,
    ),
]
Cursor = Annotated[
    str | None, Field(description="next_cursor of the previous page", max_length=64)
]


def _cap_value(value: Any) -> tuple[Any, bool]:
    """A value, or its JSON text cut to OUTPUT_VALUE_CAP characters (and True) when longer."""
    text = json.dumps(value, default=str)
    if len(text) <= OUTPUT_VALUE_CAP:
        return value, False
    return text[:OUTPUT_VALUE_CAP], True


def _change_lines(changes: list[ResourceChange], cap: int = 50) -> list[str]:
    lines = [f"{c.op} {c.urn}" for c in changes[:cap]]
    if len(changes) > cap:
        lines.append(f"... and {len(changes) - cap} more")
    return lines


# -- the tools (module-level values; build_server binds their dependencies) ----------------


@dataclass(frozen=True)
class PulumiDeps:
    """What the tools need: the settings, the client (the only code that runs Pulumi), the server
    (its audit log, for the reveal record) and the plans pulumi_up calls previewed."""

    settings: PulumiSettings
    client: PulumiClient
    server: SophiaServer
    # The plan each pulumi_up call previewed, by the call's correlation id: the body applies exactly
    # the plan this call's user confirmed, never one a later preview (by anyone) saved meanwhile.
    previewed: dict[str, SavedPlan] = field(default_factory=dict)


class ReadFrom(TypedDict):
    """The fields every read tool's answer ends with."""

    source: Source
    backend: str
    demo: bool


def read_from(deps: PulumiDeps, from_state: bool) -> ReadFrom:
    """Where an answer was read: the state files or the CLI, and which backend."""
    return ReadFrom(
        source="state" if from_state else "cli",
        backend=deps.client.safe_backend(),
        demo=deps.client.backend_info.demo,
    )


def progress_sink(ctx: Context[Any, Any]) -> Any:
    seen = 0


    async def sink(change: ResourceChange) -> None:
        nonlocal seen
        seen += 1
        await ctx.report_progress(seen, None, f"{change.op} {change.urn}")


    return sink


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def pulumi_list_stacks(
    deps: PulumiDeps,
    project: Annotated[
        str | None,
        Field(
            description="Only this project's stacks; omit for every project.",
            min_length=1,
            max_length=100,
            pattern=NAME_PATTERN,
        ),
    ] = None,
) -> StackList:
    """List the stacks of one project (or of all projects) with last update time and resource count."""
    stacks = await deps.client.list_stacks(project)
    if project is not None and not stacks and project not in deps.client.known_projects():
        raise NotFound(
            f"project {project!r} not found; known projects: " + (", ".join(deps.client.known_projects()) or "none")
        )
    return StackList(
        stacks=stacks[:STACKS_CAP],
        truncated=len(stacks) > STACKS_CAP,
        **read_from(deps, deps.client.reads_from_state()),
    )


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def pulumi_stack_outputs(
    deps: PulumiDeps,
    project: Project,
    stack: Stack,
    reveal_secrets: Annotated[
        bool,
        Field(description="Show secret outputs in clear. Admin only, audited; needs the Pulumi CLI.",
              json_schema_extra=role_only(Role.ADMIN)),
    ] = False,
) -> StackOutputs:
    """Stack outputs of one stack; secret outputs are shown as '[secret]' unless an admin asks to reveal."""
    principal = current_principal()
    if reveal_secrets and principal.role < Role.ADMIN:
        raise Forbidden(
            f"revealing secret outputs needs role admin; {principal.name} has role {principal.role.label}. "
            "Call again without reveal_secrets to see the redacted outputs"
        )
    values, from_state = await deps.client.outputs(project, stack, reveal_secrets)
    capped: list[OutputValue] = []
    budget = deps.settings.max_result_chars // 3  # the whole result stays under the server's cap
    for item in values[:OUTPUTS_CAP]:
        value, cut = _cap_value(item.value)
        budget -= len(json.dumps(value, default=str)) + len(item.name) + 60
        if budget < 0 and capped:
            break
        capped.append(item.model_copy(update={"value": value, "truncated": cut}))
    if reveal_secrets:
        _audit_reveal(deps.server, project, stack, [v.name for v in values if v.secret])
    return StackOutputs(
        project=project,
        stack=stack,
        outputs=capped,
        revealed=reveal_secrets,
        truncated=len(capped) < len(values),
        **read_from(deps, from_state),
    )


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def pulumi_list_resources(
    deps: PulumiDeps,
    project: Project,
    stack: Stack,
    type: Annotated[
        str | None,
        Field(
            description="Only this type token, e.g. 'aws:s3/bucket:Bucket'; '*' wildcards, e.g. 'aws:s3/*'.",
            min_length=1,
            max_length=300,
        ),
    ] = None,
    name_contains: Annotated[
        str | None, Field(description="Only resources whose name contains this text.", min_length=1, max_length=200)
    ] = None,
    limit: Annotated[int, Field(description="Resources per page.", ge=1, le=1000)] = 100,
    cursor: Cursor = None,
) -> ResourcePage:
    """List a stack's resources (URN, type, name, provider, parent), a page at a time."""
    offset = decode_offset(cursor)
    rows = await deps.client.resources(project, stack)
    if type is not None:
        if "*" in type or "?" in type:
            matches = re.compile(fnmatch.translate(type)).match
            rows = tuple(r for r in rows if matches(r.type))
        else:
            rows = tuple(r for r in rows if r.type == type)
    if name_contains is not None:
        needle = name_contains.lower()
        rows = tuple(r for r in rows if needle in r.name.lower())
    # A page also stops at a size budget, well under the server's result cap: URNs of deeply
    # nested resources are long, and a cut page with a cursor beats a limit_exceeded error.
    budget = deps.settings.max_result_chars // 3
    items: list[ResourceItem] = []
    for r in rows[offset : offset + limit]:
        budget -= len(r.urn) + len(r.type) + len(r.name) + len(r.provider or "") + len(r.parent or "") + 80
        if budget < 0 and items:
            break
        items.append(ResourceItem(urn=r.urn, type=r.type, name=r.name, provider=r.provider, parent=r.parent))
    end = offset + len(items)
    more = end < len(rows)
    return ResourcePage(
        project=project,
        stack=stack,
        total=len(rows),
        resources=items,
        next_cursor=encode_offset(end) if more else None,
        truncated=more,
        **read_from(deps, deps.client.reads_from_state()),
    )


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def pulumi_stack_history(
    deps: PulumiDeps,
    project: Project,
    stack: Stack,
    limit: Annotated[int, Field(description="Entries per page, newest first.", ge=1, le=100)] = 20,
    cursor: Cursor = None,
) -> HistoryPage:
    """The update history of a stack (kind, result, time, resource changes), newest first."""
    offset = decode_offset(cursor)
    entries, from_state = await deps.client.history(project, stack, offset + limit + 1)
    page = entries[offset : offset + limit]
    more = len(entries) > offset + limit
    for entry in page:
        entry.message = sanitize_untrusted(entry.message)[:500]
    return HistoryPage(
        project=project,
        stack=stack,
        entries=page,
        next_cursor=encode_offset(offset + limit) if more else None,
        truncated=more,
        **read_from(deps, from_state),
    )


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def pulumi_get_config(deps: PulumiDeps, project: Project, stack: Stack) -> StackConfig:
    """A stack's configuration; secret values are never shown (value is null, secret is true)."""
    entries, from_state = await deps.client.config(project, stack)
    shown: list[ConfigEntry] = []
    for entry in entries[:CONFIG_CAP]:
        value, _ = _cap_value(entry.value)
        shown.append(entry.model_copy(update={"value": value}))
    return StackConfig(
        project=project,
        stack=stack,
        entries=shown,
        truncated=len(entries) > CONFIG_CAP,
        **read_from(deps, from_state),
    )


@tool(role=Role.DEVOPS, read_only=True, destructive=False, idempotent=True, open_world=True)
async def pulumi_preview(deps: PulumiDeps, project: Project, stack: Stack, ctx: Context[Any, Any]) -> ChangePreview:
    """Preview an update: run the program, save the plan, and list what would be created, updated,
    deleted or replaced. Changes nothing. Engine events stream as progress."""
    preview, _ = await deps.client.preview(project, stack, progress_sink(ctx))
    return preview


async def preview_up(deps: PulumiDeps, project: str, stack: str) -> Preview:
    change, saved = await deps.client.preview(project, stack, None)
    deps.previewed[current_correlation_id()] = saved
    while len(deps.previewed) > 64:  # calls that were previewed but never confirmed
        deps.previewed.pop(next(iter(deps.previewed)))
    counts = ", ".join(f"{k}={v}" for k, v in sorted(change.counts.items())) or "no changes"
    changed = change.creates + change.updates + change.deletes + change.replaces
    return Preview(
        summary=(
            # The full hash is in the text on purpose: an elicitation answer only counts for the
            # exact question asked, so a changed plan is asked again instead of being applied.
            f"pulumi up on {deps.client.qualified(project, stack)} with saved plan sha256:{saved.digest}: {counts}. "
            "Only this plan will be applied; if the stack changes first, the update is refused."
        ),
        details={"plan_hash": saved.digest, "counts": change.counts, "changes": _change_lines(changed)},
        binding=saved.digest,
    )


@tool(
    title="Pulumi: up (apply a previewed plan)",
    role=Role.DEVOPS, read_only=False, destructive=True, idempotent=False, open_world=True, preview=preview_up,
)
async def pulumi_up(deps: PulumiDeps, project: Project, stack: Stack, ctx: Context[Any, Any]) -> OperationResult:
    """Apply the stack's program with `up --plan`, only after the user confirmed that exact saved plan.
    The confirmation is bound to the plan's hash: if the stack or program changed since, it is refused."""
    saved = deps.previewed.pop(current_correlation_id(), None)
    if saved is None or saved != deps.client.saved_plan(project, stack):
        raise Conflict(
            "the plan you confirmed is no longer this stack's latest preview (another preview ran "
            "meanwhile); nothing was applied. Call pulumi_up again to preview and confirm the current plan"
        )
    return await deps.client.up(project, stack, saved, progress_sink(ctx))


async def preview_refresh(deps: PulumiDeps, project: str, stack: str) -> Preview:
    deps.client.require_cli("pulumi_refresh")
    rows = await deps.client.resources(project, stack)
    return Preview(
        summary=(
            f"pulumi refresh on {deps.client.qualified(project, stack)}: read the real state of {len(rows)} "
            "resources and update the stack's state to match (cloud resources are not changed)."
        ),
        details={"resources": len(rows)},
    )


@tool(
    role=Role.DEVOPS,
    read_only=False,
    destructive=False,
    idempotent=True,
    open_world=True,
    confirm=True,
    preview=preview_refresh,
)
async def pulumi_refresh(deps: PulumiDeps, project: Project, stack: Stack, ctx: Context[Any, Any]) -> OperationResult:
    """Refresh a stack's state from the real resources (cloud resources are untouched)."""
    return await deps.client.refresh(project, stack, progress_sink(ctx))


async def preview_destroy(deps: PulumiDeps, project: str, stack: str) -> Preview:
    deps.client.require_cli("pulumi_destroy")
    rows = await deps.client.resources(project, stack)
    doomed = [r.urn for r in rows if r.type != "pulumi:pulumi:Stack"]
    return Preview(
        summary=(
            f"pulumi destroy on {deps.client.qualified(project, stack)}: DELETE all {len(doomed)} resources "
            "listed in details.resources. This cannot be undone."
        ),
        details={"count": len(doomed), "resources": doomed},
        binding=urns_hash(doomed),
    )


@tool(
    role=Role.ADMIN, read_only=False, destructive=True, idempotent=False, open_world=True, preview=preview_destroy
)
async def pulumi_destroy(deps: PulumiDeps, project: Project, stack: Stack, ctx: Context[Any, Any]) -> OperationResult:
    """Delete every resource of a stack (the confirmation lists every resource).
    The stack itself and its history remain."""
    return await deps.client.destroy(project, stack, progress_sink(ctx))


@tool(role=Role.DEVOPS, read_only=False, destructive=False, idempotent=True, open_world=True)
async def pulumi_set_config(
    deps: PulumiDeps,
    project: Project,
    stack: Stack,
    key: Annotated[
        str,
        Field(
            description="Config key, 'name' (the project's namespace) or 'namespace:name'.",
            min_length=1,
            max_length=200,
        ),
    ],
    value: Annotated[
        str | None,
        Field(description="Plain value (stored in clear). Give this or secret_value.", max_length=10_000),
    ] = None,
    secret_value: Annotated[
        str | None,
        Field(
            description="Secret value, stored encrypted by the stack's secrets provider and never echoed.",
            max_length=10_000,
        ),
    ] = None,
) -> ConfigSetResult:
    """Set one configuration value on a stack; secret values are stored as secrets."""
    if (value is None) == (secret_value is None):
        raise InvalidArgument("give exactly one of `value` (plain) or `secret_value` (stored as a secret)")
    full_key = check_config_key(key, project)
    secret = secret_value is not None
    text = secret_value if secret_value is not None else value
    assert text is not None
    await deps.client.set_config(project, stack, full_key, text, secret)
    return ConfigSetResult(project=project, stack=stack, key=full_key, secret=secret)


# -- the server -----------------------------------------------------------------------------

TOOLS = Toolset((
    pulumi_list_stacks,
    pulumi_stack_outputs,
    pulumi_list_resources,
    pulumi_stack_history,
    pulumi_get_config,
    pulumi_preview,
    pulumi_up,
    pulumi_refresh,
    pulumi_destroy,
    pulumi_set_config,
))


def build_server(settings: PulumiSettings) -> SophiaServer:
    """The Pulumi server: read tools from state or CLI, change tools through the Automation API."""
    server = SophiaServer("pulumi", settings=settings, instructions=INSTRUCTIONS)
    TOOLS.register(server, PulumiDeps(settings=settings, client=PulumiClient(settings), server=server))
    return server


def _audit_reveal(server: SophiaServer, project: str, stack: str, secret_names: list[str]) -> None:
    """A second audit record naming what was revealed, whatever SOPHIA_PULUMI_AUDIT_VALUES says."""
    principal = current_principal()
    server.audit.append(
        AuditEvent(
            principal=principal.name,
            principal_kind=principal.kind,
            role=principal.role.label,
            server=server.name,
            tool="pulumi_stack_outputs#reveal_secrets",
            arguments={"project": project, "stack": stack, "revealed_outputs": secret_names[:100]},
            outcome=Outcome.OK,
            error_code=None,
            duration_ms=0.0,
            correlation_id=current_correlation_id(),
        )
    )


async def check(settings: PulumiSettings) -> str:
    """Config + connectivity in one line; raise when neither the CLI nor file state is usable."""
    import anyio.to_thread

    client = PulumiClient(settings)
    cli = client.cli_path()
    if client.file_root is None and cli is None:
        client.require_cli(f"backend {client.safe_backend()}")
    parts = [f"backend {client.safe_backend()}"]
    if client.file_root is not None:
        stacks = await anyio.to_thread.run_sync(client.state_stacks, None)
        parts.append(f"{len(stacks)} stacks in file state")
    if cli is None:
        parts.append("no Pulumi CLI (read tools only; change tools answer unavailable)")
    else:
        command = await anyio.to_thread.run_sync(client.pulumi_command)
        parts.append(f"pulumi CLI {command.version} at {cli}")
    return "; ".join(parts)
