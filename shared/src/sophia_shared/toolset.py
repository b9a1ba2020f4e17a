"""Tools as values: a tool is a module-level `ToolDef` (its handler, minimum role, annotations and
toolset), the handler taking its dependencies as its first argument; a server's `Toolset` lists its
tools in order and registers them on a `SophiaServer` with the dependencies bound.

So a tool can be imported, listed and called on its own (`tool.handler(fake_deps, ...)`) without
building a server, and `build_server` is short: make the dependencies, the server, `register`.
The request path is untouched: registering goes through `SophiaServer.tool`, as before.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .roles import Role

if TYPE_CHECKING:
    from .confirm import Preview
    from .server import SophiaServer

D = TypeVar("D")


@dataclass(frozen=True)
class ToolDef(Generic[D]):
    """One tool: `handler(deps, **arguments)`; its docstring is the tool's description."""

    handler: Callable[..., Any]
    role: Role
    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool
    confirm: bool | None = None
    # Both take (deps, **the tool's arguments), like the handler.
    preview: Callable[..., Awaitable[Preview]] | None = None
    confirm_when: Callable[..., Awaitable[bool]] | None = None
    toolset: str | None = None
    title: str | None = None
    needs_config: bool = True
    name: str = field(default="")
    # Parameters whose schema depends on the settings (e.g. a max_length from a setting):
    # `parameters(deps)` gives their annotations, applied when the tool is registered.
    parameters: Callable[[D], Mapping[str, Any]] | None = None

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.handler.__name__)

    def register(self, server: SophiaServer, deps: D) -> None:
        """Register this tool on `server`, its handler (and preview, confirm_when) bound to `deps`."""
        server.tool(
            role=self.role, read_only=self.read_only, destructive=self.destructive, idempotent=self.idempotent,
            open_world=self.open_world, confirm=self.confirm, toolset=self.toolset, name=self.name,
            title=self.title, needs_config=self.needs_config,
            preview=bind(self.preview, deps) if self.preview else None,
            confirm_when=bind(self.confirm_when, deps) if self.confirm_when else None,
        )(bind(self.handler, deps, self.parameters(deps) if self.parameters else None))


def tool(
    *, role: Role, read_only: bool, destructive: bool, idempotent: bool, open_world: bool,
    confirm: bool | None = None, preview: Callable[..., Awaitable[Preview]] | None = None,
    confirm_when: Callable[..., Awaitable[bool]] | None = None, toolset: str | None = None,
    name: str | None = None, title: str | None = None, needs_config: bool = True,
    parameters: Callable[[Any], Mapping[str, Any]] | None = None,
) -> Callable[[Callable[..., Any]], ToolDef[Any]]:
    """Declare a module-level tool: the same keywords as `SophiaServer.tool`, the handler taking its
    dependencies first."""

    def decorator(handler: Callable[..., Any]) -> ToolDef[Any]:
        return ToolDef(
            handler=handler, role=role, read_only=read_only, destructive=destructive, idempotent=idempotent,
            open_world=open_world, confirm=confirm, preview=preview, confirm_when=confirm_when,
            toolset=toolset, title=title, needs_config=needs_config, name=name or handler.__name__,
            parameters=parameters,
        )

    return decorator


@dataclass(frozen=True)
class Toolset(Generic[D]):
    """A server's tools in the order tools/list shows them."""

    tools: tuple[ToolDef[D], ...]

    def __iter__(self) -> Iterator[ToolDef[D]]:
        return iter(self.tools)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tools]

    def register(self, server: SophiaServer, deps: D) -> None:
        for each in self.tools:
            each.register(server, deps)


def bind(fn: Callable[..., Any], deps: object, annotations: Mapping[str, Any] | None = None) -> Callable[..., Any]:
    """`fn` with its first argument fixed to `deps`, its signature and (evaluated) annotations without it,
    so the SDK builds the tool's schema from the remaining parameters exactly as from a closure.
    `annotations` replace those of the parameters they name."""
    signature = inspect.signature(fn, eval_str=True)
    hints = {**typing.get_type_hints(fn, include_extras=True), **(annotations or {})}
    first, *rest = signature.parameters.values()
    unknown = set(annotations or ()) - {p.name for p in rest}
    if unknown:
        raise ValueError(f"{fn.__name__}: annotations for parameters it does not have: {sorted(unknown)}")
    rest = [p.replace(annotation=hints[p.name]) if p.name in (annotations or {}) else p for p in rest]

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn, assigned=("__module__", "__name__", "__qualname__", "__doc__"), updated=())
        async def bound(*args: Any, **kwargs: Any) -> Any:
            return await fn(deps, *args, **kwargs)
    else:
        @functools.wraps(fn, assigned=("__module__", "__name__", "__qualname__", "__doc__"), updated=())
        def bound(*args: Any, **kwargs: Any) -> Any:
            return fn(deps, *args, **kwargs)

    bound.__signature__ = signature.replace(parameters=rest)  # type: ignore[attr-defined]
    bound.__annotations__ = {k: v for k, v in hints.items() if k != first.name}
    return bound
