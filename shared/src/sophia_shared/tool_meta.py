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

    @field_validator("role", "toolset", mode="before")
    @classmethod
    def _text_or_absent(cls, value: object) -> str | None:
        return str(value) if value else None

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
    def listed(cls, *, role: Role, toolset: str | None, confirm: bool) -> ToolMeta:
        return cls(role=role.label, toolset=toolset, confirm=confirm)

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
