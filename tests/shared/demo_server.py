"""A small server for the foundation's tests: one tool per kind of step in the request path."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import BaseModel, Field
from sophia_shared.cli import run, server_app
from sophia_shared.errors import NotConfigured, NotFound, UpstreamError
from sophia_shared.server import Preview, Role, SophiaServer, current_correlation_id, current_principal
from sophia_shared.settings import ServerSettings, settings_config


class DemoSettings(ServerSettings):
    model_config = settings_config("demo")
    greeting: str = "hello"
    api_password: str | None = None


class Echo(BaseModel):
    text: str
    principal: str
    role: str
    correlation_id: str


class Dropped(BaseModel):
    dropped: str


STATE: dict[str, int] = {"plan": 1}


def build_server(settings: DemoSettings) -> SophiaServer:
    server = SophiaServer("demo", settings=settings, instructions="A demo server for Sophia's own tests.")
    tables = {"orders", "customers"}

    @server.tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=False)
    async def demo_echo(
        text: Annotated[str, Field(description="What to echo back.", min_length=1, max_length=50)],
    ) -> Echo:
        """Echo the text with the caller's principal."""
        who = current_principal()
        return Echo(text=f"{settings.greeting} {text}", principal=who.name, role=who.role.label,
                    correlation_id=current_correlation_id())

    @server.tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=False)
    async def demo_big(size: Annotated[int, Field(description="Characters to return.", ge=1, le=10_000_000)]) -> str:
        """Return a string of the given size (to test the result cap)."""
        return "x" * size

    @server.tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
    async def demo_fail(kind: Annotated[str, Field(description="crash | upstream | config | missing")]) -> str:
        """Fail in the way asked."""
        if kind == "upstream":
            raise UpstreamError("the demo upstream refused", detail="upstream said: password=hunter2 is wrong")
        if kind == "config":
            raise NotConfigured("set SOPHIA_DEMO_API_PASSWORD")
        if kind == "missing":
            raise NotFound("no such thing 'x'")
        raise RuntimeError("internal detail that must not leak: token=sekrit")

    @server.tool(role=Role.DEVELOPER, read_only=False, destructive=False, idempotent=True, open_world=False)
    async def demo_write(value: Annotated[int, Field(description="A value to store.")], ctx: Context) -> str:
        """A non-destructive write (hidden in read-only mode); reports progress."""
        await ctx.report_progress(1, 2, "half way")
        await ctx.report_progress(2, 2, "done")
        return f"stored {value}"

    async def preview_drop(table: str) -> Preview:
        return Preview(summary=f"drop table {table} (plan v{STATE['plan']})", details={"table": table},
                       binding=f"plan-{STATE['plan']}")

    @server.tool(role=Role.DEVOPS, read_only=False, destructive=True, idempotent=False, open_world=False,
                 preview=preview_drop)
    async def demo_drop(table: Annotated[str, Field(description="Table to drop.", min_length=1)]) -> Dropped:
        """Drop a table (destructive: confirmed)."""
        if table not in tables:
            raise NotFound(f"no table {table!r}; tables: {sorted(tables)}")
        tables.discard(table)
        return Dropped(dropped=table)

    async def only_for_prod(target: str) -> bool:
        return target == "prod"

    @server.tool(role=Role.DEVELOPER, read_only=False, destructive=False, idempotent=False, open_world=False,
                 confirm=True, confirm_when=only_for_prod)
    async def demo_deploy(target: Annotated[str, Field(description="dev or prod")]) -> str:
        """Deploy; only prod needs confirmation."""
        return f"deployed to {target}"

    @server.tool(role=Role.ADMIN, read_only=False, destructive=False, idempotent=True, open_world=False)
    async def demo_admin(login_password: Annotated[str, Field(description="A secret argument.")]) -> str:
        """An admin-only tool with a secret argument."""
        return "ok"

    @server.resource("demo://{name}", name="demo", description="A greeting for the reader.")
    async def demo_resource(name: str) -> str:
        return f"{settings.greeting} {name}, read by {current_principal().name}"

    return server


async def check(settings: DemoSettings) -> str:
    if settings.greeting == "fail":
        raise NotConfigured("greeting 'fail' means: not configured (set SOPHIA_DEMO_GREETING)")
    return f"demo server ready (greeting {settings.greeting!r})"


app = server_app("demo", DemoSettings, build_server, check)


def main() -> None:
    run(app)


if __name__ == "__main__":
    main()
