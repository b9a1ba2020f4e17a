"""The Retool MCP tools: apps, folders, users, groups, permissions, resources, environments, workflows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field
from sophia_shared.errors import Conflict, Forbidden, InvalidArgument
from sophia_shared.paging import envelope, paged
from sophia_shared.server import Preview, Role, SophiaServer
from sophia_shared.toolset import Toolset, tool

from . import policy
from .client import RetoolClient
from .models import (
    AccessEntry,
    AccessList,
    AppDetail,
    AppList,
    AppSummary,
    DisableResult,
    Environment,
    EnvironmentList,
    Folder,
    FolderList,
    GrantResult,
    GroupDetail,
    GroupList,
    GroupSummary,
    InviteResult,
    MembershipChange,
    ObjectAccess,
    ResourceDetail,
    ResourceList,
    ResourceSummary,
    RevokeResult,
    SubjectAccess,
    TriggerResult,
    UserChange,
    UserDetail,
    UserList,
    UserSummary,
    WorkflowDetail,
    WorkflowList,
    WorkflowSummary,
)
from .settings import RetoolSettings

INSTRUCTIONS = (
    "Administer a Retool organisation through its REST API v2: find apps, folders, resources and "
    "workflows; look up users and groups; see who can reach an object and why; manage group "
    "membership and permission grants; trigger workflows through their webhooks. Ids have fixed "
    "shapes: users user_…, groups numbers, folders app_12 / workflow_3, apps and workflows UUIDs. "
    "List tools page with next_cursor."
)
BODY_CAP = 20_000
PAYLOAD_CAP = 64_000

UserIdArg = Annotated[
    str, Field(description="A Retool user id, like user_1a2b3c (from retool_list_users).", pattern=policy.USER_ID)
]
GroupIdArg = Annotated[int, Field(description="A Retool group id (a number, from retool_list_groups).", ge=1)]
AppIdArg = Annotated[str, Field(description="An app id (a UUID, from retool_list_apps).", pattern=policy.UUID)]
WorkflowIdArg = Annotated[
    str, Field(description="A workflow id (a UUID, from retool_list_workflows).", pattern=policy.UUID)
]
FolderIdArg = Annotated[
    str, Field(description="A folder id like app_12 (from retool_list_folders).", pattern=policy.FOLDER_ID)
]
QueryArg = Annotated[
    str | None, Field(description="Case-insensitive text the name must contain; omit for all.", max_length=200)
]
LimitArg = Annotated[int, Field(description="Most items to return in this page (1-100).", ge=1, le=100)]
CursorArg = Annotated[
    str | None, Field(description="next_cursor from the previous page; omit for the first page.", max_length=2000)
]
SubjectTypeArg = Annotated[Literal["user", "group"], Field(description="Whose access: a user or a group.")]
SubjectIdArg = Annotated[
    str, Field(description="user_… for a user, the group's number for a group.", min_length=1, max_length=80)
]
GrantObjectTypeArg = Annotated[Literal["app", "folder", "resource"], Field(description="What kind of object.")]
ObjectIdArg = Annotated[
    str,
    Field(
        description="Object id: UUID for apps and workflows, app_12-style for folders, UUID or name for resources.",
        min_length=1,
        max_length=200,
    ),
]


def _matches(value: Any, query: str | None) -> bool:
    return query is None or query.lower() in str(value or "").lower()


def _via(sources: Any) -> list[str]:
    """Retool's `sources` -> short reasons; tolerant of levels or booleans as values."""
    if not isinstance(sources, dict):
        return []
    reasons = [name for name in ("direct", "universal", "inherited") if sources.get(name) not in (None, False, "none")]
    for group in sources.get("groups") or []:
        gid = group.get("id") if isinstance(group, dict) else group
        if gid is not None:
            reasons.append(f"group:{gid}")
    return reasons


def _entries(raw: Any, kind: Literal["user", "group", "user_invite"]) -> list[AccessEntry]:
    entries = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        raw_subject = item.get("subject")
        subject: dict[str, Any] = raw_subject if isinstance(raw_subject, dict) else {}
        entries.append(
            AccessEntry(
                subject_type=kind,
                subject_id=str(subject.get("id", "")),
                access_level=str(item.get("accessLevel") or item.get("access_level") or "none"),
                via=_via(item.get("sources")),
            )
        )
    return entries


# -- the tools (module-level values; build_server binds their dependencies) ----------------


