"""Read a Pulumi file ("DIY") backend directly: checkpoint v3 state, history files, stack config.

This is the read path that needs no CLI. Layout (project-scoped, Pulumi >= 3.61):
  <root>/.pulumi/stacks/<project>/<stack>.json[.gz]       checkpoint v3
  <root>/.pulumi/history/<project>/<stack>/<stack>-<unix-nanos>.history.json
Parsed checkpoints are cached by (mtime, size) so repeated listing of a large stack is cheap.
"""

from __future__ import annotations

import gzip
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Pulumi marks a secret value in state with this signature key/value pair.
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"  # noqa: S105 - a marker, not a secret
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 - a marker, not a secret
# Marks an output value (value + secretness + dependencies), as written by checkpoint version 4.
OUTPUT_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
UNKNOWN_MASK = "[unknown]"
SECRET_MASK = "[secret]"  # noqa: S105 - the mask shown instead of a secret
STACK_TYPE = "pulumi:pulumi:Stack"


class StateError(Exception):
    """A state file exists but cannot be read as checkpoint v3."""


@dataclass(frozen=True, slots=True)
class ResourceRow:
    """Minimal projection of one resource in a checkpoint."""

    urn: str
    type: str
    name: str
    custom: bool
    provider: str | None
    parent: str | None
    resource_id: str | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one checkpoint says about a stack."""

    stack: str
    resources: tuple[ResourceRow, ...]
    outputs: dict[str, Any]
    last_update: str | None
    pending_operations: int


@dataclass(frozen=True, slots=True)
class StackFile:
    project: str
    name: str
    path: Path


def is_secret(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    sig = value.get(SECRET_SIG_KEY)
    return sig == SECRET_SIG or (sig == OUTPUT_SIG and bool(value.get("secret")))


def mask_secrets(value: Any) -> Any:
    """Replace every secret (at any depth) by the mask Pulumi's own CLI prints."""
    if is_secret(value):
        return SECRET_MASK
    if isinstance(value, dict) and value.get(SECRET_SIG_KEY) == OUTPUT_SIG:
        # An output value (checkpoint v4 `outputDependencies`): show what it wraps.
        return mask_secrets(value["value"]) if "value" in value else UNKNOWN_MASK
    if isinstance(value, dict):
        return {k: mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


def contains_secret(value: Any) -> bool:
    if is_secret(value):
        return True
    if isinstance(value, dict):
        return any(contains_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_secret(v) for v in value)
    return False


def _name_of(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _provider_urn(reference: str | None) -> str | None:
    # A provider reference is "<provider urn>::<provider id>"; the id is noise for a reader.
    if not reference:
        return None
    urn, sep, _ = reference.rpartition("::")
    return urn if sep and urn.startswith("urn:") else reference


def parse_checkpoint(raw: dict[str, Any]) -> Snapshot:
    """Checkpoint v3 (`{"version": 3, "checkpoint": {"stack", "latest": {...}}}`) to a Snapshot.

    Version 4 is the same layout plus a `features` list (deployments using newer engine features);
    the fields read here are unchanged, so it is accepted too.
    """
    if not isinstance(raw, dict) or raw.get("version") not in (3, 4) or not isinstance(raw.get("checkpoint"), dict):
        raise StateError("not a checkpoint v3/v4 document")
    checkpoint = raw["checkpoint"]
    latest = checkpoint.get("latest") or {}
    rows: list[ResourceRow] = []
    outputs: dict[str, Any] = {}
    for res in latest.get("resources") or []:
        urn = res.get("urn")
        rtype = res.get("type")
        if not isinstance(urn, str) or not isinstance(rtype, str):
            raise StateError("resource without urn/type")
        if res.get("delete"):
            continue  # pending deletion of a replaced resource: not part of the stack any more
        if rtype == STACK_TYPE and not res.get("parent"):
            outputs = dict(res.get("outputs") or {})
        rows.append(
            ResourceRow(
                urn=urn,
                type=rtype,
                name=_name_of(urn),
                custom=bool(res.get("custom")),
                provider=_provider_urn(res.get("provider")),
                parent=res.get("parent") or None,
                resource_id=res.get("id") or None,
            )
        )
    manifest = latest.get("manifest") or {}
    return Snapshot(
        stack=str(checkpoint.get("stack") or ""),
        resources=tuple(rows),
        outputs=outputs,
        last_update=manifest.get("time"),
        pending_operations=len(latest.get("pending_operations") or []),
    )


STATE_SUFFIXES = (".json.gz", ".json.zst", ".json")
HISTORY_SUFFIXES = (".history.json.gz", ".history.json.zst", ".history.json")


def _decompress(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        # Python 3.11 has no zstd decoder; the CLI reads these (SOPHIA_PULUMI_READ_VIA=cli).
        raise StateError(f"{path.name} is zstd-compressed: read it through the Pulumi CLI (read_via=cli)")
    return data


def _unix_to_iso(value: Any) -> str | None:
    if isinstance(value, int | float) and value > 0:
        return datetime.fromtimestamp(value, tz=UTC).isoformat().replace("+00:00", "Z")
    return None


class FileBackend:
    """The `.pulumi` tree of one file backend."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._meta = root / ".pulumi"
        self._cache: dict[Path, tuple[tuple[int, int], Snapshot]] = {}
        self._lock = threading.Lock()

    def projects(self) -> list[str]:
        stacks_dir = self._meta / "stacks"
        if not stacks_dir.is_dir():
            return []
        return sorted(p.name for p in stacks_dir.iterdir() if p.is_dir())

    def stacks(self, project: str) -> list[StackFile]:
        folder = self._meta / "stacks" / project
        if not folder.is_dir():
            return []
        found: dict[str, tuple[int, StackFile]] = {}
        for path in folder.iterdir():
            for suffix in STATE_SUFFIXES:
                if path.name.endswith(suffix) and path.is_file():
                    name = path.name[: -len(suffix)]
                    mtime = path.stat().st_mtime_ns
                    # Several encodings of one stack: the most recently written wins, as in Pulumi.
                    if name not in found or mtime >= found[name][0]:
                        found[name] = (mtime, StackFile(project, name, path))
                    break
        return [found[k][1] for k in sorted(found)]

    def stack_file(self, project: str, stack: str) -> StackFile | None:
        for entry in self.stacks(project):
            if entry.name == stack:
                return entry
        return None

    def snapshot(self, entry: StackFile) -> Snapshot:
        stat = entry.path.stat()
        key = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._cache.get(entry.path)
        if cached and cached[0] == key:
            return cached[1]
        data = _decompress(entry.path)
        try:
            snap = parse_checkpoint(json.loads(data))
        except (ValueError, TypeError, AttributeError) as exc:
            raise StateError(f"malformed checkpoint: {type(exc).__name__}") from exc
        with self._lock:
            self._cache[entry.path] = (key, snap)
        return snap

    def history(self, project: str, stack: str) -> list[dict[str, Any]]:
        """UpdateInfo records, newest first, each with a 1-based `version` by age."""
        folder = self._meta / "history" / project / stack
        if not folder.is_dir():
            return []
        prefix = f"{stack}-"
        files: list[tuple[int, Path]] = []
        for path in folder.iterdir():
            name = path.name
            for suffix in HISTORY_SUFFIXES:
                if name.startswith(prefix) and name.endswith(suffix):
                    stamp = name[len(prefix) : -len(suffix)]
                    if stamp.isdigit():
                        files.append((int(stamp), path))
                    break
        files.sort()
        records: list[dict[str, Any]] = []
        for version, (_, path) in enumerate(files, start=1):
            try:
                info = json.loads(_decompress(path))
            except ValueError as exc:
                raise StateError(f"malformed history file {path.name}") from exc
            records.append(
                {
                    "version": version,
                    "kind": str(info.get("kind", "")),
                    "result": str(info.get("result", "")),
                    "message": str(info.get("message", "")),
                    "start_time": _unix_to_iso(info.get("startTime")),
                    "end_time": _unix_to_iso(info.get("endTime")),
                    "resource_changes": {str(k): int(v) for k, v in (info.get("resourceChanges") or {}).items()},
                }
            )
        records.reverse()
        return records


def _is_secure(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("secure"), str)


def config_value(value: Any) -> tuple[Any, bool]:
    """A Pulumi.<stack>.yaml value as shown to a client: (value, secret).

    `{secure: ...}` is a secret (value None); an object holding secure values anywhere inside is
    secret too, shown with each of those replaced by the mask — as Pulumi itself treats it.
    """
    if _is_secure(value):
        return None, True

    def masked(item: Any) -> tuple[Any, bool]:
        if _is_secure(item):
            return SECRET_MASK, True
        if isinstance(item, dict):
            pairs = {k: masked(v) for k, v in item.items()}
            return {k: v for k, (v, _) in pairs.items()}, any(hit for _, hit in pairs.values())
        if isinstance(item, list):
            items = [masked(v) for v in item]
            return [v for v, _ in items], any(hit for _, hit in items)
        return item, False

    return masked(value)


def read_stack_config(project_dir: Path, stack: str) -> dict[str, Any] | None:
    """The `config:` map of Pulumi.<stack>.yaml in a project directory, or None if absent."""
    import yaml  # type: ignore[import-untyped]  # local: only config reads need it

    for ext in (".yaml", ".yml", ".json"):
        path = project_dir / f"Pulumi.{stack}{ext}"
        if path.is_file():
            text = path.read_text()
            doc = json.loads(text) if ext == ".json" else yaml.safe_load(text)
            config = (doc or {}).get("config") or {}
            if not isinstance(config, dict):
                raise StateError(f"{path.name}: `config` is not a map")
            return config
    return None
