"""The only code that talks to Pulumi: file-backend state directly, everything else via the
Automation API (`pulumi.automation`, LocalWorkspace) and the CLI it drives.

`pulumi.automation` imports grpc and the SDK runtime (~0.9 s): it is imported inside the functions
that need it, never at module import, so the server answers initialize/tools/list without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn, TypeVar
from urllib.parse import unquote, urlparse

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from sophia_shared.errors import (
    Conflict,
    NotConfigured,
    NotFound,
    SophiaError,
    Unavailable,
    UpstreamError,
)
from sophia_shared.paths import sophia_home
from sophia_shared.redact import redact, sanitize_untrusted

from .backends import Backend, resolve_backend, seed_demo
from .models import (
    ChangePreview,
    ConfigEntry,
    HistoryEntry,
    OperationResult,
    OutputValue,
    ResourceChange,
    StackSummary,
)
from .policy import StackGuard, check_name, plan_hash
from .settings import PulumiSettings
from .state import (
    SECRET_MASK,
    FileBackend,
    ResourceRow,
    Snapshot,
    StateError,
    config_value,
    contains_secret,
    mask_secrets,
    parse_checkpoint,
    read_stack_config,
)

T = TypeVar("T")
EventSink = Callable[[ResourceChange], Awaitable[None]]
CHANGE_CAP = 100  # per kind of change: four lists of URNs must stay well under the result cap
_REPLACE_OPS = {"replace", "create-replacement", "delete-replaced"}
# CLI error text naming a missing credential -> the Sophia setting that supplies it.
_CREDENTIALS = {
    "PULUMI_CONFIG_PASSPHRASE": "SOPHIA_PULUMI_PASSPHRASE",
    "PULUMI_ACCESS_TOKEN": "SOPHIA_PULUMI_ACCESS_TOKEN",
}


@dataclass(frozen=True)
class SavedPlan:
    digest: str
    path: Path


def _collecting(push: Callable[[ResourceChange], None]) -> tuple[list[ResourceChange], Callable[[Any], None]]:
    """An engine-event callback that keeps each resource change and passes it on to `push`, and the
    list it keeps them in."""
    changes: list[ResourceChange] = []

    def on_event(event: Any) -> None:
        change = _event_change(event)
        if change is not None:
            changes.append(change)
            push(change)

    return changes, on_event


def _event_change(event: Any) -> ResourceChange | None:
    pre = getattr(event, "resource_pre_event", None)
    if pre is None:
        return None
    meta = pre.metadata
    op = getattr(meta.op, "value", str(meta.op))
    # A refresh emits a "refresh" step for every resource; its outcome is in the summary counts.
    if op in ("same", "read", "refresh"):
        return None
    return ResourceChange(op=op, urn=meta.urn, type=meta.type)


def _op_counts(mapping: Any) -> dict[str, int]:
    return {str(getattr(k, "value", k)): int(v) for k, v in dict(mapping or {}).items()}


class PulumiClient:
    """Reads and operations on Pulumi stacks, one instance per server."""

    def __init__(self, settings: PulumiSettings) -> None:
        self.settings = settings
        self.guard = StackGuard()
        self._backend: FileBackend | None = None
        self._command: Any = None
        self._plans: dict[str, SavedPlan] = {}

    # -- where things are -------------------------------------------------------------------------

    @property
    def backend_info(self) -> Backend:
        """The backend in use: the user's own (setting, PULUMI_BACKEND_URL, `pulumi login`) or the demo."""
        return resolve_backend(self.settings)

    @property
    def backend_url(self) -> str:
        return self.backend_info.url

    @property
    def file_root(self) -> Path | None:
        url = self.backend_url
        if not url.startswith("file://"):
            return None
        parsed = urlparse(url)
        raw = "~" + parsed.path if parsed.netloc == "~" else parsed.path
        return Path(os.path.expanduser(unquote(raw)))

    @property
    def projects_dir(self) -> Path:
        return self.settings.projects_dir or sophia_home() / "pulumi" / "projects"

    def qualified(self, project: str, stack: str) -> str:
        return f"{self.settings.organization}/{project}/{stack}"

    def reads_from_state(self) -> bool:
        if self.settings.read_via == "state":
            return True
        if self.settings.read_via == "cli":
            return False
        return self.file_root is not None

    def backend(self) -> FileBackend:
        root = self.file_root
        if root is None:
            raise Unavailable(
                f"backend {self.safe_backend()} is not a file backend; reading it needs the Pulumi CLI",
            )
        if self._backend is None or self._backend.root != root:
            if self.backend_info.demo:
                seed_demo(root)
            self._backend = FileBackend(root)
        return self._backend

    def safe_backend(self) -> str:
        """The backend URL (credentials redacted) and where it came from."""
        return self.backend_info.label

    def cli_path(self) -> Path | None:
        if self.settings.cli is not None:
            return self.settings.cli if self.settings.cli.is_file() else None
        found = shutil.which("pulumi")
        return Path(found) if found else None

    def require_cli(self, what: str) -> Path:
        path = self.cli_path()
        if path is not None:
            return path
        where = (
            f"SOPHIA_PULUMI_CLI={self.settings.cli}"
            if self.settings.cli is not None
            else "`pulumi` on PATH (" + os.environ.get("PATH", "") + ")"
        )
        raise Unavailable(
            f"{what} needs the Pulumi CLI, which was not found; looked for {where}. "
            "Install it or set SOPHIA_PULUMI_CLI",
            data={"looked_for": where},
        )

    def project_dir(self, project: str) -> Path:
        path = self.projects_dir / check_name("project", project)
        if not any((path / f"Pulumi{ext}").is_file() for ext in (".yaml", ".yml", ".json")):
            raise NotFound(
                f"project {project!r} has no program (no Pulumi.yaml in the projects directory); "
                "known projects: " + (", ".join(self.known_projects()) or "none"),
                data={"project": project},
            )
        return path

    def known_projects(self) -> list[str]:
        names: set[str] = set()
        if self.projects_dir.is_dir():
            names.update(p.name for p in self.projects_dir.iterdir() if (p / "Pulumi.yaml").is_file())
        if self.file_root is not None:
            names.update(self.backend().projects())
        return sorted(names)

    def cli_env(self) -> dict[str, str]:
        env = {"PULUMI_BACKEND_URL": self.backend_url, "PULUMI_SKIP_UPDATE_CHECK": "true"}
        if self.settings.passphrase is not None:
            env["PULUMI_CONFIG_PASSPHRASE"] = self.settings.passphrase.get_secret_value()
        if self.settings.access_token is not None:
            env["PULUMI_ACCESS_TOKEN"] = self.settings.access_token.get_secret_value()
        return env

    # -- reads from file state --------------------------------------------------------------------

    def state_stacks(self, project: str | None) -> list[StackSummary]:
        backend = self.backend()
        projects = [project] if project else backend.projects()
        found: list[StackSummary] = []
        for proj in projects:
            for entry in backend.stacks(proj):
                try:
                    snap = backend.snapshot(entry)
                    found.append(
                        StackSummary(
                            project=proj,
                            name=entry.name,
                            last_update=snap.last_update,
                            resource_count=len(snap.resources),
                        )
                    )
                except StateError:
                    found.append(StackSummary(project=proj, name=entry.name))
        return found

    def state_snapshot(self, project: str, stack: str) -> Snapshot:
        backend = self.backend()
        entry = backend.stack_file(check_name("project", project), check_name("stack", stack))
        if entry is None:
            self._raise_unknown(project, stack, [s.name for s in backend.stacks(project)])
        try:
            return backend.snapshot(entry)
        except StateError as exc:
            raise UpstreamError(
                f"the state of stack {self.qualified(project, stack)} cannot be read", detail=str(exc)
            ) from exc

    def _raise_unknown(self, project: str, stack: str, known: list[str]) -> NoReturn:
        if not known and project not in self.known_projects():
            raise NotFound(
                f"project {project!r} not found; known projects: " + (", ".join(self.known_projects()) or "none"),
                data={"project": project},
            )
        raise NotFound(
            f"stack {stack!r} not found in project {project!r}; its stacks: " + (", ".join(known) or "none"),
            data={"project": project, "stack": stack},
        )

    # -- reads (dispatch state / CLI) -------------------------------------------------------------

    async def list_stacks(self, project: str | None) -> list[StackSummary]:
        if project is not None:
            check_name("project", project)
        if self.reads_from_state():
            return await anyio.to_thread.run_sync(self.state_stacks, project)
        self.require_cli(f"listing stacks of backend {self.safe_backend()}")
        projects = [project] if project else self.known_projects()
        if project is not None:
            self.project_dir(project)
        found: list[StackSummary] = []
        for proj in projects:
            found.extend(await anyio.to_thread.run_sync(self._cli_list_stacks, proj))
        return found

    def _cli_list_stacks(self, project: str) -> list[StackSummary]:
        ws = self._workspace(project)
        summaries = self._cli(lambda: ws.list_stacks(), "stack ls")
        out = []
        for s in summaries:
            name = str(s.name).rsplit("/", 1)[-1]
            out.append(
                StackSummary(
                    project=project,
                    name=name,
                    last_update=s.last_update.isoformat() + "Z" if s.last_update else None,
                    resource_count=s.resource_count,
                    update_in_progress=s.update_in_progress,
                )
            )
        return out

    async def resources(self, project: str, stack: str) -> tuple[ResourceRow, ...]:
        if self.reads_from_state():
            snap = await anyio.to_thread.run_sync(self.state_snapshot, project, stack)
            return snap.resources
        return (await anyio.to_thread.run_sync(self._cli_export, project, stack)).resources

    def _cli_export(self, project: str, stack: str) -> Snapshot:
        st = self._select(project, stack)
        # Not Workspace.export_stack: that one always asks for --show-secrets.
        result = self._cli(
            lambda: st.workspace.pulumi_command.run(
                ["stack", "export", "--stack", st.name], st.workspace.work_dir, self.cli_env()
            ),
            "stack export",
        )
        doc = json.loads(result.stdout)
        return parse_checkpoint({"version": 3, "checkpoint": {"stack": st.name, "latest": doc.get("deployment") or {}}})

    async def outputs(self, project: str, stack: str, reveal: bool) -> tuple[list[OutputValue], bool]:
        """Outputs, masked unless `reveal`; returns (outputs, from_state)."""
        if self.reads_from_state() and not reveal:
            snap = await anyio.to_thread.run_sync(self.state_snapshot, project, stack)
            return [
                OutputValue(name=k, value=mask_secrets(v), secret=contains_secret(v))
                for k, v in sorted(snap.outputs.items())
            ], True
        self.require_cli("revealing secret outputs" if reveal else f"reading outputs of backend {self.safe_backend()}")
        return await anyio.to_thread.run_sync(self._cli_outputs, project, stack, reveal), False

    def _cli_outputs(self, project: str, stack: str, reveal: bool) -> list[OutputValue]:
        st = self._select(project, stack)
        if reveal:
            values = self._cli(lambda: st.outputs(), "stack output --show-secrets")
            return [OutputValue(name=k, value=v.value, secret=bool(v.secret)) for k, v in sorted(values.items())]
        result = self._cli(
            lambda: st.workspace.pulumi_command.run(
                ["stack", "output", "--json", "--stack", st.name], st.workspace.work_dir, self.cli_env()
            ),
            "stack output",
        )
        masked = json.loads(result.stdout or "{}")
        return [OutputValue(name=k, value=v, secret=v == SECRET_MASK) for k, v in sorted(masked.items())]

    async def history(self, project: str, stack: str, want: int) -> tuple[list[HistoryEntry], bool]:
        """Up to `want` newest history entries; returns (entries, from_state)."""
        if self.reads_from_state():

            def read() -> list[HistoryEntry]:
                self.state_snapshot(project, stack)  # unknown stack -> not_found
                rows = self.backend().history(project, stack)[:want]
                return [HistoryEntry(**row) for row in rows]

            return await anyio.to_thread.run_sync(read), True
        self.require_cli(f"reading history of backend {self.safe_backend()}")
        return await anyio.to_thread.run_sync(self._cli_history, project, stack, want), False

    def _cli_history(self, project: str, stack: str, want: int) -> list[HistoryEntry]:
        st = self._select(project, stack)
        summaries = self._cli(lambda: st.history(page_size=want, page=1, show_secrets=False), "stack history")
        return [
            HistoryEntry(
                version=s.version,
                kind=str(s.kind),
                result=str(s.result),
                message=str(s.message or ""),
                start_time=s.start_time.isoformat() + "Z" if s.start_time else None,
                end_time=s.end_time.isoformat() + "Z" if s.end_time else None,
                resource_changes=_op_counts(s.resource_changes),
            )
            for s in summaries[:want]
        ]

    async def config(self, project: str, stack: str) -> tuple[list[ConfigEntry], bool]:
        if self.reads_from_state():

            def read() -> list[ConfigEntry]:
                self.state_snapshot(project, stack)
                project_dir = self.projects_dir / project
                try:
                    raw = read_stack_config(project_dir, stack) or {}
                except (StateError, ValueError) as exc:
                    raise UpstreamError(f"the config file of stack {stack!r} cannot be read", detail=str(exc)) from exc
                entries = []
                for key, raw_value in sorted(raw.items()):
                    value, secret = config_value(raw_value)
                    entries.append(ConfigEntry(key=str(key), value=value, secret=secret))
                return entries

            return await anyio.to_thread.run_sync(read), True
        self.require_cli(f"reading config of backend {self.safe_backend()}")
        return await anyio.to_thread.run_sync(self._cli_config, project, stack), False

    def _cli_config(self, project: str, stack: str) -> list[ConfigEntry]:
        st = self._select(project, stack)
        # Not Workspace.get_all_config: that one always asks for --show-secrets.
        result = self._cli(
            lambda: st.workspace.pulumi_command.run(
                ["config", "--json", "--stack", st.name], st.workspace.work_dir, self.cli_env()
            ),
            "config",
        )
        doc = json.loads(result.stdout or "{}")
        entries = []
        for key, item in sorted(doc.items()):
            secret = bool(item.get("secret"))
            value = None if secret else item.get("objectValue", item.get("value"))
            entries.append(ConfigEntry(key=key, value=value, secret=secret))
        return entries

    # -- changes (CLI only) -----------------------------------------------------------------------

    async def set_config(self, project: str, stack: str, key: str, value: str, secret: bool) -> None:
        self.require_cli("pulumi_set_config")
        with self.guard.hold(self.qualified(project, stack), "config set"):
            await anyio.to_thread.run_sync(self._cli_set_config, project, stack, key, value, secret)

    def _cli_set_config(self, project: str, stack: str, key: str, value: str, secret: bool) -> None:
        from pulumi.automation import ConfigValue

        st = self._select(project, stack)
        self._cli(lambda: st.set_config(key, ConfigValue(value=value, secret=secret)), "config set")

    async def preview(self, project: str, stack: str, sink: EventSink | None) -> tuple[ChangePreview, SavedPlan]:
        """`preview --save-plan`: the changes by resource and the saved plan with its hash."""
        self.require_cli("pulumi_preview")
        key = self.qualified(project, stack)
        with self.guard.hold(key, "preview"):
            counts, changes, saved = await self._with_events(lambda push: self._cli_preview(project, stack, push), sink)
        self._plans[key] = saved
        by_op: dict[str, list[ResourceChange]] = {"create": [], "update": [], "delete": [], "replace": []}
        for change in changes:
            bucket = "replace" if change.op in _REPLACE_OPS else change.op
            if bucket in by_op and change not in by_op[bucket]:
                by_op[bucket].append(change)
        truncated = any(len(v) > CHANGE_CAP for v in by_op.values())
        preview = ChangePreview(
            project=project,
            stack=stack,
            plan_hash=saved.digest,
            counts=counts,
            creates=by_op["create"][:CHANGE_CAP],
            updates=by_op["update"][:CHANGE_CAP],
            deletes=by_op["delete"][:CHANGE_CAP],
            replaces=by_op["replace"][:CHANGE_CAP],
            truncated=truncated,
        )
        return preview, saved

    def _plan_dir(self, project: str, stack: str) -> Path:
        path = sophia_home() / "pulumi" / "plans" / project / stack
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _cli_preview(
        self, project: str, stack: str, push: Callable[[ResourceChange], None]
    ) -> tuple[dict[str, int], list[ResourceChange], SavedPlan]:
        st = self._select(project, stack)
        folder = self._plan_dir(project, stack)
        scratch = folder / f"pending-{uuid.uuid4().hex}.json"
        changes, on_event = _collecting(push)
        try:
            result = self._cli(lambda: st.preview(plan=str(scratch), on_event=on_event), "preview")
            digest = plan_hash(json.loads(scratch.read_text()))
            final = folder / f"{digest}.json"
            scratch.replace(final)
            # Only the newest plan of a stack can be applied; older ones are dead weight.
            for old in folder.glob("*.json"):
                if old != final and not old.name.startswith("pending-"):
                    old.unlink(missing_ok=True)
        finally:
            scratch.unlink(missing_ok=True)
        return _op_counts(result.change_summary), changes, SavedPlan(digest, final)

    def saved_plan(self, project: str, stack: str) -> SavedPlan | None:
        saved = self._plans.get(self.qualified(project, stack))
        return saved if saved is not None and saved.path.is_file() else None

    async def up(self, project: str, stack: str, plan: SavedPlan, sink: EventSink | None) -> OperationResult:
        key = self.qualified(project, stack)
        with self.guard.hold(key, "up"):
            try:
                summary, changes = await self._with_events(
                    lambda push: self._cli_run(project, stack, "up", push, plan.path), sink
                )
            finally:
                if self._plans.get(key) == plan:
                    del self._plans[key]
                plan.path.unlink(missing_ok=True)
        return self._result(project, stack, "update", summary, changes)

    async def refresh(self, project: str, stack: str, sink: EventSink | None) -> OperationResult:
        return await self._run_unplanned(project, stack, "refresh", sink)

    async def destroy(self, project: str, stack: str, sink: EventSink | None) -> OperationResult:
        return await self._run_unplanned(project, stack, "destroy", sink)

    async def _run_unplanned(
        self, project: str, stack: str, op: Literal["refresh", "destroy"], sink: EventSink | None
    ) -> OperationResult:
        """`pulumi <op>` with no saved plan, one operation per stack at a time, its events to `sink`."""
        self.require_cli(f"pulumi_{op}")
        with self.guard.hold(self.qualified(project, stack), op):
            summary, changes = await self._with_events(lambda push: self._cli_run(project, stack, op, push, None), sink)
        return self._result(project, stack, op, summary, changes)

    def _result(
        self, project: str, stack: str, kind: Any, summary: Any, changes: list[ResourceChange]
    ) -> OperationResult:
        return OperationResult(
            project=project,
            stack=stack,
            kind=kind,
            result=str(getattr(summary, "result", "unknown")),
            resource_changes=_op_counts(getattr(summary, "resource_changes", None)),
            changes=changes[:CHANGE_CAP],
            truncated=len(changes) > CHANGE_CAP,
        )

    def _cli_run(
        self, project: str, stack: str, op: str, push: Callable[[ResourceChange], None], plan: Path | None
    ) -> tuple[Any, list[ResourceChange]]:
        st = self._select(project, stack)
        changes, on_event = _collecting(push)
        message = f"sophia: {op}"
        if op == "up":
            result = self._cli(
                lambda: st.up(plan=str(plan), on_event=on_event, message=message, show_secrets=False), "up"
            )
        elif op == "refresh":
            result = self._cli(lambda: st.refresh(on_event=on_event, message=message, show_secrets=False), op)
        else:
            result = self._cli(lambda: st.destroy(on_event=on_event, message=message, show_secrets=False), op)
        return result.summary, changes

    # -- plumbing ---------------------------------------------------------------------------------

    async def _with_events(self, run: Callable[[Callable[[ResourceChange], None]], T], sink: EventSink | None) -> T:
        """Run a blocking Automation API call in a worker thread, forwarding its engine events."""
        if sink is None:
            return await anyio.to_thread.run_sync(lambda: run(lambda _change: None))
        send, receive = anyio.create_memory_object_stream[ResourceChange](256)
        token = anyio.lowlevel.current_token()

        def push(change: ResourceChange) -> None:
            # Progress is best effort: the result carries every change anyway.
            with contextlib.suppress(anyio.WouldBlock, anyio.ClosedResourceError, RuntimeError):
                anyio.from_thread.run_sync(send.send_nowait, change, token=token)

        async def pump() -> None:
            async with receive:
                async for change in receive:
                    await sink(change)

        outcome: list[T] = []
        failure: list[Exception] = []

        async def work() -> None:
            try:
                outcome.append(await anyio.to_thread.run_sync(lambda: run(push)))
            except Exception as exc:  # noqa: BLE001 - re-raised below, outside the task group's ExceptionGroup
                failure.append(exc)
            finally:
                send.close()

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            await work()
        if failure:
            raise failure[0]
        return outcome[0]

    def pulumi_command(self) -> Any:
        """The Automation API's PulumiCommand for the CLI in use (runs `pulumi version` once)."""
        path = self.require_cli("this operation")
        if self._command is None or self._command.command != str(path):
            from pulumi.automation import PulumiCommand

            # PulumiCommand wants the install root and runs <root>/bin/pulumi.
            if path.parent.name != "bin":
                raise Unavailable(
                    f"the Pulumi CLI at {path} must sit in a directory named bin/ (as installed by Pulumi)"
                )
            try:
                self._command = PulumiCommand(root=str(path.parent.parent))
            except (OSError, ValueError) as exc:
                raise Unavailable(f"the Pulumi CLI at {path} could not run `pulumi version`") from exc
        return self._command

    def _workspace(self, project: str) -> Any:
        from pulumi.automation import LocalWorkspace

        return LocalWorkspace(
            work_dir=str(self.project_dir(project)),
            pulumi_home=str(self.settings.pulumi_home) if self.settings.pulumi_home else None,
            env_vars=self.cli_env(),
            pulumi_command=self.pulumi_command(),
        )

    def _select(self, project: str, stack: str) -> Any:
        """Select an existing stack; never creates one."""
        from pulumi.automation import Stack

        ws = self._workspace(project)
        check_name("stack", stack)
        return self._cli(lambda: Stack.select(self.qualified(project, stack), ws), "stack select")

    def _cli(self, call: Callable[[], T], what: str) -> T:
        from pulumi.automation import errors as auto_errors

        try:
            return call()
        except SophiaError:
            raise
        except auto_errors.StackNotFoundError as exc:
            raise NotFound(f"stack not found ({what}): check the project and stack names") from exc
        except auto_errors.ConcurrentUpdateError as exc:
            raise Conflict(
                "another update of this stack is in progress (the backend holds its lock); try again later"
            ) from exc
        except auto_errors.CommandError as exc:
            text = str(exc)
            for variable, setting in _CREDENTIALS.items():
                if variable in text:
                    raise NotConfigured(
                        f"pulumi {what} needs a valid {variable}: set or correct {setting} "
                        "(the stack's secrets or its backend need it)",
                        data={"setting": setting},
                    ) from exc
            if "violates plan" in text or ("plan" in text and "not allowed" in text):
                raise Conflict(
                    "the stack changed since the preview: the saved plan no longer holds. "
                    "Nothing outside the plan was applied; run pulumi_preview again",
                    detail=redact(sanitize_untrusted(text[-2000:])),
                ) from exc
            raise UpstreamError(f"pulumi {what} failed", detail=redact(sanitize_untrusted(text[-2000:]))) from exc
        except auto_errors.InvalidVersionError as exc:
            raise Unavailable(f"the Pulumi CLI version is not supported: {exc}") from exc
        except FileNotFoundError as exc:
            raise Unavailable("the Pulumi CLI disappeared while running; check SOPHIA_PULUMI_CLI") from exc