@dataclass(frozen=True)
class RetoolDeps:
    """What the tools need: the settings (workflow keys among them) and the client, the only code
    that talks to Retool."""

    settings: RetoolSettings
    client: RetoolClient


def keyed(deps: RetoolDeps, workflow_id: str) -> bool:
    return workflow_id.lower() in deps.settings.workflow_keys


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def retool_list_apps(
    deps: RetoolDeps,
    query: QueryArg = None,
    folder_id: Annotated[
        str | None, Field(description="Only apps directly in this folder (app_12).", pattern=policy.FOLDER_ID)
    ] = None,
    limit: LimitArg = 50,
    cursor: CursorArg = None,
) -> AppList:
    """List Retool apps, optionally those whose name contains `query` or that sit in one folder."""
    apps = [
        a
        for a in await deps.client.list_apps()
        if _matches(a.get("name"), query) and (folder_id is None or a.get("folder_id") == folder_id)
    ]
    apps.sort(key=lambda a: str(a.get("name", "")).lower())
    page, paging = paged(apps, cursor, limit)
    return AppList(apps=[AppSummary.of(a) for a in page], **paging)


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def retool_get_app(deps: RetoolDeps, app_id: AppIdArg) -> AppDetail:
    """Get one Retool app by its UUID."""
    return AppDetail.of(await deps.client.get_app(app_id))


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def retool_list_folders(
    deps: RetoolDeps,
    folder_type: Annotated[
        Literal["app", "workflow", "resource", "agent", "library"] | None,
        Field(description="Only folders of this type."),
    ] = None,
    query: QueryArg = None,
    limit: LimitArg = 100,
    cursor: CursorArg = None,
) -> FolderList:
    """List folders (Retool returns them all at once; this tool pages them for you)."""
    folders = [
        f
        for f in await deps.client.list_folders()
        if (folder_type is None or f.get("folder_type") == folder_type) and _matches(f.get("name"), query)
    ]
    page, paging = paged(folders, cursor, limit)
    return FolderList(folders=[Folder.of(f) for f in page], **paging)


@tool(role=Role.DEVELOPER, read_only=False, destructive=False, idempotent=False, open_world=True)
async def retool_create_folder(
    deps: RetoolDeps,
    name: Annotated[str, Field(description="The new folder's name.", min_length=1, max_length=200)],
    folder_type: Annotated[Literal["app", "workflow", "resource"], Field(description="What the folder will hold.")],
    parent_folder_id: Annotated[
        str | None,
        Field(description="Parent folder (same type); omit for the top level.", pattern=policy.FOLDER_ID),
    ] = None,
) -> Folder:
    """Create a folder. Names must be unique within their parent: a duplicate is refused, nothing created."""
    if not name.strip():
        raise InvalidArgument("name must not be blank")
    try:
        return Folder.of(await deps.client.create_folder(name.strip(), folder_type, parent_folder_id))
    except Conflict:
        raise Conflict(
            f"a {folder_type} folder named {name.strip()!r} already exists there; pick another name "
            "(nothing was created)"
        ) from None


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def retool_list_users(
    deps: RetoolDeps,
    email: Annotated[
        str | None, Field(description="Only the user with this e-mail address.", max_length=320)
    ] = None,
    first_name: Annotated[str | None, Field(description="Only users with this first name.", max_length=100)] = None,
    last_name: Annotated[str | None, Field(description="Only users with this last name.", max_length=100)] = None,
    limit: LimitArg = 50,
    cursor: CursorArg = None,
) -> UserList:
    """List or search Retool users (by e-mail or name), a page at a time."""
    page = await deps.client.list_users(
        email=email or None,
        first_name=first_name or None,
        last_name=last_name or None,
        limit=limit,
        next_token=cursor,
    )
    return UserList(
        users=[UserSummary.of(u) for u in page.items],
        **envelope(page.total_count, page.next_token),
    )


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def retool_get_user(deps: RetoolDeps, user_id: UserIdArg) -> UserDetail:
    """Get one Retool user with the groups they belong to."""
    return UserDetail.of(await deps.client.get_user(user_id, include_groups=True))


