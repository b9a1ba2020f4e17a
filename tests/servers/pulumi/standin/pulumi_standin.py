"""A STAND-IN for the `pulumi` CLI, for tests only: no real Pulumi CLI can be installed here.

It answers exactly the commands the Automation API (pulumi.automation, LocalWorkspace/Stack) issues
for the operations the Sophia server uses, against a real file backend (checkpoint v3 JSON, history
files, lock files, passphrase-encrypted secrets in Pulumi's format):

  version · stack select/ls/output/history/export · config [set] · preview --save-plan ·
  up --plan · refresh · destroy — with file-based engine event logs (`--event-log`), which the
  Automation API uses for CLI versions <= 3.205, so this stand-in reports v3.200.0.

The "engine" runs the project's real Python program in-process under `pulumi.runtime.set_mocks`
(the SDK's own mock monitor), diffs the registered resources against the checkpoint, and writes
plans, events, state and history. It is not Pulumi's engine: providers are not called, a changed
`name` input means replace, any other changed input means update.

Test hook: when STANDIN_GATE_DIR is set, an operation opens the FIFO `started` for writing (so the
test knows it holds the stack lock) and then waits until the test writes to the FIFO `release`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml  # type: ignore[import-untyped]
from servers.pulumi.standin import passphrase

VERSION = "3.200.0"
SIG_KEY = "4dabf18193072939515e22adb298388d"
SIG = "1b47061264138c4ac30d75fd1eb44270"
STACK_TYPE = "pulumi:pulumi:Stack"
VALUE_FLAGS = {
    "--stack",
    "--save-plan",
    "--plan",
    "--event-log",
    "--exec-kind",
    "--message",
    "--page-size",
    "--page",
    "--client",
    "--color",
    "--parallel",
    "--secrets-provider",
    "--file",
}
DATETIME = "%Y-%m-%dT%H:%M:%S.000000Z"


class CliError(Exception):
    """Printed to stderr as `error: ...`, exit code 255 (what the real CLI does)."""


def parse(argv: list[str]) -> tuple[list[str], dict[str, str], set[str], list[str]]:
    positional: list[str] = []
    values: dict[str, str] = {}
    flags: set[str] = set()
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest = argv[i + 1 :]
            break
        if arg.startswith("--"):
            name, eq, val = arg.partition("=")
            if eq:
                values[name] = val
            elif name in VALUE_FLAGS:
                values[name] = argv[i + 1]
                i += 1
            else:
                flags.add(name)
        else:
            positional.append(arg)
        i += 1
    return positional, values, flags, rest


def now_iso(ts: float) -> str:
    return time.strftime(DATETIME, time.gmtime(ts))


class Backend:
    """The file backend named by PULUMI_BACKEND_URL, for the project in the working directory."""

    def __init__(self, cwd: Path) -> None:
        url = os.environ.get("PULUMI_BACKEND_URL", "")
        if not url.startswith("file://"):
            raise CliError("this stand-in supports file:// backends only (set PULUMI_BACKEND_URL)")
        self.root = Path(unquote(urlparse(url).path))
        self.cwd = cwd
        project_doc = yaml.safe_load((cwd / "Pulumi.yaml").read_text())
        self.project = str(project_doc["name"])
        self.main = cwd / str(project_doc.get("main") or "__main__.py")

    def short(self, ref: str) -> str:
        parts = ref.split("/")
        if len(parts) == 3 and parts[1] != self.project:
            raise CliError(f"no stack named '{ref}' found")
        return parts[-1]

    def stack_path(self, stack: str) -> Path:
        return self.root / ".pulumi" / "stacks" / self.project / f"{stack}.json"

    def history_dir(self, stack: str) -> Path:
        return self.root / ".pulumi" / "history" / self.project / stack

    def load(self, stack: str) -> dict[str, Any]:
        path = self.stack_path(stack)
        if not path.is_file():
            raise CliError(f"no stack named 'organization/{self.project}/{stack}' found")
        doc: dict[str, Any] = json.loads(path.read_text())
        return doc

    def save(self, stack: str, doc: dict[str, Any]) -> None:
        path = self.stack_path(stack)
        if path.is_file():
            path.with_name(path.name + ".bak").write_bytes(path.read_bytes())
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=4))
        tmp.replace(path)

    def stack_config(self, stack: str) -> dict[str, Any]:
        path = self.cwd / f"Pulumi.{stack}.yaml"
        return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}

    def save_stack_config(self, stack: str, doc: dict[str, Any]) -> None:
        (self.cwd / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(doc, sort_keys=True))

    def key(self, stack: str) -> bytes:
        pw = os.environ.get("PULUMI_CONFIG_PASSPHRASE")
        if pw is None:
            raise CliError("passphrase must be set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE")
        salt = self.stack_config(stack).get("encryptionsalt")
        if not salt:
            latest = self.load(stack)["checkpoint"].get("latest") or {}
            salt = ((latest.get("secrets_providers") or {}).get("state") or {}).get("salt")
        if not salt:
            raise CliError("stack has no passphrase salt")
        try:
            return passphrase.key_from_salt_state(pw, str(salt))
        except passphrase.WrongPassphrase as exc:
            raise CliError(str(exc)) from exc

    @contextlib.contextmanager
    def lock(self, stack: str) -> Iterator[None]:
        folder = self.root / ".pulumi" / "locks" / "organization" / self.project / stack
        folder.mkdir(parents=True, exist_ok=True)
        held = list(folder.glob("*.json"))
        if held:
            raise CliError(
                f"the stack is currently locked by {len(held)} lock(s). Either wait for the other "
                "process(es) to end or delete the lock file with `pulumi cancel`."
            )
        mine = folder / f"{uuid.uuid4()}.json"
        mine.write_text(json.dumps({"pid": os.getpid(), "timestamp": now_iso(time.time())}))
        try:
            gate()
            yield
        finally:
            mine.unlink(missing_ok=True)


def gate() -> None:
    folder = os.environ.get("STANDIN_GATE_DIR")
    if not folder:
        return
    with open(Path(folder) / "started", "w") as fh:
        fh.write("started\n")
    with open(Path(folder) / "release") as fh:
        fh.read()


# -- config ---------------------------------------------------------------------------------------


def plain_config(backend: Backend, stack: str, reveal: bool) -> tuple[dict[str, Any], list[str]]:
    """Config as the program sees it (secrets decrypted when `reveal`) and the secret keys."""
    raw = backend.stack_config(stack).get("config") or {}
    out: dict[str, Any] = {}
    secret_keys: list[str] = []
    key = None
    for k, v in raw.items():
        name = k if ":" in k else f"{backend.project}:{k}"
        if isinstance(v, dict) and set(v) == {"secure"}:
            secret_keys.append(name)
            if reveal:
                key = key or backend.key(stack)
                out[name] = passphrase.decrypt(key, v["secure"])
            else:
                out[name] = None
        else:
            out[name] = v
    return out, secret_keys


def cmd_config(backend: Backend, pos: list[str], values: dict[str, str], flags: set[str], rest: list[str]) -> None:
    stack = backend.short(values["--stack"])
    backend.load(stack)
    if pos[1:2] == ["set"]:
        key = pos[2]
        if key.count(":") > 1:
            raise CliError(f"invalid configuration key '{key}': could not parse as a key")
        name = key if ":" in key else f"{backend.project}:{key}"
        value = rest[0] if rest else pos[3]
        doc = backend.stack_config(stack)
        config = doc.setdefault("config", {})
        if "--secret" in flags:
            if "encryptionsalt" not in doc:
                salt = (backend.load(stack)["checkpoint"].get("latest") or {}).get("secrets_providers") or {}
                doc["encryptionsalt"] = salt.get("state", {}).get("salt")
            backend.save_stack_config(stack, doc)
            config[name] = {"secure": passphrase.encrypt(backend.key(stack), value)}
        else:
            config[name] = value
        backend.save_stack_config(stack, doc)
        return
    if len(pos) > 1:
        raise CliError(f"stand-in: unsupported `config {pos[1]}`")
    config, secret_keys = plain_config(backend, stack, "--show-secrets" in flags)
    out: dict[str, Any] = {}
    for k, v in config.items():
        item: dict[str, Any] = {"secret": k in secret_keys}
        if k not in secret_keys or "--show-secrets" in flags:
            if isinstance(v, dict | list):
                item["value"] = json.dumps(v)
                item["objectValue"] = v
            else:
                item["value"] = str(v)
        out[k] = item
    print(json.dumps(out, indent=2))


# -- stack ----------------------------------------------------------------------------------------


def reveal(value: Any, key: bytes | None) -> Any:
    if isinstance(value, dict) and value.get(SIG_KEY) == SIG:
        if key is None:
            return "[secret]"
        if "plaintext" in value:
            return json.loads(value["plaintext"])
        return json.loads(passphrase.decrypt(key, value["ciphertext"]))
    if isinstance(value, dict):
        return {k: reveal(v, key) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v, key) for v in value]
    return value


def root_outputs(doc: dict[str, Any]) -> dict[str, Any]:
    for res in (doc["checkpoint"].get("latest") or {}).get("resources") or []:
        if res["type"] == STACK_TYPE:
            return dict(res.get("outputs") or {})
    return {}


def history_entries(backend: Backend, stack: str) -> list[dict[str, Any]]:
    folder = backend.history_dir(stack)
    files = sorted(folder.glob(f"{stack}-*.history.json")) if folder.is_dir() else []
    return [json.loads(p.read_text()) for p in files]


def stack_init(backend: Backend, stack: str) -> None:
    path = backend.stack_path(stack)
    if path.exists():
        raise CliError(f"stack 'organization/{backend.project}/{stack}' already exists")
    pw = os.environ.get("PULUMI_CONFIG_PASSPHRASE")
    if pw is None:
        raise CliError("passphrase must be set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE")
    doc = backend.stack_config(stack)
    # STANDIN_SALT (tests only) fixes the salt so the key cache serves every test's new stack.
    fixed = os.environ.get("STANDIN_SALT")
    doc["encryptionsalt"], _ = passphrase.new_salt_state(pw, fixed.encode() if fixed else None)
    backend.save_stack_config(stack, doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {"stack": f"organization/{backend.project}/{stack}", "latest": None}
    path.write_text(json.dumps({"version": 3, "checkpoint": checkpoint}, indent=4))
    print(f"Created stack '{stack}'")


def cmd_stack(backend: Backend, pos: list[str], values: dict[str, str], flags: set[str]) -> None:
    sub = pos[1] if len(pos) > 1 else ""
    if sub == "ls":
        folder = backend.root / ".pulumi" / "stacks" / backend.project
        rows = []
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            doc = json.loads(path.read_text())
            latest = doc["checkpoint"].get("latest") or {}
            row: dict[str, Any] = {"name": path.stem, "current": False, "updateInProgress": False}
            if latest:
                row["resourceCount"] = len(latest.get("resources") or [])
                row["lastUpdate"] = now_iso(path.stat().st_mtime)
            rows.append(row)
        print(json.dumps(rows, indent=2))
        return
    if sub == "init":
        stack_init(backend, backend.short(pos[2]))
        return
    stack = backend.short(values["--stack"])
    doc = backend.load(stack)
    show = "--show-secrets" in flags
    if sub == "select" or sub == "":
        return
    if sub == "output":
        key = backend.key(stack) if show else None
        print(json.dumps(reveal(root_outputs(doc), key), indent=2))
    elif sub == "export":
        deployment = doc["checkpoint"].get("latest") or {}
        if show:
            deployment = reveal(deployment, backend.key(stack))
        print(json.dumps({"version": 3, "deployment": deployment}, indent=2))
    elif sub == "history":
        entries = history_entries(backend, stack)
        out = []
        for version, info in enumerate(entries, start=1):
            config = {}
            for k, v in (info.get("config") or {}).items():
                secure = isinstance(v, dict) and set(v) == {"secure"}
                item: dict[str, Any] = {"secret": secure}
                if not secure:
                    item["value"] = v if isinstance(v, str) else json.dumps(v)
                elif show:
                    item["value"] = passphrase.decrypt(backend.key(stack), v["secure"])
                config[k] = item
            out.append(
                {
                    "version": version,
                    "kind": info["kind"],
                    "startTime": now_iso(info["startTime"]),
                    "message": info.get("message", ""),
                    "environment": info.get("environment") or {},
                    "config": config,
                    "result": info["result"],
                    "endTime": now_iso(info["endTime"]),
                    "resourceChanges": info.get("resourceChanges") or {},
                }
            )
        out.reverse()
        if "--page-size" in values:
            size, page = int(values["--page-size"]), int(values.get("--page", "1"))
            out = out[(page - 1) * size : page * size]
        print(json.dumps(out, indent=2))
    else:
        raise CliError(f"stand-in: unsupported `stack {sub}`")


# -- the engine -----------------------------------------------------------------------------------


def run_program(backend: Backend, stack: str, preview: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run the project's Python program under the SDK's mock monitor; return (resources, outputs)."""
    import runpy

    # Secrets first: a missing passphrase fails before the (slow) SDK import, as the CLI fails early.
    config, secret_keys = plain_config(backend, stack, reveal=True)

    import pulumi
    from pulumi.runtime import mocks as pm
    from pulumi.runtime import settings as ps
    from pulumi.runtime.config import set_all_config
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    inputs: dict[tuple[str, str], dict[str, Any]] = {}
    registered: list[dict[str, Any]] = []

    class Recorder(pm.Mocks):  # type: ignore[misc]
        def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
            inputs[(args.typ, args.name)] = dict(args.inputs)
            rid = f"{args.name}-{uuid.uuid5(uuid.NAMESPACE_URL, args.name).hex[:8]}" if args.custom else ""
            return rid, dict(args.inputs)

        def call(self, args: Any) -> tuple[dict[str, Any], None]:
            return {}, None

    class Monitor(pm.MockMonitor):  # type: ignore[misc]
        def make_urn(self, parent: str, type_: str, name: str) -> str:
            # The engine leaves the root stack out of a child's type chain.
            if parent and parent.split("::")[2] == STACK_TYPE:
                parent = ""
            urn: str = super().make_urn(parent, type_, name)
            return urn

        def RegisterResource(self, request: Any) -> Any:
            response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
            registered.append(
                {
                    "urn": response.urn,
                    "type": request.type,
                    "name": request.name,
                    "custom": request.custom,
                    "parent": request.parent or None,
                    "dependencies": list(request.dependencies),
                }
            )
            return response

    recorder = Recorder()
    pm.set_mocks(recorder, project=backend.project, stack=stack, preview=preview, monitor=Monitor(recorder))
    set_all_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}, secret_keys)
    try:

        def program() -> None:
            runpy.run_path(str(backend.main), run_name="__main__")

        _sync_await(run_pulumi_func(program))
    except Exception as exc:
        print(f"error: an unhandled error occurred: program failed: {exc}")
        raise CliError("an unhandled error occurred: the program failed") from exc
    outputs: dict[str, Any] = {}
    root: Any = ps.get_root_resource()
    for name, value in root.outputs.items():
        out = pulumi.Output.from_input(value)
        outputs[name] = (_sync_await(out.future()), bool(_sync_await(out.is_secret())))
    resources = []
    for reg in registered:
        reg["inputs"] = inputs.get((reg["type"], reg["name"]), {})
        resources.append(reg)
    return resources, outputs


