"""The contract with a composing host: what Sophia writes in a listed tool's `_meta["sophia"]`.

The server writes it with `ToolMeta.listed`; the host reads it back with `ToolMeta.of`. Reading is
lenient field by field (a child is another process, maybe another version): a field that does not
parse counts as absent, so one bad value never hides the rest.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from .errors import InvalidArgument
from .roles import Role

TOOL_META_KEY = "sophia"
# Marks, in a parameter's schema, an argument only a higher role may pass (`role_only`); registration
# moves it into `ToolMeta.args`, so no published schema carries it.
ARG_ROLE_KEY = "x-sophia-role"


def role_only(role: Role) -> dict[str, str]:
    """`Field(json_schema_extra=...)` of an argument only `role` or higher may pass: tools/list leaves it
    out for lower roles, as it leaves out the tools they may not call. The tool still checks the role."""
    return {ARG_ROLE_KEY: role.label}


class ToolMeta(BaseModel):
    """`_meta.sophia` of a listed tool. Defaults are what a reader assumes when a key is absent."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    # The minimum role's name (always written by a Sophia server; absent: the host entry's default).
    role: str | None = None
    # The toolset, written only when it differs from the server's name.
    toolset: str | None = None
    # Whether the user confirms a preview first (written only when true).
    confirm: bool = False
    # False while the server lacks what its external system needs (written only then).
    configured: bool = True
    # Arguments only a role above the tool's may pass, by name (written only when there are some, and
    # only in a whole catalogue: a caller's own listing has left out those it may not pass).
    args: dict[str, str] | None = None

    @field_validator("role", "toolset", mode="before")
    @classmethod
    def _text_or_absent(cls, value: object) -> str | None:
        return str(value) if value else None

    @field_validator("args", mode="before")
    @classmethod
    def _names_to_roles(cls, value: object) -> dict[str, str] | None:
        if not isinstance(value, dict):
            return None
        return {str(name): str(role) for name, role in value.items() if isinstance(role, str)} or None

    @field_validator("confirm", mode="before")
    @classmethod
    def _truthy(cls, value: object) -> bool:
        return bool(value)

    @field_validator("configured", mode="before")
    @classmethod
    def _unless_false(cls, value: object) -> bool:
        # Only an explicit false hides a tool: a value that means nothing leaves it listed.
        return value is not False

    @classmethod
    def of(cls, meta: object) -> ToolMeta:
        """The Sophia part of a tool's `_meta` (a dict or None; anything else reads as absent)."""
        sophia = meta.get(TOOL_META_KEY) if isinstance(meta, dict) else None
        return cls.model_validate(sophia) if isinstance(sophia, dict) else cls()

    @classmethod
    def listed(cls, *, role: Role, toolset: str | None, confirm: bool,
               args: dict[str, Role] | None = None) -> ToolMeta:
        return cls(role=role.label, toolset=toolset, confirm=confirm,
                   args={name: arg_role.label for name, arg_role in (args or {}).items()} or None)

    def hidden_from(self, role: Role) -> set[str]:
        """The arguments `role` may not pass (an argument whose role does not parse: hidden from all)."""
        hidden = set()
        for name, label in (self.args or {}).items():
            try:
                needed = Role.parse(label)
            except InvalidArgument:
                hidden.add(name)
                continue
            if role < needed:
                hidden.add(name)
        return hidden

    def role_or(self, default: str) -> Role:
        """The tool's role, else (absent or not a role) `default`, a host entry's default role."""
        try:
            return Role.parse(self.role or default)
        except InvalidArgument:
            return Role.parse(default)

    def dump(self) -> dict[str, Any]:
        """The JSON a server lists: only what differs from the defaults, in a fixed key order."""
        return self.model_dump(exclude_defaults=True)

    def as_tool_meta(self, meta: dict[str, Any] | None = None) -> dict[str, Any]:
        """`meta` (a tool's whole `_meta`) with this as its Sophia part."""
        return {**(meta or {}), TOOL_META_KEY: self.dump()}