@tool(role=Role.ADMIN, read_only=False, destructive=False, idempotent=False, open_world=True)
async def retool_invite_user(
    deps: RetoolDeps,
    email: Annotated[
        str,
        Field(description="The invitee's e-mail address.", pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320),
    ],
    default_group_ids: Annotated[
        list[Annotated[int, Field(ge=1)]],
        Field(description="Groups the user joins on accepting (numbers from retool_list_groups).", max_length=20),
    ] = [],  # noqa: B006 - pydantic copies defaults; the schema needs a concrete default
    metadata: Annotated[
        dict[str, str] | None, Field(description="Optional user attributes (string values).", max_length=20)
    ] = None,
) -> InviteResult:
    """Invite someone to the Retool organisation; the result holds the invite link (valid 7 days)."""
    invite = await deps.client.invite_user(str(email), list(dict.fromkeys(default_group_ids)), metadata)
    return InviteResult(
        invite_id=invite.get("id"),
        email=str(invite.get("invited_email") or invite.get("email") or email),
        expires_at=invite.get("expires_at"),
        invite_link=invite.get("invite_link"),
        default_group_ids=list(dict.fromkeys(default_group_ids)),
    )


@tool(role=Role.ADMIN, read_only=False, destructive=False, idempotent=True, open_world=True)
async def retool_update_user(
    deps: RetoolDeps,
    user_id: UserIdArg,
    first_name: Annotated[str | None, Field(description="New first name.", min_length=1, max_length=100)] = None,
    last_name: Annotated[str | None, Field(description="New last name.", min_length=1, max_length=100)] = None,
    active: Annotated[
        bool | None, Field(description="true re-enables a disabled user; to disable use retool_disable_user.")
    ] = None,
    user_type: Annotated[Literal["default", "mobile", "embed"] | None, Field(description="New user type.")] = None,
    metadata: Annotated[
        dict[str, str] | None, Field(description="Replaces the user's attributes as a whole.", max_length=50)
    ] = None,
) -> UserChange:
    """Change a user's name, type, attributes, or re-enable them (JSON Patch). E-mail cannot be changed."""
    if active is False:
        raise InvalidArgument("to disable a user use retool_disable_user, which asks for confirmation")
    ops = policy.user_patch(
        first_name=first_name, last_name=last_name, active=active, user_type=user_type, metadata=metadata
    )
    user = await deps.client.update_user(user_id, ops)
    return UserChange(user=UserSummary.of(user), changed=[op["path"][1:] for op in ops])


async def preview_disable(deps: RetoolDeps, user_id: str) -> Preview:
    user = await deps.client.get_user(user_id, include_groups=False)
    return Preview(
        summary=(
            f"Disable Retool user {user.get('email')} ({user_id}). Retool's API cannot delete users: "
            "they are disabled (cannot sign in) and keep their groups and history."
        ),
        details={"user_id": user_id, "email": user.get("email"), "currently_active": user.get("active")},
    )


@tool(
    role=Role.ADMIN, read_only=False, destructive=True, idempotent=True, open_world=True, preview=preview_disable
)
async def retool_disable_user(deps: RetoolDeps, user_id: UserIdArg) -> DisableResult:
    """Disable a Retool user so they can no longer sign in. Retool's delete only disables: the user,
    their groups and history stay, and retool_update_user with active=true re-enables them."""
    before = await deps.client.get_user(user_id, include_groups=False)
    await deps.client.disable_user(user_id)
    return DisableResult(
        user_id=user_id,
        email=before.get("email"),
        was_active=before.get("active"),
        active=False,
        note="disabled, not deleted: Retool's API has no user deletion",
    )


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def retool_list_groups(
    deps: RetoolDeps, query: QueryArg = None, limit: LimitArg = 100, cursor: CursorArg = None
) -> GroupList:
    """List permission groups with their member counts and universal access levels."""
    groups = [g for g in await deps.client.list_groups() if _matches(g.get("name"), query)]
    page, paging = paged(groups, cursor, limit)
    return GroupList(groups=[GroupSummary.of(g) for g in page], **paging)


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def retool_get_group(
    deps: RetoolDeps,
    group_id: GroupIdArg,
    member_limit: Annotated[int, Field(description="Most members to list (1-500).", ge=1, le=500)] = 100,
) -> GroupDetail:
    """Get one group: its members (capped), universal access levels and admin flags."""
    return GroupDetail.of_group(await deps.client.get_group(group_id), member_limit)


