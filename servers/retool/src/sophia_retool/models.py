"""What the Retool tools return: minimal projections of Retool's objects, never connection secrets."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from sophia_shared.paging import Page
from sophia_shared.redact import sanitize_untrusted


def _text(value: Any, cap: int = 300) -> str | None:
    """Upstream text, stripped of control and bidi characters and cut to `cap`."""
    if value is None:
        return None
    text = sanitize_untrusted(str(value))
    return text if len(text) <= cap else text[: cap - 1] + "…"


def _name(value: Any) -> str:
    return _text(value, 300) or ""


class AppSummary(BaseModel):
    id: str
    name: str
    folder_id: str | None = None
    description: str | None = None
    protected: bool | None = None
    release_version: str | None = None
    updated_at: str | None = None

    @classmethod
    def of(cls, app: dict[str, Any]) -> AppSummary:
        return cls(
            id=str(app.get("id")),
            name=_name(app.get("name")),
            folder_id=_text(app.get("folder_id")),
            description=_text(app.get("description")),
            protected=app.get("protected"),
            release_version=_text(app.get("release_version"), 40),
            updated_at=_text(app.get("updated_at"), 40),
        )


class AppDetail(AppSummary):
    is_module: bool | None = None
    is_mobile_app: bool | None = None
    synced: bool | None = None
    shortlink: str | None = None
    created_at: str | None = None

    @classmethod
    def of(cls, app: dict[str, Any]) -> AppDetail:
        base = AppSummary.of(app).model_dump()
        return cls(
            **base,
            is_module=app.get("is_module"),
            is_mobile_app=app.get("is_mobile_app"),
            synced=app.get("synced"),
            shortlink=_text(app.get("shortlink")),
            created_at=_text(app.get("created_at"), 40),
        )


class AppList(Page):
    apps: list[AppSummary]


class Folder(BaseModel):
    id: str
    name: str
    folder_type: str | None = None
    parent_folder_id: str | None = None
    is_system_folder: bool | None = None

    @classmethod
    def of(cls, folder: dict[str, Any]) -> Folder:
        return cls(
            id=str(folder.get("id")),
            name=_name(folder.get("name")),
            folder_type=_text(folder.get("folder_type"), 20),
            parent_folder_id=_text(folder.get("parent_folder_id"), 40),
            is_system_folder=folder.get("is_system_folder"),
        )


class FolderList(Page):
    folders: list[Folder]


class UserSummary(BaseModel):
    id: str
    email: str
    first_name: str | None = None
    last_name: str | None = None
    active: bool | None = None
    is_admin: bool | None = None
    user_type: str | None = None
    last_active: str | None = None

    @classmethod
    def of(cls, user: dict[str, Any]) -> UserSummary:
        return cls(
            id=str(user.get("id")),
            email=_name(user.get("email")),
            first_name=_text(user.get("first_name"), 100),
            last_name=_text(user.get("last_name"), 100),
            active=user.get("active"),
            is_admin=user.get("is_admin"),
            user_type=_text(user.get("user_type"), 20),
            last_active=_text(user.get("last_active"), 40),
        )


class UserList(Page):
    users: list[UserSummary]


class GroupRef(BaseModel):
    id: int
    name: str


class UserDetail(UserSummary):
    two_factor_auth_enabled: bool | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    groups: list[GroupRef] = Field(default_factory=list)

    @classmethod
    def of(cls, user: dict[str, Any]) -> UserDetail:
        groups = [
            GroupRef(id=int(g["id"]), name=_name(g.get("name")))
            for g in user.get("groups") or []
            if isinstance(g, dict) and isinstance(g.get("id"), int)
        ]
        meta = user.get("metadata")
        return cls(
            **UserSummary.of(user).model_dump(),
            two_factor_auth_enabled=user.get("two_factor_auth_enabled"),
            metadata=meta if isinstance(meta, dict) and len(str(meta)) <= 4000 else {},
            groups=groups,
        )


class InviteResult(BaseModel):
    invite_id: int | str | None
    email: str
    expires_at: str | None
    invite_link: str | None = Field(description="The sign-up link; share it only with the invitee. Expires in 7 days.")
    default_group_ids: list[int]


class UserChange(BaseModel):
    user: UserSummary
    changed: list[str] = Field(description="The fields that were replaced.")


class DisableResult(BaseModel):
    user_id: str
    email: str | None
    was_active: bool | None
    active: bool = Field(description="Always false: Retool's delete disables the user, it does not delete them.")
    note: str


class GroupSummary(BaseModel):
    id: int
    name: str
    member_count: int
    universal_app_access: str | None = None
    universal_resource_access: str | None = None
    universal_workflow_access: str | None = None

    @classmethod
    def of(cls, group: dict[str, Any]) -> GroupSummary:
        return cls(
            id=int(group.get("id", 0)),
            name=_name(group.get("name")),
            member_count=len(group.get("members") or []),
            universal_app_access=_text(group.get("universal_app_access"), 10),
            universal_resource_access=_text(group.get("universal_resource_access"), 10),
            universal_workflow_access=_text(group.get("universal_workflow_access"), 10),
        )


class GroupList(Page):
    groups: list[GroupSummary]


class GroupMember(BaseModel):
    id: str
    email: str | None = None
    is_group_admin: bool = False


class GroupDetail(GroupSummary):
    members: list[GroupMember]
    members_truncated: bool = Field(description="True when the group has more members than listed.")
    user_list_access: bool | None = None
    audit_log_access: bool | None = None
    landing_page_app_id: str | None = None

    @classmethod
    def of_group(cls, group: dict[str, Any], member_cap: int) -> GroupDetail:
        raw = [m for m in group.get("members") or [] if isinstance(m, dict)]
        return cls(
            **GroupSummary.of(group).model_dump(),
            members=[
                GroupMember(
                    id=str(m.get("id")), email=_text(m.get("email"), 320), is_group_admin=bool(m.get("is_group_admin"))
                )
                for m in raw[:member_cap]
            ],
            members_truncated=len(raw) > member_cap,
            user_list_access=group.get("user_list_access"),
            audit_log_access=group.get("audit_log_access"),
            landing_page_app_id=_text(group.get("landing_page_app_id"), 60),
        )


class MembershipChange(BaseModel):
    group_id: int
    group_name: str
    member_count: int
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)


class AccessEntry(BaseModel):
    subject_type: Literal["user", "group", "user_invite"]
    subject_id: str
    access_level: str
    via: list[str] = Field(description="Why: direct, universal, group:<id>, inherited (from the folder).")


class AccessList(BaseModel):
    object_type: str
    object_id: str
    users: list[AccessEntry]
    groups: list[AccessEntry]
    user_invites: list[AccessEntry]
    total_users: int
    truncated: bool = Field(description="True when users were cut at the limit.")


class ObjectAccess(BaseModel):
    type: str
    id: str
    access_level: str


class SubjectAccess(BaseModel):
    subject_type: str
    subject_id: str
    object_type: str
    include_inherited: bool
    objects: list[ObjectAccess]
    total: int
    truncated: bool


class GrantResult(BaseModel):
    subject_type: str
    subject_id: str
    object_type: str
    object_id: str
    access_level: str
    granted: bool


class RevokeResult(BaseModel):
    subject_type: str
    subject_id: str
    object_type: str
    object_id: str
    revoked: bool = Field(description="False when there was no direct grant to revoke (nothing changed).")
    note: str


class ResourceSummary(BaseModel):
    id: str
    type: str | None = None
    display_name: str | None = None
    folder_id: str | None = None
    protected: bool | None = None

    @classmethod
    def of(cls, res: dict[str, Any]) -> ResourceSummary:
        return cls(
            id=str(res.get("id")),
            type=_text(res.get("type"), 60),
            display_name=_text(res.get("display_name"), 200),
            folder_id=_text(res.get("folder_id"), 40),
            protected=res.get("protected"),
        )


class ResourceDetail(ResourceSummary):
    created_at: str | None = None
    updated_at: str | None = None

    @classmethod
    def of(cls, res: dict[str, Any]) -> ResourceDetail:
        # A whitelist: whatever connection options Retool returns stay out of the result.
        return cls(
            **ResourceSummary.of(res).model_dump(),
            created_at=_text(res.get("created_at"), 40),
            updated_at=_text(res.get("updated_at"), 40),
        )


class ResourceList(Page):
    resources: list[ResourceSummary]


class Environment(BaseModel):
    id: str
    name: str
    description: str | None = None
    color: str | None = None
    default: bool | None = None

    @classmethod
    def of(cls, env: dict[str, Any]) -> Environment:
        return cls(
            id=str(env.get("id")),
            name=_name(env.get("name")),
            description=_text(env.get("description")),
            color=_text(env.get("color"), 20),
            default=env.get("default"),
        )


class EnvironmentList(BaseModel):
    environments: list[Environment]


class WorkflowSummary(BaseModel):
    id: str
    name: str
    is_enabled: bool | None = None
    folder_id: str | None = None
    crontab: str | None = None
    timezone: str | None = None
    webhook_key_configured: bool = Field(description="True when SOPHIA_RETOOL_WORKFLOW_KEYS has its key.")

    @classmethod
    def of(cls, wf: dict[str, Any], keyed: bool) -> WorkflowSummary:
        return cls(
            id=str(wf.get("id")),
            name=_name(wf.get("name")),
            is_enabled=wf.get("is_enabled"),
            folder_id=_text(wf.get("folder_id"), 40),
            crontab=_text(wf.get("crontab"), 100),
            timezone=_text(wf.get("timezone"), 60),
            webhook_key_configured=keyed,
        )


class WorkflowDetail(WorkflowSummary):
    description: str | None = None
    protected: bool | None = None
    created_by: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @classmethod
    def of_workflow(cls, wf: dict[str, Any], keyed: bool) -> WorkflowDetail:
        return cls(
            **WorkflowSummary.of(wf, keyed).model_dump(),
            description=_text(wf.get("description")),
            protected=wf.get("protected"),
            created_by=_text(wf.get("created_by"), 80),
            created_at=_text(wf.get("created_at"), 40),
            updated_at=_text(wf.get("updated_at"), 40),
        )


class WorkflowList(Page):
    workflows: list[WorkflowSummary]


class TriggerResult(BaseModel):
    workflow_id: str
    outcome: Literal["responded", "still_running"] = Field(
        description=(
            "responded: Retool answered (at once for workflows without a Response block, the block's "
            "answer otherwise); still_running: no answer within the wait, the run continues in Retool."
        )
    )
    status_code: int | None
    body: Any = Field(default=None, description="The JSON answer, when small enough.")
    body_text: str | None = Field(default=None, description="The answer as text, cut, when too large for body.")
    body_truncated: bool = False
    waited_s: float
