"""What the router knows of a tool: its name, description, input schema and whether it destroys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Caps on what one tool may bring in (a hostile server's schema must not make routing slow).
MAX_DESCRIPTION_CHARS = 2000
MAX_PROPERTIES = 64


@dataclass(frozen=True)
class RoutableTool:
    name: str
    description: str
    input_schema: Mapping[str, Any] = field(default_factory=dict)
    destructive: bool = False

    @property
    def properties(self) -> dict[str, Mapping[str, Any]]:
        props = self.input_schema.get("properties")
        if not isinstance(props, Mapping):
            return {}
        return {str(k): v for k, v in list(props.items())[:MAX_PROPERTIES] if isinstance(v, Mapping)}

    @property
    def required(self) -> list[str]:
        required = self.input_schema.get("required")
        if not isinstance(required, list):
            return []
        # A required name with no usable schema stays required: it is reported missing, never dropped.
        return [r for r in required[:MAX_PROPERTIES] if isinstance(r, str)]

    def parameter_text(self) -> str:
        parts = []
        for name, spec in self.properties.items():
            description = spec.get("description")
            parts.append(f"{name} {description[:200] if isinstance(description, str) else ''}")
        return " ".join(parts)

    def embedding_text(self) -> str:
        words = self.name.replace("_", " ").replace(".", " ")
        return f"{words}: {self.description[:MAX_DESCRIPTION_CHARS]}"


def routable(tool: Any) -> RoutableTool:
    """A RoutableTool from an MCP `Tool` (or anything with name, description, input_schema, annotations)."""
    annotations = getattr(tool, "annotations", None)
    read_only = bool(getattr(annotations, "read_only_hint", False)) if annotations is not None else False
    hint = getattr(annotations, "destructive_hint", None) if annotations is not None else None
    # MCP's default for a tool that is not read-only is "destructive": fail closed on a missing hint.
    destructive = (not read_only) if hint is None else bool(hint)
    schema = getattr(tool, "input_schema", None) or getattr(tool, "inputSchema", None) or {}
    return RoutableTool(
        name=str(tool.name), description=str(getattr(tool, "description", None) or "")[:MAX_DESCRIPTION_CHARS],
        input_schema=schema if isinstance(schema, Mapping) else {}, destructive=destructive,
    )
