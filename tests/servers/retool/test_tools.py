"""Every Retool tool end to end: in-memory MCP client -> tools -> httpx -> the contract server."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from servers.retool.harness import ADMIN, READER_TOKEN, USERS_ONLY_TOKEN, VIEWER, Retool, confirmed
from sophia_shared.server import SophiaServer
from sophia_shared.testing import connect, error_code, error_data, structured

pytestmark = pytest.mark.anyio

MakeServer = Callable[..., SophiaServer]


# -- apps and folders --------------------------------------------------------------------------


async def test_apps_filter_page_and_get(retool: Retool, make_server: MakeServer) -> None:
    async with connect(make_server(), principal=VIEWER) as client:
        with anyio.fail_after(20):
            first = structured(await client.call("retool_list_apps", {"limit": 4}))
            rest = structured(await client.call("retool_list_apps", {"limit": 4, "cursor": first["next_cursor"]}))
            finance = structured(await client.call("retool_list_apps", {"folder_id": "app_2"}))
            refund = structured(await client.call("retool_list_apps", {"query": "REFUND"}))
            app = structured(await client.call("retool_get_app", {"app_id": retool.app("Payroll export")}))
            missing = await client.call("retool_get_app", {"app_id": "00000000-0000-4000-8000-000000000000"})
            malformed = await client.call("retool_get_app", {"app_id": "Payroll export"})
    assert first["truncated"] and len(first["apps"]) == 4 and first["total"] == 6
    assert not rest["truncated"] and rest["next_cursor"] is None
    names = [a["name"] for a in first["apps"] + rest["apps"]]
    assert sorted(names, key=str.lower) == names and len(set(names)) == 6
    assert {a["name"] for a in finance["apps"]} == {"Invoice review", "Payroll export"}
    assert [a["name"] for a in refund["apps"]] == ["Refund desk"]
    assert app["protected"] is True and app["folder_id"] == "app_2"
    assert error_code(missing) == "not_found"
    assert error_code(malformed) == "invalid_argument"
    # The malformed id never reached Retool.
    assert not any("Payroll" in r.path for r in retool.server.log)


async def test_folders_list_and_duplicate_name_is_refused_with_nothing_created(
    retool: Retool, make_server: MakeServer
) -> None:
    async with connect(make_server(), principal=ADMIN) as client:
        with anyio.fail_after(20):
            apps_only = structured(await client.call("retool_list_folders", {"folder_type": "app"}))
            created = await client.call(
                "retool_create_folder", {"name": "Onboarding", "folder_type": "app", "parent_folder_id": "app_1"}
            )
            duplicate = await client.call(
                "retool_create_folder", {"name": "finance", "folder_type": "app", "parent_folder_id": "app_1"}
            )
            bad_parent = await client.call(
                "retool_create_folder", {"name": "X", "folder_type": "app", "parent_folder_id": "folder-9"}
            )
    assert {f["name"] for f in apps_only["folders"]} == {"root", "Finance", "Support tools", "Archive"}
    assert structured(created)["parent_folder_id"] == "app_1"
    assert error_code(duplicate) == "conflict" and "nothing was created" in duplicate.content[0].text  # type: ignore[union-attr]
    assert error_code(bad_parent) == "invalid_argument"
    assert sorted(f["name"] for f in retool.org.folders.values() if f["parent_folder_id"] == "app_1") == [
        "Finance",
        "Onboarding",
        "Support tools",
    ]


# -- users ---------------------------------------------------------------------------------------


async def test_users_page_to_the_end_and_search(retool: Retool, make_server: MakeServer) -> None:
    ids: list[str] = []
    async with connect(make_server(), principal=VIEWER) as client:
        with anyio.fail_after(20):
            cursor: str | None = None
            while True:
                args: dict[str, Any] = {"limit": 15} | ({"cursor": cursor} if cursor else {})
                page = structured(await client.call("retool_list_users", args))
                ids.extend(u["id"] for u in page["users"])
                cursor = page["next_cursor"]
                assert page["truncated"] is (cursor is not None)
                if cursor is None:
                    break
            target = retool.org.users[retool.user(7)]
            by_email = structured(await client.call("retool_list_users", {"email": target["email"].upper()}))
            by_name = structured(await client.call("retool_list_users", {"first_name": "Ada"}))
            user = structured(await client.call("retool_get_user", {"user_id": retool.user(3)}))
    assert ids == list(retool.org.users)
    assert [u["id"] for u in by_email["users"]] == [retool.user(7)]
    assert by_name["users"] and all(u["first_name"] == "Ada" for u in by_name["users"])
    assert {g["name"] for g in user["groups"]} == {"All Users", "Engineering"}
    assert user["metadata"] == {"team": "data"}


async def test_invite_and_update_user(retool: Retool, make_server: MakeServer) -> None:
    uid = retool.user(4)
    async with connect(make_server(), principal=ADMIN) as client:
        with anyio.fail_after(20):
            invite = structured(
                await client.call("retool_invite_user", {"email": "new.hire@example.com", "default_group_ids": [3, 3]})
            )
            member = await client.call("retool_invite_user", {"email": retool.org.users[uid]["email"]})
            bad_email = await client.call("retool_invite_user", {"email": "not-an-address"})
            renamed = structured(
                await client.call("retool_update_user", {"user_id": uid, "first_name": "Edith", "user_type": "mobile"})
            )
            nothing = await client.call("retool_update_user", {"user_id": uid})
            disable_here = await client.call("retool_update_user", {"user_id": uid, "active": False})
    assert invite["invite_link"].startswith("https://") and invite["default_group_ids"] == [3]
    assert error_code(member) == "conflict"
    assert error_code(bad_email) == "invalid_argument"
    assert renamed["changed"] == ["first_name", "user_type"] and renamed["user"]["first_name"] == "Edith"
    assert retool.org.users[uid]["user_type"] == "mobile"
    assert error_code(nothing) == "invalid_argument" and error_code(disable_here) == "invalid_argument"
    assert retool.org.users[uid]["active"] is True
    assert len(retool.org.invites) == 1


async def test_disable_user_is_confirmed_and_only_disables(retool: Retool, make_server: MakeServer) -> None:
    uid = retool.user(6)
    async with connect(make_server(), principal=ADMIN) as client:
        with anyio.fail_after(20):
            asked = await client.call("retool_disable_user", {"user_id": uid})
            assert error_code(asked) == "confirmation_required"
            preview = asked.content[0].text  # type: ignore[union-attr]
            assert retool.org.users[uid]["email"] in preview and "disabled" in preview
            assert retool.org.users[uid]["active"] is True
            done = structured(await confirmed(client, "retool_disable_user", {"user_id": uid}))
            again = structured(await client.call("retool_update_user", {"user_id": uid, "active": True}))
    assert done == {
        "user_id": uid,
        "email": retool.org.users[uid]["email"],
        "was_active": True,
        "active": False,
        "note": "disabled, not deleted: Retool's API has no user deletion",
    }
    assert uid in retool.org.users and again["user"]["active"] is True
    assert [r.method for r in retool.server.log if r.method == "DELETE"] == ["DELETE"]


# -- groups --------------------------------------------------------------------------------------


async def test_groups_membership(retool: Retool, make_server: MakeServer) -> None:
    newcomer, engineer = retool.user(30), retool.user(5)
    async with connect(make_server(), principal=ADMIN) as client:
        with anyio.fail_after(20):
            groups = structured(await client.call("retool_list_groups", {"query": "eng"}))
            capped = structured(await client.call("retool_get_group", {"group_id": 2, "member_limit": 5}))
            added = structured(
                await client.call("retool_add_group_members", {"group_id": 3, "user_ids": [newcomer, newcomer]})
            )
            unknown = await client.call(
                "retool_add_group_members", {"group_id": 3, "user_ids": [retool.user(31), "user_nobody"]}
            )
            removed = structured(
                await confirmed(client, "retool_remove_group_member", {"group_id": 3, "user_id": engineer})
            )
            not_member = await confirmed(client, "retool_remove_group_member", {"group_id": 3, "user_id": engineer})
            no_group = await client.call("retool_get_group", {"group_id": 99})
    assert [g["name"] for g in groups["groups"]] == ["Engineering"] and groups["groups"][0]["member_count"] == 10
    assert len(capped["members"]) == 5 and capped["members_truncated"] and capped["member_count"] == 40
    assert added["member_count"] == 11 and added["added"] == [newcomer]
    assert error_code(unknown) == "not_found"
    members = {m["id"] for m in retool.org.groups[3]["members"]}
    assert retool.user(31) not in members, "a refused batch must add nobody"
    assert removed["removed"] == [engineer] and engineer not in members
    assert error_code(not_member) == "not_found"
    assert error_code(no_group) == "not_found"


# -- permissions ---------------------------------------------------------------------------------


async def test_access_list_says_who_and_why(retool: Retool, make_server: MakeServer) -> None:
    refund, invoice = retool.app("Refund desk"), retool.app("Invoice review")
    async with connect(make_server(), principal=VIEWER) as client:
        with anyio.fail_after(20):
            refund_access = structured(
                await client.call("retool_access_list", {"object_type": "app", "object_id": refund})
            )
            invoice_access = structured(
                await client.call("retool_access_list", {"object_type": "app", "object_id": invoice, "user_limit": 3})
            )
            bad = await client.call("retool_access_list", {"object_type": "folder", "object_id": refund})
    groups = {g["subject_id"]: g for g in refund_access["groups"]}
    assert groups["4"]["via"] == ["direct"] and groups["4"]["access_level"] == "use"
    assert groups["3"]["via"] == ["universal"] and groups["3"]["access_level"] == "edit"
    users = {u["subject_id"]: u for u in refund_access["users"]}
    assert users[retool.user(30)]["via"][0] == "direct" and users[retool.user(30)]["access_level"] == "edit"
    assert users[retool.user(12)]["via"] == ["group:4"]
    # Finance's edit grant on folder app_2 reaches the apps directly inside it.
    finance = {g["subject_id"]: g for g in invoice_access["groups"]}["5"]
    assert finance["via"] == ["inherited"] and finance["access_level"] == "edit"
    assert invoice_access["truncated"] and len(invoice_access["users"]) == 3
    assert error_code(bad) == "invalid_argument"


async def test_grant_and_revoke_are_confirmed_and_revoke_of_nothing_is_reported(
    retool: Retool, make_server: MakeServer
) -> None:
    payroll = retool.app("Payroll export")
    grant = {"subject_type": "group", "subject_id": "4", "object_type": "app", "object_id": payroll}
    async with connect(make_server(), principal=ADMIN) as client:
        with anyio.fail_after(20):
            asked = await client.call("retool_grant_access", {**grant, "access_level": "edit"})
            assert error_code(asked) == "confirmation_required"
            assert ("group", "4", "app", payroll) not in retool.org.grants
            granted = structured(await confirmed(client, "retool_grant_access", {**grant, "access_level": "edit"}))
            listed = structured(
                await client.call(
                    "retool_list_subject_access", {"subject_type": "group", "subject_id": "4", "object_type": "app"}
                )
            )
            revoked = structured(await confirmed(client, "retool_revoke_access", grant))
            again = structured(await confirmed(client, "retool_revoke_access", grant))
            bad_subject = await client.call("retool_revoke_access", {**grant, "subject_id": "Support"})
            viewer_try = await client.call("retool_grant_access", {**grant, "access_level": "own"}, principal=VIEWER)
    assert granted["granted"] is True
    assert {"type": "app", "id": payroll, "access_level": "edit"} in listed["objects"]
    assert revoked["revoked"] is True and again["revoked"] is False and "nothing changed" in again["note"]
    assert ("group", "4", "app", payroll) not in retool.org.grants
    assert error_code(bad_subject) == "invalid_argument"
    assert error_code(viewer_try) == "forbidden"


async def test_subject_access_includes_inherited_folder_access(retool: Retool, make_server: MakeServer) -> None:
    args = {"subject_type": "group", "subject_id": "5", "object_type": "app"}
    async with connect(make_server(), principal=VIEWER) as client:
        with anyio.fail_after(20):
            inherited = structured(await client.call("retool_list_subject_access", args))
            direct = structured(await client.call("retool_list_subject_access", {**args, "include_inherited": False}))
            user = structured(
                await client.call(
                    "retool_list_subject_access",
                    {"subject_type": "user", "subject_id": retool.user(30), "object_type": "app"},
                )
            )
    assert {o["id"] for o in inherited["objects"]} == {retool.app("Invoice review"), retool.app("Payroll export")}
    assert direct["objects"] == []
    assert user["objects"] == [{"type": "app", "id": retool.app("Refund desk"), "access_level": "edit"}]


# -- resources, environments, workflows, scopes, modes -------------------------------------------


async def test_resources_page_and_never_show_connection_settings(retool: Retool, make_server: MakeServer) -> None:
    async with connect(make_server(), principal=VIEWER) as client:
        with anyio.fail_after(20):
            pg = structured(await client.call("retool_list_resources", {"resource_type": "postgresql", "limit": 2}))
            pg2 = structured(
                await client.call(
                    "retool_list_resources", {"resource_type": "postgresql", "limit": 2, "cursor": pg["next_cursor"]}
                )
            )
            by_name = await client.call("retool_get_resource", {"resource_id": "snowflake-2"})
            rid = next(iter(retool.org.resources))
            by_id = structured(await client.call("retool_get_resource", {"resource_id": rid}))
            missing = await client.call("retool_get_resource", {"resource_id": "nope"})
    assert pg["total"] == 3 and len(pg["resources"]) == 2 and pg["truncated"]
    assert len(pg2["resources"]) == 1 and pg2["next_cursor"] is None
    assert structured(by_name)["type"] == "snowflake" and by_id["id"] == rid
    raw = json.dumps([c.model_dump() for c in by_name.content]) + json.dumps(by_id)
    assert "s3cret" not in raw and "password" not in raw and "options" not in raw
    assert error_code(missing) == "not_found"


async def test_environments_and_workflows(retool: Retool, make_server: MakeServer) -> None:
    sync_id = retool.workflow("Lookup customer")
    server = make_server(workflow_keys={sync_id: "retool_wk_sync00001"})
    async with connect(server, principal=VIEWER) as client:
        with anyio.fail_after(20):
            envs = structured(await client.call("retool_list_environments", {}))
            flows = structured(await client.call("retool_list_workflows", {}))
            one = structured(await client.call("retool_get_workflow", {"workflow_id": sync_id}))
    assert [(e["name"], e["default"]) for e in envs["environments"]] == [("production", True), ("staging", False)]
    assert flows["total"] == 4
    keyed = {w["name"]: w["webhook_key_configured"] for w in flows["workflows"]}
    assert keyed == {"Nightly sync": False, "Lookup customer": True, "Slow report": False, "Draft workflow": False}
    assert one["name"] == "Lookup customer" and one["webhook_key_configured"] is True


async def test_missing_scope_is_forbidden_naming_the_scope(retool: Retool, make_server: MakeServer) -> None:
    async with connect(make_server(api_token=USERS_ONLY_TOKEN), principal=ADMIN) as client:
        with anyio.fail_after(20):
            apps = await client.call("retool_list_apps", {})
            users = await client.call("retool_list_users", {"limit": 1})
    async with connect(make_server(api_token=READER_TOKEN), principal=ADMIN) as client:
        with anyio.fail_after(20):
            grant = await confirmed(
                client,
                "retool_grant_access",
                {
                    "subject_type": "group",
                    "subject_id": "3",
                    "object_type": "folder",
                    "object_id": "app_3",
                    "access_level": "use",
                },
            )
    assert error_code(apps) == "forbidden" and error_data(apps) == {"scope": "apps:read"}
    assert "apps:read" in apps.content[0].text  # type: ignore[union-attr]
    assert not users.is_error
    assert error_code(grant) == "forbidden" and error_data(grant) == {"scope": "permissions:all:write"}
    assert ("group", "3", "folder", "app_3") not in retool.org.grants


async def test_read_only_mode_hides_every_write(make_server: MakeServer) -> None:
    server = make_server(read_only=True)
    async with connect(server, principal=ADMIN) as client:
        with anyio.fail_after(20):
            names = {t.name for t in await client.list_tools()}
            refused = await client.call("retool_disable_user", {"user_id": "user_0001a07919"})
    writes = {name for name, spec in server.specs.items() if not spec.read_only}
    assert writes and not names & writes
    assert names == {name for name, spec in server.specs.items() if spec.read_only}
    assert error_code(refused) == "forbidden"


async def test_not_configured_lists_tools_and_names_the_settings(retool: Retool, make_server: MakeServer) -> None:
    async with connect(make_server(base_url=None, api_token=None), principal=ADMIN) as client:
        with anyio.fail_after(20):
            tools = await client.list_tools()
            result = await client.call("retool_list_apps", {})
    assert tools == []  # nothing it lists could answer anything but not_configured
    assert error_code(result) == "not_configured"
    assert error_data(result)["settings"] == ["SOPHIA_RETOOL_BASE_URL", "SOPHIA_RETOOL_API_TOKEN"]
    assert retool.server.log == []


async def test_burst_of_tool_calls_is_throttled_at_the_default_rate(retool: Retool, make_server: MakeServer) -> None:
    """60 concurrent tool calls at the default 45/min against a server allowing 50/min (virtual time)."""
    retool.server.rate_limit = 50
    uid = retool.user(9)
    async with connect(make_server(rate_limit_per_minute=45), principal=VIEWER) as client:
        results: list[str] = []

        async def one() -> None:
            results.append(structured(await client.call("retool_get_user", {"user_id": uid}))["id"])

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for _ in range(60):
                    tg.start_soon(one)
    assert results == [uid] * 60
    log = retool.server.records("/api/v2/users")
    assert [r.status for r in log] == [200] * 60
    start = min(r.at for r in log)
    assert sorted(Counter(r.at - start for r in log).items()) == [(0.0, 45), (60.0, 15)]
