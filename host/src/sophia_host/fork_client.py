"""The host's side of its fork server (fork_server.py): start it, ask it for children, hear their exits.

A child is forked only when a plain start of its command would run the very interpreter and code
the fork server preloaded, with the environment it started with (`plan` below); anything else (a
remote server, a non-Python command, another interpreter, interpreter flags, an `env` table that
changes what Python reads at start) is spawned the plain way, and so is every child once the fork
server fails. The fork server starts from `PROCESS` only — what every child's environment has in
common and no server's settings or secrets — so no child can read another's secrets from it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from .child_env import PROCESS, late_read
from .fork_server import FDS_PER_CHILD, MAX_PACKET, Launch
from .forked import ForkedProcess, open_pipes

log = logging.getLogger("sophia.host")

# How long a fork may take before the child is spawned the plain way instead (a fork is milliseconds).
FORK_TIMEOUT_S = 10.0
# Its own stderr, beside the children's logs.
FORK_SERVER_LOG = "fork-server.log"
_STOP_S = 5.0


class ForkServer:
    """One fork server process: started early (before the host's own imports) and served by `serving`."""

    def __init__(self, log_path: Path | None = None, environ: Mapping[str, str] | None = None):
        self.log_path = log_path
        self.env = PROCESS.pick(os.environ if environ is None else environ)
        self.process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._serving = False
        self._ids = itertools.count(1)
        self._replies: dict[int, tuple[anyio.Event, dict[str, Any]]] = {}
        self._children: dict[int, ForkedProcess] = {}

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.usable else None

    @property
    def usable(self) -> bool:
        return self._serving and self._control is not None

    def start(self) -> None:
        """Start the process (synchronously: its imports then run while the host does its own)."""
        if self.process is not None:
            return
        host_end, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        stderr: Any = subprocess.DEVNULL
        try:
            if self.log_path is not None:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                stderr = self.log_path.open("ab")
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sophia_host.fork_server", str(server_end.fileno())],
                env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                pass_fds=(server_end.fileno(),), start_new_session=True, close_fds=True,
            )
        except OSError as exc:
            log.info("no fork server (%s); children start the plain way", exc)
            host_end.close()
            return
        finally:
            server_end.close()
            if stderr is not subprocess.DEVNULL:
                stderr.close()
        host_end.setblocking(False)
        self._control = host_end

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[ForkServer]:
        """Read the fork server's answers while the host runs; stop it (after its children) on exit."""
        self.start()
        async with anyio.create_task_group() as tg:
            if self._control is not None:
                self._serving = True
                tg.start_soon(self._read)
            try:
                yield self
            finally:
                self._serving = False
                tg.cancel_scope.cancel()
        await self.aclose()

    async def aclose(self) -> None:
        """Hang up: the process leaves once its children have; killed if it has not within a bound."""
        control, self._control = self._control, None
        if control is not None:
            control.close()
        self._lost("the host stopped it")
        process = self.process
        if process is None:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(_STOP_S):
            while process.poll() is None:
                await anyio.sleep(0.05)  # a Popen has no awaitable exit; a few polls while the host stops
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def close_now(self) -> None:
        """Stop it without waiting (the host decided not to use it before serving)."""
        if self._control is not None:
            self._control.close()
            self._control = None
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    # -- forking ----------------------------------------------------------------------------

    async def fork(
        self, name: str, command: Sequence[str], env: Mapping[str, str], stderr_fd: int, cwd: Path | None,
    ) -> ForkedProcess | None:
        """The child forked from the fork server, or None: spawn it the plain way (not eligible, or it failed)."""
        if not self.usable:
            return None
        launch = self.plan(name, command, env, cwd)
        if launch is None:
            return None
        child_in, host_in = os.pipe()
        host_out, child_out = os.pipe()
        try:
            pid = await self._ask(launch, (child_in, child_out, stderr_fd))
        except ForkFailed as exc:
            for fd in (host_in, host_out):
                os.close(fd)
            log.warning("server %s: the fork server could not start it (%s); starting it the plain way", name, exc)
            return None
        finally:
            for fd in (child_in, child_out):
                os.close(fd)
        process = ForkedProcess(pid, *await open_pipes(host_in, host_out))
        self._children[pid] = process
        return process

    async def _ask(self, launch: Launch, fds: tuple[int, int, int]) -> int:
        control = self._control
        if control is None:
            raise ForkFailed("it has stopped")
        request_id = next(self._ids)
        body = {"id": request_id, "run": [launch.kind, launch.target], **asdict(launch)}
        del body["kind"], body["target"]
        packet = json.dumps(body).encode()
        if len(packet) > MAX_PACKET:
            raise ForkFailed("the request is too large")
        done = anyio.Event()
        reply: dict[str, Any] = {}
        self._replies[request_id] = (done, reply)
        try:
            with anyio.fail_after(FORK_TIMEOUT_S):
                await _send_fds(control, packet, fds)
                await done.wait()
        except TimeoutError:
            raise ForkFailed(f"no answer within {FORK_TIMEOUT_S:g} s") from None
        except OSError as exc:
            raise ForkFailed(str(exc)) from None
        finally:
            self._replies.pop(request_id, None)
        if not isinstance(reply.get("pid"), int):
            raise ForkFailed(str(reply.get("error") or "no pid in its answer"))
        return int(reply["pid"])

    async def _read(self) -> None:
        control = self._control
        assert control is not None
        try:
            while True:
                await anyio.wait_readable(control)
                try:
                    packet = control.recv(MAX_PACKET)
                except BlockingIOError:
                    continue
                if not packet:
                    break
                self._dispatch(json.loads(packet))
        except (OSError, ValueError, anyio.ClosedResourceError) as exc:
            log.warning("the fork server's answers cannot be read (%s)", exc)
        if self._control is not None:  # not the host's own hang-up: the process died or misbehaved
            log.warning("the fork server stopped (exit %s); children start the plain way from now on",
                        self.process.poll() if self.process is not None else None)
            self._serving = False
            self._lost("the fork server stopped")

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "exited" in message:
            child = self._children.pop(int(message["exited"]), None)
            if child is not None:
                child.exited_with(int(message["code"]))
            return
        waiting = self._replies.get(message.get("id"))  # type: ignore[arg-type]
        if waiting is not None:
            done, reply = waiting
            reply.update(message)
            done.set()

    def _lost(self, why: str) -> None:
        """No more answers will come: pending forks fail, and forked children died with the fork server
        (PR_SET_PDEATHSIG), so each counts as killed."""
        for done, reply in self._replies.values():
            reply["error"] = why
            done.set()
        children, self._children = self._children, {}
        for child in children.values():
            child.exited_with(-signal.SIGKILL)

    # -- which commands ----------------------------------------------------------------------

    def plan(self, name: str, command: Sequence[str], env: Mapping[str, str], cwd: Path | None) -> Launch | None:
        """How the fork server would run `command` the way its plain start would, or None if it cannot."""
        late = late_read(name, command)
        startup = {k: v for k, v in env.items() if not k.startswith("SOPHIA_") and not late.pick({k: v})}
        if not command or startup != self.env:
            return None
        where = str(cwd) if cwd is not None else os.getcwd()
        program, args = command[0], list(command[1:])
        if program == sys.executable:
            if len(args) >= 2 and args[0] == "-m":
                # `python -m` puts the working directory first on sys.path, as getcwd() names it.
                return Launch("module", args[1], [program, *args[2:]], os.path.realpath(where), dict(env), where)
            if args and not args[0].startswith("-"):
                script = os.path.realpath(os.path.join(where, args[0]))
                return Launch("path", args[0], args, os.path.dirname(script), dict(env), where)
            return None
        entry = self._console_script(program)
        if entry is None:
            return None
        return Launch("entry_point", entry, [program, *args], os.path.dirname(os.path.realpath(program)),
                      dict(env), where)

    def _console_script(self, program: str) -> str | None:
        """`module:attr` of a console script this environment installed beside its interpreter."""
        path = Path(program)
        if not path.is_absolute() or path.parent != Path(sys.executable).parent:
            return None
        try:
            with path.open("rb") as fh:
                first = fh.readline(4096)
        except OSError:
            return None
        if first.strip() != b"#!" + os.fsencode(sys.executable):
            return None
        from .config import console_scripts  # not at the top: `sophia up` imports this module before pydantic

        value = console_scripts().get(path.name)
        if value is None or ":" not in value:
            return None
        return value.split("[", 1)[0].strip()


class ForkFailed(Exception):
    """The fork server did not start a child (it is gone, refused, or did not answer)."""


async def _send_fds(control: socket.socket, packet: bytes, fds: tuple[int, ...]) -> None:
    assert len(fds) == FDS_PER_CHILD
    while True:
        try:
            socket.send_fds(control, [packet], list(fds))
            return
        except BlockingIOError:
            await anyio.wait_writable(control)
