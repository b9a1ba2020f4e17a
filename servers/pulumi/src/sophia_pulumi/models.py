"""Structured outputs of the Pulumi tools: minimal projections, caps that say when they cut."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from sophia_shared.paging import Page

Source = Literal["state", "cli"]


class StackSummary(BaseModel):
    project: str
    name: str
    last_update: str | None = None
    resource_count: int | None = None
    update_in_progress: bool | None = None


class StackList(BaseModel):
    stacks: list[StackSummary]
    truncated: bool = False
    source: Source
    backend: str = Field(default="", description="the backend read, and why this one (setting, login, demo)")
    demo: bool = Field(default=False, description="true: the demo backend, not your infrastructure")


class OutputValue(BaseModel):
    name: str
    value: Any = Field(description="The value; '[secret]' when the output is secret and not revealed.")
    secret: bool
    truncated: bool = False


class StackOutputs(BaseModel):
    project: str
    stack: str
    outputs: list[OutputValue]
    revealed: bool = Field(description="True when secret values are shown in clear.")
    truncated: bool = False
    source: Source
    backend: str = Field(default="", description="the backend read, and why this one (setting, login, demo)")
    demo: bool = Field(default=False, description="true: the demo backend, not your infrastructure")


class ResourceItem(BaseModel):
    urn: str
    type: str
    name: str
    provider: str | None = None
    parent: str | None = None


class ResourcePage(Page):
    project: str
    stack: str
    resources: list[ResourceItem]
    source: Source
    backend: str = Field(default="", description="the backend read, and why this one (setting, login, demo)")
    demo: bool = Field(default=False, description="true: the demo backend, not your infrastructure")


class HistoryEntry(BaseModel):
    version: int | None = None
    kind: str
    result: str
    message: str = ""
    start_time: str | None = None
    end_time: str | None = None
    resource_changes: dict[str, int] = Field(default_factory=dict)


class HistoryPage(BaseModel):
    project: str
    stack: str
    entries: list[HistoryEntry]
    next_cursor: str | None = None
    truncated: bool = False
    source: Source
    backend: str = Field(default="", description="the backend read, and why this one (setting, login, demo)")
    demo: bool = Field(default=False, description="true: the demo backend, not your infrastructure")


class ConfigEntry(BaseModel):
    key: str
    value: Any = Field(default=None, description="None when the value is secret (never shown).")
    secret: bool


class StackConfig(BaseModel):
    project: str
    stack: str
    entries: list[ConfigEntry]
    truncated: bool = False
    source: Source
    backend: str = Field(default="", description="the backend read, and why this one (setting, login, demo)")
    demo: bool = Field(default=False, description="true: the demo backend, not your infrastructure")


class ResourceChange(BaseModel):
    op: str
    urn: str
    type: str


class ChangePreview(BaseModel):
    project: str
    stack: str
    plan_hash: str = Field(description="Hash of the saved plan; `pulumi_up` binds its confirmation to it.")
    counts: dict[str, int]
    creates: list[ResourceChange]
    updates: list[ResourceChange]
    deletes: list[ResourceChange]
    replaces: list[ResourceChange]
    truncated: bool = False


class OperationResult(BaseModel):
    project: str
    stack: str
    kind: Literal["update", "refresh", "destroy"]
    result: str
    resource_changes: dict[str, int]
    changes: list[ResourceChange]
    truncated: bool = False


class ConfigSetResult(BaseModel):
    project: str
    stack: str
    key: str
    secret: bool
