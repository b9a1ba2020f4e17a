"""Pulumi-specific safety: name and key rules, one operation per stack, the plan's identity."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sophia_shared.errors import Conflict, InvalidArgument

# Pulumi's own rules: project names are [A-Za-z0-9_.-]+, stack names the same (max 100).
NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"
_NAME = re.compile(NAME_PATTERN)
# `[namespace:]name`; Pulumi rejects keys with more than one colon unless --path is used.
CONFIG_KEY_PATTERN = r"^(?:[A-Za-z0-9_.-]+:)?[A-Za-z0-9_.-]+$"
_CONFIG_KEY = re.compile(CONFIG_KEY_PATTERN)


def check_name(kind: str, value: str) -> str:
    if not _NAME.fullmatch(value) or value in {".", ".."}:
        raise InvalidArgument(
            f"{kind} {value!r} is not a valid Pulumi {kind} name: use 1-100 letters, digits, '_', '.', '-'",
            data={"field": kind},
        )
    return value


def check_config_key(key: str, project: str) -> str:
    """Return the fully namespaced key (`project:name` when no namespace was given)."""
    if not _CONFIG_KEY.fullmatch(key):
        raise InvalidArgument(
            f"config key {key!r} is malformed: use 'name' or 'namespace:name' with letters, digits, '_', '.', '-'",
            data={"field": "key"},
        )
    return key if ":" in key else f"{project}:{key}"


class StackGuard:
    """One operation per stack at a time; a second one is refused at once, never queued.

    Queuing would let a model stack up changes it has not looked at; refusing makes it re-read
    the stack after the first operation is done.
    """

    def __init__(self) -> None:
        self._busy: dict[str, str] = {}

    @contextmanager
    def hold(self, stack_key: str, operation: str) -> Iterator[None]:
        running = self._busy.get(stack_key)
        if running is not None:
            raise Conflict(
                f"stack {stack_key} is busy with `{running}`; wait for it to finish, then try again",
                data={"stack": stack_key, "running": running},
            )
        self._busy[stack_key] = operation
        try:
            yield
        finally:
            del self._busy[stack_key]

    def running(self, stack_key: str) -> str | None:
        return self._busy.get(stack_key)


def plan_hash(plan: dict[str, Any]) -> str:
    """Identity of a saved plan: its resource steps and goals and its config.

    The manifest (a timestamp) and per-resource seeds and states change on every preview even when
    nothing else does, so they are left out: two previews of an unchanged stack hash the same, and
    any change in what would happen changes the hash.
    """
    resource_plans = plan.get("resourcePlans") or {}
    identity = {
        "config": plan.get("config") or {},
        "resources": {
            urn: {"steps": rp.get("steps") or [], "goal": rp.get("goal")}
            for urn, rp in sorted(resource_plans.items())
            if isinstance(rp, dict)
        },
    }
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def urns_hash(urns: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(urns)).encode()).hexdigest()