@tool(role=Role.ADMIN, read_only=False, destructive=False, idempotent=True, open_world=True)
async def retool_add_group_members(
    deps: RetoolDeps,
    group_id: GroupIdArg,
    user_ids: Annotated[list[UserIdArg], Field(description="Users to add (user_…).", min_length=1, max_length=100)],
    as_group_admin: Annotated[bool, Field(description="Make them admins of this group.")] = False,
) -> MembershipChange:
    """Add users to a group (already-members get the admin flag updated). Unknown users: nothing changes."""
    unique = list(dict.fromkeys(user_ids))
    group = await deps.client.add_group_members(group_id, [{"id": u, "is_group_admin": as_group_admin} for u in unique])
    return MembershipChange(
        group_id=group_id,
        group_name=str(group.get("name", "")),
        member_count=len(group.get("members") or []),
        added=unique,
    )


async def preview_remove(deps: RetoolDeps, group_id: int, user_id: str) -> Preview:
    return Preview(
        summary=f"Remove {user_id} from Retool group {group_id}; they lose whatever access that group gave them.",
        details={"group_id": group_id, "user_id": user_id},
    )


@tool(
    role=Role.ADMIN, read_only=False, destructive=True, idempotent=True, open_world=True, preview=preview_remove
)
async def retool_remove_group_member(deps: RetoolDeps, group_id: GroupIdArg, user_id: UserIdArg) -> MembershipChange:
    """Remove one user from a group (they lose the access that group gave them)."""
    group = await deps.client.remove_group_member(group_id, user_id)
    return MembershipChange(
        group_id=group_id,
        group_name=str(group.get("name", "")),
        member_count=len(group.get("members") or []),
        removed=[user_id],
    )


@tool(
    title="Retool: who can access an object",
    role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True,
)
async def retool_access_list(
    deps: RetoolDeps,
    object_type: Annotated[
        Literal["app", "folder", "resource", "workflow"], Field(description="What kind of object.")
    ],
    object_id: ObjectIdArg,
    user_limit: Annotated[int, Field(description="Most users to list (1-500).", ge=1, le=500)] = 100,
) -> AccessList:
    """Who can reach an app, folder, resource or workflow, at what level, and why (direct, universal,
    group:<id>, inherited from the folder)."""
    ref = policy.object_ref(object_type, object_id)
    data = await deps.client.access_list(object_type, ref["id"])
    users = _entries(data.get("user"), "user")
    return AccessList(
        object_type=object_type,
        object_id=object_id,
        users=users[:user_limit],
        groups=_entries(data.get("group"), "group"),
        user_invites=_entries(data.get("userInvite"), "user_invite")[:user_limit],
        total_users=len(users),
        truncated=len(users) > user_limit,
    )


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def retool_list_subject_access(
    deps: RetoolDeps,
    subject_type: SubjectTypeArg,
    subject_id: SubjectIdArg,
    object_type: Annotated[
        Literal["app", "folder", "resource", "resource_configuration"], Field(description="Which kind of objects.")
    ],
    include_inherited: Annotated[bool, Field(description="Also count access inherited from folders.")] = True,
    limit: Annotated[int, Field(description="Most objects to list (1-500).", ge=1, le=500)] = 200,
) -> SubjectAccess:
    """What a user or group can reach among apps, folders or resources (direct grants, optionally inherited)."""
    subject = policy.subject(subject_type, subject_id)
    objects = await deps.client.list_objects(subject, object_type, include_inherited)
    return SubjectAccess(
        subject_type=subject_type,
        subject_id=subject_id,
        object_type=object_type,
        include_inherited=include_inherited,
        objects=[
            ObjectAccess(
                type=str(o.get("type", object_type)), id=str(o.get("id")), access_level=str(o.get("access_level"))
            )
            for o in objects[:limit]
        ],
        total=len(objects),
        truncated=len(objects) > limit,
    )


async def preview_grant(
    deps: RetoolDeps,
    subject_type: policy.SubjectType,
    subject_id: str,
    object_type: policy.GrantObjectType,
    object_id: str,
    access_level: str,
) -> Preview:
    # Refuse malformed ids before anyone is asked to approve them.
    policy.subject(subject_type, subject_id)
    policy.object_ref(object_type, object_id)
    return Preview(
        summary=(
            f"Grant {access_level} access on {object_type} {object_id} to {subject_type} {subject_id}"
            + (" (applies to objects directly in the folder, not to subfolders)" if object_type == "folder" else "")
        ),
        details={"subject": [subject_type, subject_id], "object": [object_type, object_id], "level": access_level},
    )


