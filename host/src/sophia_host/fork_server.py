"""The host's fork server: one process that imports what every Sophia server imports, then forks children.

Every stdio child spends most of its cold start importing the MCP SDK, pydantic and sophia_shared
(~0.9 CPU-s each here); six of them and the host on 2 cores made `sophia up` twice as slow as one
server alone. This process pays those imports once (`python -m sophia_host.fork_server FD`, started by
fork_client.py with only the environment every child shares), and each child forked from it pays only
its own server's modules. It is single-threaded and runs no event loop, so a fork is safe; it refuses
to fork once it sees a second thread (the host then spawns the child the plain way).

The wire is a SOCK_SEQPACKET socket (FD) to the host. The host sends one packet per child: JSON
{"id", "run": [kind, target], "argv", "path0", "env", "cwd"} with three file descriptors, the child's
stdin, stdout and stderr. This process answers {"id", "pid"} or {"id", "error"}, and {"exited": pid,
"code": returncode} when it reaps a child (a negative code is the signal that ended it). When the host
hangs up, it waits for its children to leave (they see their stdin close) and then exits.

In the child, before its server runs: its own session (as `start_new_session`), stdio on the three
descriptors, exactly the environment the host computed (child_env.py), the argv, cwd and sys.path[0]
a plain start of the same command would have, the signal dispositions of a fresh interpreter, and
death with this process (PR_SET_PDEATHSIG): a child whose exit nobody can report must not outlive it.
Then the command runs as its own start would run it: a console script's entry point, `python -m
module` or `python script.py`; the interpreter's normal exit follows (threads joined, atexit, flush).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from typing import Any

# What every Sophia server's stdio start imports (measured: what all six servers have in
# sys.modules after their first tools/list). Nothing here starts a thread, opens a file or reads
# the environment at import; `_single_threaded` checks the first before every fork.
PRELOAD = (
    "sophia_shared.server", "sophia_shared.settings", "sophia_shared.stdio", "sophia_shared.health",
    "sophia_shared.cli", "mcp.server.mcpserver", "mcp.server.stdio", "mcp.client",
    "anyio._backends._asyncio", "anyio.streams.stapled", "anyio.streams.tls", "rich.console", "rich.logging",
    "ctypes", "runpy",
)
MAX_PACKET = 1 << 20
FDS_PER_CHILD = 3
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Launch:
    """One child to start, as the host asked for it."""

    kind: str  # "entry_point" (module:attr), "module" (python -m) or "path" (python script.py)
    target: str
    argv: list[str]
    path0: str
    env: dict[str, str]
    cwd: str

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Launch:
        kind, target = body["run"]
        if kind not in ("entry_point", "module", "path"):
            raise ValueError(f"unknown kind {kind!r}")
        env = {str(k): str(v) for k, v in dict(body["env"]).items()}
        return cls(str(kind), str(target), [str(a) for a in body["argv"]], str(body["path0"]), env, str(body["cwd"]))


def main() -> None:
    """Preload, serve the host until it hangs up, and in a forked child run that child's command."""
    # `python -m` put the host's working directory first on sys.path: no module of it may shadow a
    # preloaded one (the children's own sys.path[0] is set per command).
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    control = socket.socket(fileno=int(sys.argv[1]))
    for name in PRELOAD:
        importlib.import_module(name)
    # What the preload made lives as long as any child: the children's collector need never walk it
    # (and so never writes to those pages, which stay shared with this process).
    gc.freeze()
    launch = serve(control)
    if launch is not None:
        run(launch)


def serve(control: socket.socket) -> Launch | None:
    """Fork a child per request and report exits; returns only in a forked child (with its launch)."""
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
    signal.set_wakeup_fd(wake_write)
    children: set[int] = set()
    open_ = True
    while open_ or children:
        watched = [control.fileno(), wake_read] if open_ else [wake_read]
        readable, _, _ = select.select(watched, [], [])
        if wake_read in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_read, 4096)
        _reap(control, children, open_)
        if not open_ or control.fileno() not in readable:
            continue
        try:
            packet, fds, flags, _address = socket.recv_fds(control, MAX_PACKET, FDS_PER_CHILD)
        except OSError:
            packet, fds, flags = b"", [], 0
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            packet = b"{}"  # answered as a bad request below
        if not packet:
            open_ = False
            for fd in fds:
                os.close(fd)
            continue
        launch = _start(control, packet, fds, children)
        if launch is not None:  # this is the forked child
            signal.set_wakeup_fd(-1)
            for fd in (wake_read, wake_write):
                os.close(fd)
            return launch
    return None


def _start(control: socket.socket, packet: bytes, fds: list[int], children: set[int]) -> Launch | None:
    """Fork one child for `packet`; in the child, return its launch with stdio in place."""
    request_id: Any = None
    try:
        body = json.loads(packet)
        request_id = body.get("id")
        launch = Launch.parse(body)
        if len(fds) != FDS_PER_CHILD:
            raise ValueError(f"expected {FDS_PER_CHILD} file descriptors, got {len(fds)}")
        if not _single_threaded():
            raise RuntimeError("the fork server has more than one thread; forking now is unsafe")
    except (ValueError, KeyError, TypeError, AttributeError, RuntimeError) as exc:
        for fd in fds:
            os.close(fd)
        _send(control, {"id": request_id, "error": f"{type(exc).__name__}: {exc}"})
        return None
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_read)
        _become_child(control, fds, ready_write)
        return launch
    for fd in (*fds, ready_write):
        os.close(fd)
    # The child closes its end once it leads its own session: from then on the host's killpg reaches it.
    os.read(ready_read, 1)
    os.close(ready_read)
    children.add(pid)
    _send(control, {"id": request_id, "pid": pid})
    return None


def _become_child(control: socket.socket, fds: list[int], ready: int) -> None:
    parent = os.getppid()
    os.setsid()
    os.close(ready)
    _die_with(parent)
    control.close()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _die_with(parent: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the fork server died before the prctl took hold
        os._exit(1)


def _reap(control: socket.socket, children: set[int], open_: bool) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        children.discard(pid)
        if open_:
            _send(control, {"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def _send(control: socket.socket, body: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):  # the host is gone: its children leave as their stdin closes
        control.send(json.dumps(body).encode())


def _single_threaded() -> bool:
    try:
        return threading.active_count() == 1 and len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return threading.active_count() == 1


def run(launch: Launch) -> None:
    """Run the child's command in this (forked) process, as a plain start of it would."""
    os.environ.clear()
    os.environ.update(launch.env)
    os.chdir(launch.cwd)
    sys.argv = list(launch.argv)
    sys.path[0:0] = [launch.path0]
    import runpy

    if launch.kind == "module":
        runpy.run_module(launch.target, run_name="__main__", alter_sys=True)
    elif launch.kind == "path":
        runpy.run_path(launch.target, run_name="__main__")
    else:
        module, _, attr = launch.target.partition(":")
        entry: Any = importlib.import_module(module)
        for part in attr.split("."):
            entry = getattr(entry, part)
        sys.exit(entry())


if __name__ == "__main__":
    main()
