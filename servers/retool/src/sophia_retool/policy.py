"""Retool's ID shapes and JSON Patch building: bad input is refused here, before any request."""

from __future__ import annotations

import re
from typing import Any, Literal

from sophia_shared.errors import InvalidArgument

USER_ID = r"^user_[0-9A-Za-z]{1,60}$"
UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
FOLDER_ID = r"^(app|workflow|resource|agent|library)_[0-9]{1,12}$"
# Resources are addressed by UUID or by name; names never contain a slash or control characters.
RESOURCE_REF = r"^[^/\\\x00-\x1f?#]{1,200}$"

_USER = re.compile(USER_ID)
_UUID = re.compile(UUID)
_FOLDER = re.compile(FOLDER_ID)
_RESOURCE = re.compile(RESOURCE_REF)

SubjectType = Literal["user", "group"]
ObjectType = Literal["app", "folder", "resource", "workflow"]
GrantObjectType = Literal["app", "folder", "resource"]


def subject(subject_type: SubjectType, subject_id: str) -> dict[str, Any]:
    """The API's subject union: groups by number, users by `user_…`."""
    if subject_type == "group":
        if not subject_id.isdigit() or len(subject_id) > 12:
            raise InvalidArgument(
                f"subject_id {subject_id!r} is not a group id: groups are numbers, e.g. 3 (see retool_list_groups)"
            )
        return {"type": "group", "id": int(subject_id)}
    if not _USER.match(subject_id):
        raise InvalidArgument(
            f"subject_id {subject_id!r} is not a user id: users look like user_1a2b3c (see retool_list_users)"
        )
    return {"type": "user", "id": subject_id}


def object_ref(object_type: ObjectType, object_id: str) -> dict[str, Any]:
    """Check an object id against its type's shape."""
    if object_type in ("app", "workflow") and not _UUID.match(object_id):
        raise InvalidArgument(f"object_id {object_id!r} is not a {object_type} id: {object_type}s are UUIDs")
    if object_type == "folder" and not _FOLDER.match(object_id):
        raise InvalidArgument(
            f"object_id {object_id!r} is not a folder id: folders look like app_12 or workflow_3 "
            "(see retool_list_folders)"
        )
    if object_type == "resource" and not _RESOURCE.match(object_id):
        raise InvalidArgument(f"object_id {object_id!r} is not a resource id: use its UUID or its name")
    return {"type": object_type, "id": object_id}


def user_patch(
    *,
    first_name: str | None,
    last_name: str | None,
    active: bool | None,
    user_type: str | None,
    metadata: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    """JSON Patch operations for the fields given; at least one is required."""
    fields: dict[str, Any] = {
        "first_name": first_name,
        "last_name": last_name,
        "active": active,
        "user_type": user_type,
        "metadata": metadata,
    }
    ops = [{"op": "replace", "path": f"/{k}", "value": v} for k, v in fields.items() if v is not None]
    if not ops:
        raise InvalidArgument(
            "nothing to change: give at least one of first_name, last_name, active, user_type, metadata "
            "(e-mail addresses cannot be changed through Retool's API)"
        )
    return ops