@tool(
    role=Role.ADMIN,
    read_only=False,
    destructive=False,
    idempotent=True,
    open_world=True,
    confirm=True,
    preview=preview_grant,
)
async def retool_grant_access(
    deps: RetoolDeps,
    subject_type: SubjectTypeArg,
    subject_id: SubjectIdArg,
    object_type: GrantObjectTypeArg,
    object_id: ObjectIdArg,
    access_level: Annotated[Literal["use", "edit", "own"], Field(description="use < edit < own.")],
) -> GrantResult:
    """Grant a user or group use/edit/own access to an app, folder or resource.
    A folder grant reaches the objects directly inside it, not subfolders."""
    subject = policy.subject(subject_type, subject_id)
    obj = policy.object_ref(object_type, object_id)
    await deps.client.grant(subject, obj, access_level)
    return GrantResult(
        subject_type=subject_type,
        subject_id=subject_id,
        object_type=object_type,
        object_id=object_id,
        access_level=access_level,
        granted=True,
    )


async def preview_revoke(
    deps: RetoolDeps,
    subject_type: policy.SubjectType, subject_id: str, object_type: policy.GrantObjectType, object_id: str
) -> Preview:
    policy.subject(subject_type, subject_id)
    policy.object_ref(object_type, object_id)
    return Preview(
        summary=f"Revoke the direct grant on {object_type} {object_id} from {subject_type} {subject_id}",
        details={"subject": [subject_type, subject_id], "object": [object_type, object_id]},
    )


@tool(
    role=Role.ADMIN, read_only=False, destructive=True, idempotent=True, open_world=True, preview=preview_revoke
)
async def retool_revoke_access(
    deps: RetoolDeps,
    subject_type: SubjectTypeArg,
    subject_id: SubjectIdArg,
    object_type: GrantObjectTypeArg,
    object_id: ObjectIdArg,
) -> RevokeResult:
    """Revoke a user's or group's direct grant on an app, folder or resource.
    Access through groups or universal access is untouched; revoking a grant that does not exist is
    reported as revoked=false, not as an error."""
    subject = policy.subject(subject_type, subject_id)
    obj = policy.object_ref(object_type, object_id)
    revoked = await deps.client.revoke(subject, obj)
    note = (
        "the direct grant was removed; access through groups or universal access is unchanged"
        if revoked
        else "there was no direct grant to revoke; nothing changed"
    )
    return RevokeResult(
        subject_type=subject_type,
        subject_id=subject_id,
        object_type=object_type,
        object_id=object_id,
        revoked=revoked,
        note=note,
    )


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def retool_list_resources(
    deps: RetoolDeps,
    resource_type: Annotated[
        str | None, Field(description="Only this type, e.g. postgresql, restapi.", pattern=r"^[a-z0-9_]{1,60}$")
    ] = None,
    limit: LimitArg = 50,
    cursor: CursorArg = None,
) -> ResourceList:
    """List resources (database and API connections), a page at a time; no connection settings."""
    page = await deps.client.list_resources(resource_type=resource_type, limit=limit, next_token=cursor)
    return ResourceList(
        resources=[ResourceSummary.of(r) for r in page.items],
        **envelope(page.total_count, page.next_token),
    )


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def retool_get_resource(
    deps: RetoolDeps,
    resource_id: Annotated[str, Field(description="The resource's UUID or name.", pattern=policy.RESOURCE_REF)],
) -> ResourceDetail:
    """Get one resource by UUID or name. Connection options and secrets are never returned."""
    return ResourceDetail.of(await deps.client.get_resource(resource_id))


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def retool_list_environments(deps: RetoolDeps) -> EnvironmentList:
    """List the organisation's environments (production, staging, …) and which is the default."""
    return EnvironmentList(environments=[Environment.of(e) for e in (await deps.client.list_environments())[:200]])


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def retool_list_workflows(
    deps: RetoolDeps,
    query: QueryArg = None, limit: LimitArg = 50, cursor: CursorArg = None
) -> WorkflowList:
    """List workflows, with whether this server holds a webhook key to trigger each."""
    flows = [w for w in await deps.client.list_workflows() if _matches(w.get("name"), query)]
    page, paging = paged(flows, cursor, limit)
    return WorkflowList(
        workflows=[WorkflowSummary.of(w, keyed(deps, str(w.get("id")))) for w in page],
        **paging,
    )


@tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=True)
async def retool_get_workflow(deps: RetoolDeps, workflow_id: WorkflowIdArg) -> WorkflowDetail:
    """Get one workflow by its UUID."""
    return WorkflowDetail.of_workflow(await deps.client.get_workflow(workflow_id), keyed(deps, workflow_id))


def _payload_text(payload: dict[str, Any] | None) -> str:
    text = json.dumps(payload or {}, separators=(",", ":"), sort_keys=True, default=str)
    if len(text) > PAYLOAD_CAP:
        raise InvalidArgument(f"payload is {len(text)} characters of JSON; keep it under {PAYLOAD_CAP}")
    return text


async def preview_trigger(
    deps: RetoolDeps, workflow_id: str, payload: dict[str, Any] | None, wait_seconds: float | None
) -> Preview:
    text = _payload_text(payload)
    return Preview(
        summary=f"Run Retool workflow {workflow_id} through its webhook with a {len(text)}-character JSON payload",
        details={"workflow_id": workflow_id, "payload_keys": sorted((payload or {}).keys())[:50]},
    )


@tool(
    role=Role.DEVOPS,
    read_only=False,
    destructive=True,
    idempotent=False,
    open_world=True,
    confirm=True,
    preview=preview_trigger,
)
async def retool_trigger_workflow(
    deps: RetoolDeps,
    workflow_id: WorkflowIdArg,
    payload: Annotated[
        dict[str, Any] | None, Field(description="JSON object the workflow sees as startTrigger.data.")
    ] = None,
    wait_seconds: Annotated[
        float | None,
        Field(description="Longest wait for a Response block's answer (default from settings).", gt=0, le=120),
    ] = None,
) -> TriggerResult:
    """Trigger a workflow through its webhook. Its key comes from the server's
    settings (SOPHIA_RETOOL_WORKFLOW_KEYS), never from arguments. Workflows without a Response block
    answer at once while the run continues; with one, this waits for its answer up to wait_seconds."""
    text = _payload_text(payload)
    wait_s = wait_seconds or deps.settings.trigger_wait_s
    result = await deps.client.trigger_workflow(workflow_id, json.loads(text), wait_s)
    body, body_text, cut = result.body, None, False
    rendered = json.dumps(body, default=str) if not isinstance(body, str) else body
    if len(rendered) > BODY_CAP:
        body, body_text, cut = None, rendered[:BODY_CAP], True
    return TriggerResult(
        workflow_id=workflow_id,
        outcome=result.outcome,
        status_code=result.status_code,
        body=body,
        body_text=body_text,
        body_truncated=cut,
        waited_s=result.waited_s,
    )


# -- the server -----------------------------------------------------------------------------

TOOLS = Toolset((
    retool_list_apps,
    retool_get_app,
    retool_list_folders,
    retool_create_folder,
    retool_list_users,
    retool_get_user,
    retool_invite_user,
    retool_update_user,
    retool_disable_user,
    retool_list_groups,
    retool_get_group,
    retool_add_group_members,
    retool_remove_group_member,
    retool_access_list,
    retool_list_subject_access,
    retool_grant_access,
    retool_revoke_access,
    retool_list_resources,
    retool_get_resource,
    retool_list_environments,
    retool_list_workflows,
    retool_get_workflow,
    retool_trigger_workflow,
))


def build_server(settings: RetoolSettings, *, client: RetoolClient | None = None) -> SophiaServer:
    """The Retool server; nothing connects until the first tool call."""
    # Every Retool tool needs the instance and a token: unconfigured, tools/list shows none of them.
    server = SophiaServer("retool", settings=settings, instructions=INSTRUCTIONS,
                          configured=lambda: not settings.missing())
    if client is None:
        client = RetoolClient(settings)
    TOOLS.register(server, RetoolDeps(settings=settings, client=client))
    return server


async def check(settings: RetoolSettings) -> str:
    """Config and connectivity: the instance answers and the token authenticates."""
    client = RetoolClient(settings)
    try:
        health = await client.health()
        try:
            await client.list_users(email=None, first_name=None, last_name=None, limit=1, next_token=None)
            auth = "token accepted"
        except Forbidden:
            auth = "token accepted (it lacks users:read)"
        return f"Retool {health.get('version', '?')} at {settings.base_url}; {auth}"
    finally:
        await client.aclose()
