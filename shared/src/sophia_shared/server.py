"""SophiaServer: an MCPServer whose every tool call goes through the one request path (request.py).

principal → role check (tool hidden in read-only mode) → argument validation → confirmation if
needed → tool → result cap → audit record. A server never re-implements a step: `call_tool` hands
the call to `request.serve` with `execute` (the SDK's validation, confirmation and the tool) as
its run step, the step a composing host overrides to forward the call.
"""

from __future__ import annotations

import inspect
import json
import logging
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.utilities.context_injection import find_context_parameter
from mcp.types import (
    CallToolResult,
    InputRequiredResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
    ToolAnnotations,
)
from pydantic import Field, ValidationError

from . import tracing
from .audit import AuditEvent, AuditLog, GroupCommit
from .audit_shape import argument_shape, settings_secrets
from .auth import Principal, Role, local_principal, principal_from_access_token
from .confirm import CONFIRMATION_TOKEN_ARG, ConfirmationGate, Preview
from .errors import ErrorCode, InternalError, InvalidArgument, LimitExceeded, SophiaError
from .redact import clip, get_logger
from .request import (
    CORRELATION_META_KEY,
    PRINCIPAL_META_KEY,
    Call,
    Outcome,
    bound,
    current_correlation_id,
    current_principal,
    identify,
    new_correlation_id,
    record,
    serve,
)
from .schema import compact
from .settings import ServerSettings, SuiteSettings
from .tool_meta import ARG_ROLE_KEY, ToolMeta

__all__ = [
    "CORRELATION_META_KEY",
    "PRINCIPAL_META_KEY",
    "Preview",
    "Principal",
    "Role",
    "SophiaServer",
    "ToolSpec",
    "current_correlation_id",
    "current_principal",
]

log = get_logger("sophia")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class ToolSpec:
    """What the decorator was told about one tool."""

    name: str
    role: Role
    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool
    confirm: bool
    toolset: str
    preview: Callable[..., Awaitable[Preview]] | None = None
    confirm_when: Callable[..., Awaitable[bool]] | None = None
    arg_names: list[str] = field(default_factory=list)
    # False for the few tools that work before the server is configured (e.g. a local cache search).
    needs_config: bool = True
    # Arguments only a higher role may pass (tool_meta.role_only), by name.
    arg_roles: dict[str, Role] = field(default_factory=dict)


