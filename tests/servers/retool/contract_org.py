"""The seeded organisation the Retool contract server serves: users, groups, folders, apps, resources,
workflows (with their webhook behaviour), environments and permission grants, shaped like Retool's
API objects. Deterministic, so tests can name what they expect."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

ACCESS_RANK = {"none": 0, "use": 1, "edit": 2, "own": 3}
STAMP = "2026-11-01T09:30:00.000Z"


@dataclass
class WorkflowHook:
    """How a seeded workflow's webhook behaves."""

    key: str
    published: bool = True
    trigger_enabled: bool = True
    # None: no Response block, the call returns at once; otherwise the block's status and body.
    response_status: int | None = None
    response_body: Any = None
    response_delay_s: float = 0.0
    block_timeout_s: float = 10.0
    runs: list[dict[str, Any]] = field(default_factory=list)


class Org:
    """The seeded organisation: plain dicts shaped like Retool's API objects."""

    def __init__(self, *, users: int = 40, resources: int = 12) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.groups: dict[int, dict[str, Any]] = {}
        self.folders: dict[str, dict[str, Any]] = {}
        self.apps: dict[str, dict[str, Any]] = {}
        self.resources: dict[str, dict[str, Any]] = {}
        self.workflows: dict[str, dict[str, Any]] = {}
        self.hooks: dict[str, WorkflowHook] = {}
        self.environments: list[dict[str, Any]] = []
        self.invites: list[dict[str, Any]] = []
        # (subject_type, subject_id, object_type, object_id) -> access level
        self.grants: dict[tuple[str, str, str, str], str] = {}
        self._folder_seq = 100
        self._seed(users, resources)

    # -- seeding -------------------------------------------------------------------------------
    def _uuid(self, kind: str, n: int) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"retool-contract/{kind}/{n}"))

    def _seed(self, n_users: int, n_resources: int) -> None:
        for i in range(n_users):
            uid = f"user_{i:04d}a{(i * 7919) % 100000:05d}"
            first, last = FIRST_NAMES[i % len(FIRST_NAMES)], LAST_NAMES[(i // len(FIRST_NAMES)) % 50]
            self.users[uid] = {
                "id": uid,
                "legacy_id": 1000 + i,
                "email": f"{first.lower()}.{last.lower()}{i}@example.com",
                "active": i % 17 != 16,
                "created_at": STAMP,
                "last_active": STAMP,
                "first_name": first,
                "last_name": last,
                "metadata": {"team": ["data", "ops", "sales"][i % 3]},
                "is_admin": i == 0,
                "user_type": "default",
                "two_factor_auth_enabled": i % 2 == 0,
            }
        uids = list(self.users)
        specs = [
            (1, "admin", "own", "own", "own", uids[:2]),
            (2, "All Users", "none", "use", "none", uids),
            (3, "Engineering", "edit", "edit", "edit", uids[2:12]),
            (4, "Support", "none", "none", "use", uids[12:20]),
            (5, "Finance", "none", "none", "none", uids[20:24]),
        ]
        for gid, name, app_acc, res_acc, wf_acc, members in specs:
            self.groups[gid] = {
                "id": gid,
                "legacy_id": gid,
                "name": name,
                "members": [{"id": m, "email": self.users[m]["email"], "is_group_admin": gid == 1} for m in members],
                "universal_app_access": app_acc,
                "universal_resource_access": res_acc,
                "universal_workflow_access": wf_acc,
                "universal_query_library_access": "none",
                "user_list_access": gid == 1,
                "audit_log_access": gid == 1,
                "unpublished_release_access": False,
                "usage_analytics_access": gid == 1,
                "account_details_access": True,
                "landing_page_app_id": None,
                "user_invites": [],
                "created_at": STAMP,
                "updated_at": STAMP,
            }
        for fid, name, ftype, parent in [
            ("app_1", "root", "app", None),
            ("app_2", "Finance", "app", "app_1"),
            ("app_3", "Support tools", "app", "app_1"),
            ("app_4", "Archive", "app", "app_2"),
            ("workflow_1", "root", "workflow", None),
            ("resource_1", "root", "resource", None),
        ]:
            self.folders[fid] = {
                "id": fid,
                "legacy_id": int(fid.split("_")[1]),
                "name": name,
                "parent_folder_id": parent,
                "is_system_folder": parent is None,
                "folder_type": ftype,
                "created_at": STAMP,
                "updated_at": STAMP,
            }
        for i, (name, folder) in enumerate(
            [
                ("Refund desk", "app_3"),
                ("Invoice review", "app_2"),
                ("Payroll export", "app_2"),
                ("Old ledger", "app_4"),
                ("Customer lookup", "app_3"),
                ("Ops dashboard", "app_1"),
            ]
        ):
            aid = self._uuid("app", i)
            self.apps[aid] = {
                "id": aid,
                "legacy_id": str(200 + i),
                "name": name,
                "description": f"{name} app",
                "folder_id": folder,
                "protected": i == 2,
                "synced": False,
                "shortlink": None,
                "is_module": False,
                "is_mobile_app": False,
                "release_version": "latest" if i % 2 else "1.2.0",
                "created_at": STAMP,
                "updated_at": STAMP,
            }
        types = ["postgresql", "restapi", "snowflake", "mongodb"]
        for i in range(n_resources):
            rid = self._uuid("resource", i)
            self.resources[rid] = {
                "id": rid,
                "type": types[i % len(types)],
                "display_name": f"{types[i % len(types)]}-{i}",
                "folder_id": "resource_1",
                "protected": False,
                "created_at": STAMP,
                "updated_at": STAMP,
                # Connection options live server-side; a faithful client must never surface them.
                "options": {"host": f"db{i}.internal", "password": f"s3cret-{i}", "ssl": True},
            }
        for i, (name, hook) in enumerate(
            [
                ("Nightly sync", WorkflowHook(key="retool_wk_async0000")),
                (
                    "Lookup customer",
                    WorkflowHook(
                        key="retool_wk_sync00001",
                        response_status=200,
                        response_body={"customer": "acme", "tier": "gold"},
                    ),
                ),
                (
                    "Slow report",
                    WorkflowHook(
                        key="retool_wk_slow00002",
                        response_status=200,
                        response_body={"ready": True},
                        response_delay_s=1.5,
                    ),
                ),
                ("Draft workflow", WorkflowHook(key="retool_wk_draft0003", published=False)),
            ]
        ):
            wid = self._uuid("workflow", i)
            self.workflows[wid] = {
                "id": wid,
                "name": name,
                "description": f"{name} workflow",
                "crontab": "0 2 * * *" if i == 0 else None,
                "timezone": "UTC",
                "is_enabled": hook.published,
                "folder_id": "workflow_1",
                "protected": False,
                "created_by": uids[0],
                "created_at": STAMP,
                "updated_at": STAMP,
            }
            self.hooks[wid] = hook
        self.environments = [
            {
                "id": self._uuid("env", 0),
                "name": "production",
                "description": "Live",
                "color": "#3C92DC",
                "default": True,
                "created_at": STAMP,
                "updated_at": STAMP,
            },
            {
                "id": self._uuid("env", 1),
                "name": "staging",
                "description": "Pre-release",
                "color": "#E9AB11",
                "default": False,
                "created_at": STAMP,
                "updated_at": STAMP,
            },
        ]
        first_app = next(iter(self.apps))
        self.grants[("group", "4", "app", first_app)] = "use"
        self.grants[("group", "5", "folder", "app_2")] = "edit"
        self.grants[("user", uids[30 % len(uids)], "app", first_app)] = "edit"

    # -- lookups -------------------------------------------------------------------------------
    def groups_of(self, uid: str) -> list[dict[str, Any]]:
        return [g for g in self.groups.values() if any(m["id"] == uid for m in g["members"])]

    def object_exists(self, otype: str, oid: str) -> bool:
        table: dict[str, Any] = {
            "app": self.apps,
            "folder": self.folders,
            "resource": self.resources,
            "workflow": self.workflows,
        }.get(otype, {})
        return oid in table

    def parent_folder(self, otype: str, oid: str) -> str | None:
        table: dict[str, dict[str, Any]] = {
            "app": self.apps,
            "resource": self.resources,
            "workflow": self.workflows,
        }.get(otype, {})
        obj = table.get(oid)
        return None if obj is None else obj.get("folder_id")

    def new_folder_id(self, ftype: str) -> str:
        self._folder_seq += 1
        return f"{ftype}_{self._folder_seq}"


FIRST_NAMES = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "John",
    "Radia",
    "Ken",
    "Margaret",
    "Dennis",
    "Leslie",
    "Niklaus",
    "Shafi",
    "Tim",
    "Vint",
    "Whitfield",
    "Yukihiro",
    "Zhang",
]
LAST_NAMES = [f"Surname{n:02d}" for n in range(50)]