def desired_state(
    backend: Backend, stack: str, resources: list[dict[str, Any]], outputs: dict[str, Any], key: bytes | None
) -> list[dict[str, Any]]:
    """The checkpoint resources the program asks for, default providers included."""
    desired: list[dict[str, Any]] = []
    providers: dict[str, str] = {}
    stack_urn = f"urn:pulumi:{stack}::{backend.project}::{STACK_TYPE}::{backend.project}-{stack}"
    for reg in resources:
        if reg["type"] == STACK_TYPE:
            stored = {}
            for name, (value, secret) in outputs.items():
                if secret:
                    if key is None:
                        raise CliError("passphrase must be set with PULUMI_CONFIG_PASSPHRASE")
                    stored[name] = {SIG_KEY: SIG, "ciphertext": passphrase.encrypt(key, json.dumps(value))}
                else:
                    stored[name] = value
            desired.append({"urn": stack_urn, "custom": False, "type": STACK_TYPE, "outputs": stored})
            continue
        entry: dict[str, Any] = {
            "urn": reg["urn"],
            "custom": bool(reg["custom"]),
            "type": reg["type"],
            "inputs": reg["inputs"],
            "parent": reg["parent"] or stack_urn,
            "dependencies": reg["dependencies"],
        }
        if reg["custom"]:
            package = reg["type"].split(":", 1)[0]
            purn = f"urn:pulumi:{stack}::{backend.project}::pulumi:providers:{package}::default"
            if purn not in providers:
                providers[purn] = str(uuid.uuid5(uuid.NAMESPACE_URL, purn))
                desired.append(
                    {
                        "urn": purn,
                        "custom": True,
                        "id": providers[purn],
                        "type": f"pulumi:providers:{package}",
                        "inputs": {},
                        "outputs": {},
                    }
                )
            entry["provider"] = f"{purn}::{providers[purn]}"
            entry["id"] = f"{reg['name']}-{uuid.uuid5(uuid.NAMESPACE_URL, reg['urn']).hex[:8]}"
            entry["outputs"] = dict(reg["inputs"], id=entry["id"])
        desired.append(entry)
    return desired