class SophiaServer(MCPServer[Any]):
    """An MCP server for one integration, with Sophia's request path around every tool."""

    def __init__(
        self,
        name: str,
        *,
        settings: ServerSettings,
        instructions: str | None = None,
        version: str = "0.1.0",
        lifespan: Any = None,
        suite: SuiteSettings | None = None,
        audit: AuditLog | None = None,
        configured: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(name=name, instructions=instructions, version=version, lifespan=lifespan)
        # httpx logs every request URL at INFO; URLs carry search values (e-mails, names).
        for noisy in ("httpx", "httpcore", "httpx2"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        self.server_settings = settings
        self.suite = suite or SuiteSettings()
        self.read_only = settings.read_only
        self.trust_meta_principal = self.suite.trust_host_principal
        self.local_principal = local_principal(self.suite)
        self.specs: dict[str, ToolSpec] = {}
        # Whether the server has what its external system needs (credentials, a URL): until it has,
        # tools/list shows only the tools registered with needs_config=False.
        self.configured: Callable[[], bool] = configured or (lambda: True)
        self.list_all_tools = self.suite.list_all_tools
        self._audit = audit
        self._group_commit: GroupCommit | None = None
        self._confirm = ConfirmationGate(mode=self.suite.confirm_mode, server=name, suite=self.suite)
        # OpenTelemetry's tracer when SOPHIA_OTEL=1 (request.serve opens one span per call), else None.
        self.tracer: Any = tracing.tracer_for(name, self.suite)

    # -- registration ---------------------------------------------------------------------

    def tool(  # type: ignore[override]
        self,
        *,
        role: Role,
        read_only: bool,
        destructive: bool,
        idempotent: bool,
        open_world: bool,
        confirm: bool | None = None,
        preview: Callable[..., Awaitable[Preview]] | None = None,
        confirm_when: Callable[..., Awaitable[bool]] | None = None,
        toolset: str | None = None,
        name: str | None = None,
        title: str | None = None,
        needs_config: bool = True,
    ) -> Callable[[F], F]:
        """Register a tool with its minimum role and all four annotations.

        `needs_config=False` marks a tool that works before the server is configured; the others
        are left out of tools/list until `configured()` holds (calling them answers not_configured).
        """

        def decorator(fn: F) -> F:
            tool_name = name or fn.__name__
            if tool_name in self.specs:
                raise ValueError(f"tool {tool_name!r} is registered twice on server {self.name!r}")
            if not (fn.__doc__ or "").strip():
                raise ValueError(f"tool {tool_name!r} needs a docstring: it is the tool's description")
            spec = ToolSpec(
                name=tool_name, role=Role.parse(role), read_only=read_only, destructive=destructive,
                idempotent=idempotent, open_world=open_world,
                confirm=destructive if confirm is None else confirm,
                toolset=toolset or self.name, preview=preview, confirm_when=confirm_when,
                needs_config=needs_config,
            )
            if read_only and (destructive or spec.confirm):
                raise ValueError(f"tool {tool_name!r} cannot be read-only and destructive/confirmed")
            registered = self._with_confirmation(fn, spec) if spec.confirm else fn
            # Once per tool, not per parameter: it resolves every annotation (most of a server's start-up).
            ctx_name = find_context_parameter(fn)
            spec.arg_names = [n for n in inspect.signature(fn).parameters if n != ctx_name]
            self.specs[tool_name] = spec
            super(SophiaServer, self).add_tool(
                registered,
                name=tool_name,
                title=title or default_title(tool_name),
                description=describe(inspect.cleandoc(fn.__doc__ or ""), spec),
                annotations=ToolAnnotations(
                    read_only_hint=read_only, destructive_hint=destructive,
                    idempotent_hint=idempotent, open_world_hint=open_world,
                ),
            )
            self._compact_schemas(tool_name)
            return fn

        return decorator

    def _compact_schemas(self, name: str) -> None:
        """Publish the tool's schemas without pydantic's noise (schema.py); validation is unchanged.

        `confirmation_token` is published only in token mode: otherwise no caller is ever handed a
        token (the person approves out of band), save a composing host, which reads no schema to pass
        one; the argument is still accepted. An argument's role mark (tool_meta.role_only) moves to
        `_meta.sophia.args`, which `list_tools_for` reads."""
        tool = self._tool_manager.get_tool(name)
        assert tool is not None
        spec = self.specs[name]
        tool.parameters = compact(tool.parameters, output=False)
        properties: dict[str, Any] = tool.parameters.get("properties", {})
        if spec.confirm and self._confirm.mode != "token":
            properties.pop(CONFIRMATION_TOKEN_ARG, None)
        for arg, schema in properties.items():
            if isinstance(schema, dict) and isinstance(role := schema.pop(ARG_ROLE_KEY, None), str):
                spec.arg_roles[arg] = Role.parse(role)
        tool.meta = _listed_meta(spec, self.name).as_tool_meta()
        if tool.fn_metadata.output_schema is not None:
            tool.fn_metadata.output_schema = compact(tool.fn_metadata.output_schema, output=True)

    def add_tool(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("register tools with SophiaServer.tool(role=..., read_only=..., ...), not add_tool")

    def _with_confirmation(self, fn: Callable[..., Any], spec: ToolSpec) -> Callable[..., Any]:
        """Wrap `fn` so the call is confirmed (elicitation, else a single-use token) before it runs."""
        signature = inspect.signature(fn, eval_str=True)
        hints = typing.get_type_hints(fn, include_extras=True)
        ctx_name = find_context_parameter(fn)
        arg_names = [n for n in signature.parameters if n != ctx_name]
        resolver = self._confirm.resolver(spec, arg_names, self)
        is_async = inspect.iscoroutinefunction(fn)
        gate = self._confirm

        async def confirmed(**kwargs: Any) -> Any:
            outcome = kwargs.pop(ConfirmationGate.PARAM)
            token = kwargs.pop(CONFIRMATION_TOKEN_ARG, None)
            await gate.check(spec, outcome, token, {n: kwargs[n] for n in arg_names}, current_principal())
            if is_async:
                return await fn(**kwargs)
            return await anyio.to_thread.run_sync(lambda: fn(**kwargs))

        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in signature.parameters.values()]
        token_annotation = Annotated[
            str | None,
            Field(
                description=(
                    "Only to repeat a call that answered confirmation_required, once the user approved: "
                    "its token (single use, 5 min)."
                ),
                max_length=200,
            ),
        ]
        params.append(
            inspect.Parameter(CONFIRMATION_TOKEN_ARG, inspect.Parameter.KEYWORD_ONLY, default=None,
                              annotation=token_annotation)
        )
        gate_annotation = gate.parameter_annotation(resolver)
        params.append(inspect.Parameter(ConfirmationGate.PARAM, inspect.Parameter.KEYWORD_ONLY,
                                        annotation=gate_annotation))
        confirmed.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        confirmed.__annotations__ = {
            **hints, CONFIRMATION_TOKEN_ARG: token_annotation, ConfirmationGate.PARAM: gate_annotation,
        }
        confirmed.__name__ = fn.__name__
        confirmed.__doc__ = fn.__doc__
        return confirmed

    # -- listing --------------------------------------------------------------------------

    def visible(self, spec: ToolSpec) -> bool:
        return spec.read_only or not self.read_only

    async def list_tools(self) -> list[Any]:
        """Every tool this server offers in its mode (the catalogue; callers see `list_tools_for`)."""
        tools = await super().list_tools()
        return [t for t in tools if t.name in self.specs and self.visible(self.specs[t.name])]

    def listable(self, spec: ToolSpec, principal: Principal) -> bool:
        """Whether tools/list shows `spec` to `principal`: what its role may call and what works now
        (SOPHIA_LIST_ALL_TOOLS=1: everything the mode allows)."""
        if not self.visible(spec):
            return False
        if self.list_all_tools:
            return True
        if spec.needs_config and not self.configured():
            return False
        return principal.role >= spec.role

    async def list_tools_for(self, principal: Principal) -> list[Any]:
        """The tools/list `principal` sees; a tool shown while its server is unconfigured says so in
        `_meta.sophia.configured` (false), which is how a host knows to keep it out of its own list."""
        configured = self.configured()
        shown = []
        for tool in await self.list_tools():
            spec = self.specs.get(tool.name)
            if spec is None or not self.listable(spec, principal):
                continue
            if spec.needs_config and not configured:
                unconfigured = ToolMeta.of(tool.meta).model_copy(update={"configured": False})
                tool = tool.model_copy(update={"meta": unconfigured.as_tool_meta(tool.meta)})
            shown.append(tool if self.list_all_tools else _arguments_for(tool, principal))
        return shown

    async def _handle_list_tools(self, ctx: Any, params: PaginatedRequestParams | None) -> ListToolsResult:
        principal, _correlation = self._identify(Context(request_context=ctx, mcp_server=self))
        return ListToolsResult(tools=await self.list_tools_for(principal))

    # -- the request path (request.py) ------------------------------------------------------

    def _identify(self, context: Context[Any, Any] | None) -> tuple[Principal, str]:
        token = get_access_token()
        return identify(
            _request_meta(context), trusted=self.trust_meta_principal,
            authenticated=principal_from_access_token(token) if token is not None else None,
            local=self.local_principal,
        )

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        principal, correlation = self._identify(context)
        call = Call(tool=name, arguments=arguments, principal=principal, correlation_id=correlation)
        if self.tracer is not None and self.trust_meta_principal:
            call.traceparent = tracing.parent_of(_request_meta(context))

        async def run(spec: ToolSpec) -> CallToolResult | InputRequiredResult:
            return await self.execute(name, arguments, context)

        return await serve(self, call, run, CallToolResult.model_validate)

    async def call_tool_as(
        self, principal: Principal, name: str, arguments: dict[str, Any]
    ) -> CallToolResult | InputRequiredResult:
        """A call made inside this process for `principal` (the agent under `sophia_ask`): the request
        path of a client's call (role, read-only, confirmation, audit) with no MCP framing and no
        caller to prompt. Inside a call it keeps that call's correlation id, so the audit ties them."""
        call = Call(tool=name, arguments=arguments, principal=principal,
                    correlation_id=current_correlation_id() or new_correlation_id())

        async def run(spec: ToolSpec) -> CallToolResult | InputRequiredResult:
            return await self.execute(name, arguments, None)

        return await serve(self, call, run, CallToolResult.model_validate)

    async def read_resource(self, uri: Any, context: Context[Any, Any] | None = None) -> Any:
        """Resource reads get the same principal (current_principal()) and audit as tool calls."""
        principal, correlation = self._identify(context)
        call = Call(tool="resources/read", arguments={"uri": str(uri)}, principal=principal,
                    correlation_id=correlation)
        with bound(call):
            try:
                return await super().read_resource(uri, context)
            except SophiaError as exc:
                call.outcome, call.code = Outcome.ERROR, exc.code.value
                raise
            except Exception:
                call.outcome, call.code = Outcome.ERROR, ErrorCode.NOT_FOUND.value
                raise
            finally:
                with anyio.CancelScope(shield=True):
                    await record(self, call)

    async def execute(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None
    ) -> CallToolResult | InputRequiredResult:
        """Validate and run the tool (the step a composing host overrides to forward the call)."""
        try:
            return compact_text(await super().call_tool(name, arguments, context))
        except ToolError as exc:
            cause = _sophia_cause(exc)
            if cause is not None:
                raise cause from None
            if isinstance(exc.__cause__, ValidationError):
                raise InvalidArgument(_validation_message(name, exc.__cause__)) from None
            log.error("tool %s crashed", name, exc_info=exc.__cause__ or exc)
            raise InternalError(
                f"{name} failed unexpectedly; the server logged the details. Retry, or report it."
            ) from None

    def check_result_size(self, name: str, size: int) -> None:
        """LimitExceeded when a result's text is over this server's cap."""
        limit = self.server_settings.max_result_chars
        if size > limit:
            raise LimitExceeded(
                f"{name} produced {size} characters, over this server's cap of {limit} "
                f"(SOPHIA_{self.name.upper()}_MAX_RESULT_CHARS); ask for fewer rows or a smaller page"
            )

    # -- audit ----------------------------------------------------------------------------

    @property
    def audit(self) -> AuditLog:
        if self._audit is None:
            self._audit = AuditLog(dsn=self.suite.audit_dsn)
        return self._audit

    def check_audit(self) -> None:
        """Raise AuditUnavailable when the audit log cannot take a record now: nothing runs then."""
        self.audit.ready()

    async def write_audit(self, event: AuditEvent) -> None:
        """Committed before it returns: a server that executes the action records it before answering
        (GroupCommit: concurrent calls share a commit, off the event loop)."""
        if self._group_commit is None or self._group_commit.log is not self.audit:
            self._group_commit = GroupCommit(self.audit)
        await self._group_commit.append(event)

    def _argument_shape(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        return argument_shape(arguments, with_values=self.server_settings.audit_values,
                              known_secrets=settings_secrets(self.server_settings, self.suite))

    # -- transports -----------------------------------------------------------------------

    async def run_stdio_async(self) -> None:
        """Serve stdio on Sophia's checked edge (stdio.py): every bad frame answered, never dropped."""
        from .frames import FrameLimits
        from .stdio import serve_stdio

        await serve_stdio(self, FrameLimits.from_settings(self.suite))

    # -- HTTP auth wiring (used by the CLI) -------------------------------------------------

    def configure_auth(self, verifier: Any, resource_url: str, issuer_url: str | None = None) -> None:
        """Require bearer tokens on HTTP: Sophia tokens, or JWTs from `issuer_url`.

        Protected-resource metadata (and its `resource_metadata` in the 401's WWW-Authenticate) is
        served only with an issuer: it names the authorization server a client would go to, and
        Sophia's own tokens have none, so advertising one would send OAuth clients nowhere.
        """
        self._token_verifier = verifier
        self.settings.auth = AuthSettings(
            # The SDK requires an issuer; with resource_server_url None it is never advertised.
            issuer_url=issuer_url or resource_url,  # type: ignore[arg-type]
            resource_server_url=resource_url if issuer_url else None,  # type: ignore[arg-type]
            # Sophia's verifiers check the audience themselves (JWT) or have none (Sophia tokens).
            validate_token_resource=False,
        )


def _listed_meta(spec: ToolSpec, server: str) -> ToolMeta:
    """`_meta.sophia` of a listed tool: its role always; its toolset, confirmation and argument roles
    only when they differ from the defaults a reader assumes (the server's name; not confirmed; none)."""
    return ToolMeta.listed(role=spec.role, toolset=spec.toolset if spec.toolset != server else None,
                           confirm=spec.confirm, args=spec.arg_roles)


def _arguments_for(tool: Any, principal: Principal) -> Any:
    """`tool` as `principal` sees it: without the arguments its role may not pass, and without the
    roles of arguments, which only a composing host (listing the whole catalogue) needs."""
    sophia = ToolMeta.of(tool.meta)
    if sophia.args is None:
        return tool
    hidden = sophia.hidden_from(principal.role)
    schema: dict[str, Any] = tool.input_schema
    shown = {**schema, "properties": {k: v for k, v in schema.get("properties", {}).items() if k not in hidden}}
    if "required" in schema:
        shown["required"] = [k for k in schema["required"] if k not in hidden]
    meta = sophia.model_copy(update={"args": None}).as_tool_meta(tool.meta)
    return tool.model_copy(update={"input_schema": shown, "meta": meta})


def default_title(name: str) -> str:
    """A tool's title from its name when none is given: `docker_list_containers` → "Docker: list containers"."""
    server, _, rest = name.partition("_")
    return f"{server.capitalize()}: {rest.replace('_', ' ')}" if rest else name.capitalize()


def describe(doc: str, spec: ToolSpec) -> str:
    """The tool's description: its docstring, then the role it needs (above viewer) and whether the user
    must confirm it, both from its declaration so that they cannot drift from what the path enforces."""
    notes = []
    if spec.role > Role.VIEWER:
        notes.append(f"Needs role {spec.role.label} or higher.")
    if spec.confirm:
        notes.append("The user confirms a preview first." if spec.confirm_when is None
                     else "The user may be asked to confirm a preview first.")
    # The notes end the last paragraph: a paragraph break costs 4 bytes of JSON on every listed tool.
    paragraphs = [p for p in (" ".join(p.split()) for p in doc.split("\n\n")) if p]
    if notes:
        paragraphs[-1:] = [" ".join(paragraphs[-1:] + notes)]
    return "\n\n".join(paragraphs)


def compact_text(result: CallToolResult | InputRequiredResult) -> CallToolResult | InputRequiredResult:
    """The text block of a structured result as compact JSON: the SDK renders it indented, which made
    the text (what most clients hand the model) twice the size of the structured content."""
    if not isinstance(result, CallToolResult) or result.structured_content is None or result.is_error:
        return result
    if len(result.content) != 1 or not isinstance(result.content[0], TextContent):
        return result
    text = json.dumps(result.structured_content, ensure_ascii=False, separators=(",", ":"), default=str)
    return result.model_copy(update={"content": [TextContent(type="text", text=text)]})


def _sophia_cause(exc: BaseException) -> SophiaError | None:
    """The SophiaError behind a wrapped failure (through causes and task-group exception groups)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, SophiaError):
            return seen
        if isinstance(seen, BaseExceptionGroup):
            for inner in seen.exceptions:
                found = _sophia_cause(inner)
                if found is not None:
                    return found
        seen = seen.__cause__
    return None


def _validation_message(tool: str, error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = clip(".".join(str(p) for p in item["loc"])) or "arguments"
        parts.append(f"{where}: {clip(item['msg'])}")
    return f"invalid arguments for {tool}: " + "; ".join(parts)


def _request_meta(context: Context[Any, Any] | None) -> object:
    """The request's `_meta` as the SDK parsed it (None outside a request)."""
    if context is None:
        return None
    try:
        meta = context.request_context.meta
    except (ValueError, AttributeError, LookupError):
        return None
    if meta is None or isinstance(meta, Mapping):
        return meta
    return meta.model_dump(by_alias=True) if hasattr(meta, "model_dump") else None
