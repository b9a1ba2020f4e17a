"""Small child servers the host tests compose, run as real subprocesses over stdio.

`python child_server.py NAME [--hang-init | --http PORT | --not-configured | --hold FIFO]`: a SophiaServer
named NAME with tools NAME_echo, NAME_slow, NAME_delete (destructive, confirmed), NAME_crash (the process dies
mid-call), NAME_hang (never answers; NAME_cancelled counts its cancellations),
NAME_grow (adds a tool: tools/list_changed), NAME_fail (raises the error of the code it is given),
NAME_admin (needs role admin), and its own check as sophia://health (with --not-configured the check
answers not_configured naming SOPHIA_NAME_TOKEN). With --hang-init the
process reads stdin and never answers, the way a wedged server looks to the host; with --http it
serves streamable HTTP on 127.0.0.1:PORT (a remote server, to the host); with --hold it serves stdio
only once a writer has opened and closed FIFO (a server that is still starting, for as long as a test wants);
with --report-start FILE it first writes what it sees of its start (environment, argv, sys.path[0], cwd,
session, signals, open fds) to FILE as JSON.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import anyio
from mcp.server.mcpserver import Context
from pydantic import BaseModel, Field
from sophia_shared.errors import ErrorCode, Forbidden, NotConfigured, NotFound, SophiaError
from sophia_shared.health import install_health
from sophia_shared.server import Role, SophiaServer, current_correlation_id, current_principal
from sophia_shared.settings import ServerSettings
from sophia_shared.tool_meta import role_only


class Echo(BaseModel):
    text: str
    principal: str
    role: str
    correlation_id: str
    pid: int


# One class per stable code: the first subclass that declares it (a more specific one may follow).
_ERRORS: dict[ErrorCode, type[SophiaError]] = {}
for _cls in SophiaError.__subclasses__():
    _ERRORS.setdefault(_cls.code, _cls)


def build(name: str, configured: bool = True) -> SophiaServer:
    server = SophiaServer(name, settings=ServerSettings())
    cancelled = {"count": 0}

    async def check() -> str:
        if not configured:
            raise NotConfigured(f"{name} is not configured: set SOPHIA_{name.upper()}_TOKEN")
        return f"{name} answers"

    install_health(server, check)

    @server.tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=False,
                 name=f"{name}_echo")
    async def echo(
        text: Annotated[str, Field(description="Text to echo back.", max_length=10_000)],
        tag: Annotated[str | None, Field(description="Admins only: a tag to add.", max_length=20,
                                         json_schema_extra=role_only(Role.ADMIN))] = None,
    ) -> Echo:
        """Echo the text with who asked, as this server saw it."""
        if text == "missing":
            raise NotFound("no such thing as 'missing'; ask for something else")
        who = current_principal()
        if tag is not None:
            if who.role < Role.ADMIN:
                raise Forbidden("only an admin may tag an echo")
            text = f"{text} [{tag}]"
        return Echo(text=text, principal=who.name, role=who.role.label,
                    correlation_id=current_correlation_id(), pid=os.getpid())

    @server.tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=False,
                 name=f"{name}_slow")
    async def slow(steps: Annotated[int, Field(description="Progress steps to report.", ge=1, le=20)],
                   ctx: Context) -> str:
        """Report progress for each step, then answer."""
        for i in range(steps):
            await ctx.report_progress(i + 1, steps, f"step {i + 1}")
        return f"{steps} steps"

    @server.tool(role=Role.DEVELOPER, read_only=False, destructive=True, idempotent=False, open_world=False,
                 name=f"{name}_delete")
    async def delete(item: Annotated[str, Field(description="What to delete.")]) -> str:
        """Delete an item (needs the user's confirmation)."""
        return f"deleted {item} for {current_principal().name}"

    @server.tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=False,
                 name=f"{name}_crash")
    async def crash() -> str:
        """Kill this server's process mid-call."""
        os._exit(3)

    @server.tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=False,
                 name=f"{name}_hang")
    async def hang() -> str:
        """Never answer (until cancelled)."""
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled["count"] += 1
            raise
        return "unreachable"

    @server.tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=False,
                 name=f"{name}_cancelled")
    async def cancelled_calls() -> int:
        """How many calls of the hang tool this process saw cancelled."""
        return cancelled["count"]

    @server.tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=False,
                 name=f"{name}_fail")
    async def fail(code: Annotated[str, Field(description="The stable error code to fail with.")]) -> str:
        """Fail with the tool error of the given stable code (internal: an unexpected crash of the tool)."""
        if code == ErrorCode.INTERNAL:
            raise RuntimeError("an unexpected bug")
        raise _ERRORS[ErrorCode(code)](f"failing with {code} as asked")

    @server.tool(role=Role.ADMIN, read_only=True, destructive=False, idempotent=True, open_world=False,
                 name=f"{name}_admin")
    async def admin() -> str:
        """Answer only an administrator."""
        return f"hello admin {current_principal().name}"

    @server.tool(role=Role.DEVELOPER, read_only=False, destructive=False, idempotent=True, open_world=False,
                 name=f"{name}_grow")
    async def grow(ctx: Context) -> str:
        """Add a tool to this server and announce it with tools/list_changed."""

        @server.tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=False,
                     name=f"{name}_grown")
        async def grown() -> str:
            """A tool that appeared at run time."""
            return "grown"

        await ctx.notify_tools_changed()
        return "grew"

    return server


def start_report() -> dict[str, object]:
    """What a process sees of how it was started. Its environment as it sees it (os.environ): for a
    child forked from the host's fork server, /proc/PID/environ shows the fork server's start-up one."""
    import signal
    import stat
    import threading

    import __main__

    return {
        "environ": dict(os.environ), "argv": sys.argv, "path0": sys.path[0], "cwd": os.getcwd(),
        "main_file": getattr(__main__, "__file__", None), "flags": list(sys.flags),
        "leads_session": os.getsid(0) == os.getpid(), "threads": threading.active_count(),
        "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
        "signals": {s.name: repr(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD,
                                                                 signal.SIGPIPE, signal.SIGHUP)},
        "stdio": [stat.S_IFMT(os.fstat(fd).st_mode) for fd in (0, 1, 2)],
    }


def main() -> None:
    name = sys.argv[1]
    if "--report-start" in sys.argv:
        Path(sys.argv[sys.argv.index("--report-start") + 1]).write_text(json.dumps(start_report()))
    if "--hang-init" in sys.argv:
        for _line in sys.stdin:
            pass
        return
    if "--hold-restarts" in sys.argv:  # the first start serves at once; every later one waits on the gate
        restart_gate = sys.argv[sys.argv.index("--hold-restarts") + 1]
        started = Path(f"{restart_gate}.started")
        if started.exists():
            with open(restart_gate, "rb") as held:
                held.read()
        started.touch()
    if "--hold" in sys.argv:
        with open(sys.argv[sys.argv.index("--hold") + 1], "rb") as gate:
            gate.read()
    if "--http" in sys.argv:
        port = int(sys.argv[sys.argv.index("--http") + 1])
        build(name).run("streamable-http", host="127.0.0.1", port=port)
        return
    build(name, configured="--not-configured" not in sys.argv).run("stdio")


if __name__ == "__main__":
    main()