Step = tuple[str, dict[str, Any], dict[str, Any] | None]


def diff(current: list[dict[str, Any]], desired: list[dict[str, Any]]) -> list[Step]:
    """(op, resource, old) for every resource: same / create / update / replace / delete."""
    old_by_urn = {r["urn"]: r for r in current if not r.get("delete")}
    steps: list[Step] = []
    for res in desired:
        old = old_by_urn.pop(res["urn"], None)
        if old is None:
            steps.append(("create", res, None))
        elif res["type"] == STACK_TYPE or old.get("inputs") == res.get("inputs"):
            steps.append(("same", res, old))
        elif (old.get("inputs") or {}).get("name") != (res.get("inputs") or {}).get("name"):
            steps.append(("replace", res, old))
        else:
            steps.append(("update", res, old))
    for old in reversed(current):
        if old["urn"] in old_by_urn:
            steps.append(("delete", old, old))
    return steps


class EventLog:
    def __init__(self, path: str | None) -> None:
        self.fh = open(path, "a") if path else None  # noqa: SIM115 - closed in close()
        self.seq = 0

    def emit(self, **event: Any) -> None:
        if self.fh is None:
            return
        self.fh.write(json.dumps({"sequence": self.seq, "timestamp": int(time.time()), **event}) + "\n")
        self.fh.flush()
        self.seq += 1

    def step(self, op: str, res: dict[str, Any], old: dict[str, Any] | None, planning: bool) -> None:
        def meta(r: dict[str, Any] | None) -> dict[str, Any] | None:
            if r is None:
                return None
            return {
                "type": r["type"],
                "urn": r["urn"],
                "id": r.get("id", ""),
                "parent": r.get("parent") or "",
                "provider": r.get("provider") or "",
                "custom": r.get("custom", False),
            }

        metadata = {
            "op": op,
            "urn": res["urn"],
            "type": res["type"],
            "provider": res.get("provider") or "",
            "old": meta(old),
            "new": None if op == "delete" else meta(res),
        }
        self.emit(resourcePreEvent={"metadata": metadata, "planning": planning})

    def close(self, counts: dict[str, int]) -> None:
        self.emit(
            summaryEvent={"maybeCorrupt": False, "durationSeconds": 0, "resourceChanges": counts, "PolicyPacks": {}}
        )
        self.emit(cancelEvent={})
        if self.fh is not None:
            self.fh.close()


def counts_of(steps: list[Step]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for op, _, _ in steps:
        counts[op] = counts.get(op, 0) + 1
    return counts


def write_plan(path: str, steps: list[Step], config: dict[str, Any]) -> None:
    plans = {}
    for op, res, _ in steps:
        plans[res["urn"]] = {
            "goal": None
            if op == "delete"
            else {
                "type": res["type"],
                "name": res["urn"].rsplit("::", 1)[-1],
                "custom": res.get("custom", False),
                "inputs": res.get("inputs") or {},
                "parent": res.get("parent"),
                "provider": res.get("provider"),
            },
            "steps": [op],
            # A fresh seed and time per preview, as the real engine writes: plan identity must ignore them.
            "seed": base64.b64encode(os.urandom(16)).decode(),
        }
    doc = {
        "manifest": {"time": now_iso(time.time()), "magic": uuid.uuid4().hex, "version": f"v{VERSION}"},
        "resourcePlans": plans,
        "config": config,
    }
    Path(path).write_text(json.dumps(doc, indent=2))


def check_plan(path: str, steps: list[Step]) -> None:
    plan = json.loads(Path(path).read_text())
    planned = plan.get("resourcePlans") or {}
    for op, res, _ in steps:
        expected = planned.get(res["urn"])
        if expected is None:
            if op != "same":
                raise CliError(f"resource {res['urn']} violates plan: unexpected {op}")
            continue
        if expected["steps"] != [op]:
            raise CliError(f"resource {res['urn']} violates plan: planned {expected['steps']}, got {op}")
        goal = expected.get("goal") or {}
        if op != "delete" and goal.get("inputs") != (res.get("inputs") or {}):
            raise CliError(f"resource {res['urn']} violates plan: properties changed")
    seen = {res["urn"] for _, res, _ in steps}
    for urn, expected in planned.items():
        if urn not in seen and expected["steps"] != ["same"]:
            raise CliError(f"resource {urn} violates plan: planned {expected['steps']} did not happen")


def record_history(
    backend: Backend, stack: str, kind: str, message: str, started: float, counts: dict[str, int], exec_kind: str
) -> None:
    folder = backend.history_dir(stack)
    folder.mkdir(parents=True, exist_ok=True)
    raw = backend.stack_config(stack).get("config") or {}
    # config.Value's JSON form: a string, {"secure": ciphertext}, or the object itself.
    config = dict(raw)
    info = {
        "kind": kind,
        "startTime": int(started),
        "message": message,
        "environment": {"exec.kind": exec_kind},
        "config": config,
        "result": "succeeded",
        "endTime": int(time.time()),
        "resourceChanges": counts,
    }
    stamp = time.time_ns()
    (folder / f"{stack}-{stamp}.history.json").write_text(json.dumps(info, indent=4))
    (folder / f"{stack}-{stamp}.checkpoint.json").write_bytes(backend.stack_path(stack).read_bytes())


def cmd_operation(backend: Backend, op: str, values: dict[str, str], flags: set[str]) -> None:
    stack = backend.short(values["--stack"])
    doc = backend.load(stack)
    started = time.time()
    latest = doc["checkpoint"].get("latest") or {}
    current = list(latest.get("resources") or [])
    events = EventLog(values.get("--event-log"))
    with backend.lock(stack):
        key = backend.key(stack) if os.environ.get("PULUMI_CONFIG_PASSPHRASE") is not None else None
        if op == "refresh":
            steps = [("same", r, r) for r in current]
            for _, res, old in steps:
                events.step("refresh", res, old, planning=False)
            new_resources = current
        elif op == "destroy":
            steps = [("delete", r, r) for r in reversed(current)]
            for _, res, old in steps:
                events.step("delete", res, old, planning=False)
            new_resources = []
        else:
            resources, outputs = run_program(backend, stack, preview=op == "preview")
            desired = desired_state(backend, stack, resources, outputs, key)
            steps = diff(current, desired)
            if op == "up" and "--plan" in values:
                check_plan(values["--plan"], steps)
            for step_op, res, old in steps:
                events.step(step_op, res, old, planning=op == "preview")
            new_resources = desired
        counts = counts_of(steps)
        if op == "preview":
            if "--save-plan" in values:
                config, _ = plain_config(backend, stack, reveal=False)
                write_plan(values["--save-plan"], steps, config)
            events.close(counts)
            print(f"Previewing update ({stack}):")
            return
        now = now_iso(time.time())
        for res in new_resources:
            res.setdefault("created", now)
            res["modified"] = now
        latest = {
            "manifest": {"time": now, "magic": uuid.uuid4().hex, "version": f"v{VERSION}"},
            "secrets_providers": latest.get("secrets_providers")
            or {"type": "passphrase", "state": {"salt": backend.stack_config(stack).get("encryptionsalt")}},
            "resources": new_resources,
            "pending_operations": [],
        }
        doc["checkpoint"]["latest"] = latest
        backend.save(stack, doc)
        kind = {"up": "update", "refresh": "refresh", "destroy": "destroy"}[op]
        record_history(
            backend, stack, kind, values.get("--message", ""), started, counts, values.get("--exec-kind", "cli")
        )
        events.close(counts)
        print(f"{kind} ({stack}) succeeded")


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--non-interactive"]
    pos, values, flags, rest = parse(args)
    try:
        if pos[:1] == ["version"]:
            print(f"v{VERSION}")
            return 0
        backend = Backend(Path.cwd())
        if pos[:1] == ["stack"]:
            cmd_stack(backend, pos, values, flags)
        elif pos[:1] == ["config"]:
            cmd_config(backend, pos, values, flags, rest)
        elif pos[:1] and pos[0] in ("preview", "up", "refresh", "destroy"):
            if pos[0] in ("up", "refresh", "destroy") and "--yes" not in flags:
                raise CliError("--yes must be passed in to proceed when running in non-interactive mode")
            cmd_operation(backend, pos[0], values, flags)
        else:
            raise CliError(f"stand-in: unsupported command {' '.join(pos)!r}")
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 255
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
