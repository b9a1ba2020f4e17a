"""Read tools over a real file backend (checkpoint v3 JSON with secrets and history) with NO CLI.

The CLI path is pointed at a file that does not exist, so these tests also prove that read tools
keep working from state and change tools answer `unavailable` naming where the CLI was looked for.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from servers.pulumi.environments import Backend
from sophia_pulumi.settings import PulumiSettings
from sophia_pulumi.tools import build_server
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect, error_code, error_data, error_of, structured

pytestmark = pytest.mark.anyio

VIEWER = Principal("vera", Role.VIEWER, kind="test")
DEVOPS = Principal("dana", Role.DEVOPS, kind="test")
ADMIN = Principal("ada", Role.ADMIN, kind="test")


async def call(settings: PulumiSettings, tool: str, args: dict[str, Any], who: Principal = VIEWER) -> Any:
    server = build_server(settings)
    with anyio.fail_after(20):
        async with connect(server, principal=who) as client:
            return await client.call(tool, args)


async def test_list_stacks_reads_every_project_from_state(no_cli_settings: PulumiSettings) -> None:
    result = await call(no_cli_settings, "pulumi_list_stacks", {})
    body = structured(result)
    assert body["source"] == "state"
    got = {(s["project"], s["name"]): s for s in body["stacks"]}
    assert set(got) == {
        ("webapp", "dev"),
        ("webapp", "staging"),
        ("webapp", "prod"),
        ("network", "dev"),
        ("network", "sandbox"),
    }
    # 400 custom resources + stack + 2 providers + 40 components; the gzip stack is read too.
    assert got[("webapp", "prod")]["resource_count"] == 443
    assert got[("network", "dev")]["resource_count"] == 60 + 3 + 6
    assert got[("network", "sandbox")]["resource_count"] == 0
    assert got[("webapp", "dev")]["last_update"].startswith("2025-")


async def test_list_stacks_of_one_project_and_unknown_project(no_cli_settings: PulumiSettings) -> None:
    body = structured(await call(no_cli_settings, "pulumi_list_stacks", {"project": "network"}))
    assert sorted(s["name"] for s in body["stacks"]) == ["dev", "sandbox"]
    missing = await call(no_cli_settings, "pulumi_list_stacks", {"project": "nope"})
    assert error_code(missing) == "not_found"
    assert "webapp" in error_of(missing)["message"]


async def test_outputs_are_redacted_including_nested_secrets(no_cli_settings: PulumiSettings) -> None:
    body = structured(await call(no_cli_settings, "pulumi_stack_outputs", {"project": "webapp", "stack": "prod"}))
    outputs = {o["name"]: o for o in body["outputs"]}
    assert body["revealed"] is False
    assert outputs["url"] == {
        "name": "url",
        "value": "https://webapp-prod.example.test",
        "secret": False,
        "truncated": False,
    }
    assert outputs["db_password"]["value"] == "[secret]" and outputs["db_password"]["secret"]
    assert outputs["db"]["value"] == {"host": "db.prod.internal", "password": "[secret]"}
    assert outputs["db"]["secret"] is True
    text = str(body)
    assert "pw-webapp-prod" not in text and "ciphertext" not in text and "v1:" not in text


async def test_reveal_is_admin_only(no_cli_settings: PulumiSettings) -> None:
    args = {"project": "webapp", "stack": "prod", "reveal_secrets": True}
    for who in (VIEWER, DEVOPS):
        refused = await call(no_cli_settings, "pulumi_stack_outputs", args, who)
        assert error_code(refused) == "forbidden"


async def test_reveal_without_cli_is_unavailable_and_names_where_it_looked(
    no_cli_settings: PulumiSettings,
) -> None:
    result = await call(
        no_cli_settings, "pulumi_stack_outputs", {"project": "webapp", "stack": "prod", "reveal_secrets": True}, ADMIN
    )
    assert error_code(result) == "unavailable"
    assert "SOPHIA_PULUMI_CLI=" in error_data(result)["looked_for"]


async def test_list_resources_filters_pages_and_projects(no_cli_settings: PulumiSettings) -> None:
    args: dict[str, Any] = {"project": "webapp", "stack": "prod", "type": "aws:s3/bucket:Bucket", "limit": 30}
    first = structured(await call(no_cli_settings, "pulumi_list_resources", args))
    assert first["total"] == 80 and len(first["resources"]) == 30 and first["truncated"]
    item = first["resources"][0]
    assert set(item) == {"urn", "type", "name", "provider", "parent"}
    assert item["type"] == "aws:s3/bucket:Bucket"
    assert item["provider"] == "urn:pulumi:prod::webapp::pulumi:providers:aws::default_6_0_0"
    assert item["parent"] == "urn:pulumi:prod::webapp::my:app:Service::svc-0"
    seen = [r["urn"] for r in first["resources"]]
    cursor = first["next_cursor"]
    while cursor:
        page = structured(await call(no_cli_settings, "pulumi_list_resources", {**args, "cursor": cursor}))
        seen += [r["urn"] for r in page["resources"]]
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)) == 80


async def test_list_resources_wildcard_and_name_filter(no_cli_settings: PulumiSettings) -> None:
    body = structured(
        await call(
            no_cli_settings,
            "pulumi_list_resources",
            {"project": "webapp", "stack": "dev", "type": "aws:*", "limit": 1000},
        )
    )
    assert body["total"] == 200 and not body["truncated"] and body["next_cursor"] is None
    assert all(r["type"].startswith("aws:") for r in body["resources"])
    named = structured(
        await call(
            no_cli_settings, "pulumi_list_resources", {"project": "webapp", "stack": "dev", "name_contains": "ROLE-1"}
        )
    )
    assert {r["name"] for r in named["resources"]} == {
        "role-12",
        "role-17",
        "role-102",
        "role-107",
        "role-112",
        "role-117",
        "role-122",
        "role-127",
        "role-132",
        "role-137",
        "role-142",
        "role-147",
        "role-152",
        "role-157",
        "role-162",
        "role-167",
        "role-172",
        "role-177",
        "role-182",
        "role-187",
        "role-192",
        "role-197",
    }


async def test_pending_delete_entries_are_not_listed(no_cli_settings: PulumiSettings) -> None:
    args: dict[str, Any] = {"project": "webapp", "stack": "dev", "limit": 1000}
    urns: list[str] = []
    cursor = None
    while True:
        body = structured(
            await call(no_cli_settings, "pulumi_list_resources", {**args, **({"cursor": cursor} if cursor else {})})
        )
        urns += [r["urn"] for r in body["resources"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(urns) == len(set(urns)) == 250 + 3 + 25


async def test_bad_cursor_and_bad_names_are_invalid_arguments(no_cli_settings: PulumiSettings) -> None:
    bad_cursor = await call(
        no_cli_settings, "pulumi_list_resources", {"project": "webapp", "stack": "dev", "cursor": "not-ours"}
    )
    assert error_code(bad_cursor) == "invalid_argument"
    bad_name = await call(no_cli_settings, "pulumi_stack_outputs", {"project": "../etc", "stack": "dev"})
    assert error_code(bad_name) == "invalid_argument"
    too_big = await call(no_cli_settings, "pulumi_list_resources", {"project": "webapp", "stack": "dev", "limit": 5000})
    assert error_code(too_big) == "invalid_argument"


async def test_unknown_stack_and_project_are_not_found(no_cli_settings: PulumiSettings) -> None:
    stack = await call(no_cli_settings, "pulumi_list_resources", {"project": "webapp", "stack": "qa"})
    assert error_code(stack) == "not_found"
    assert "prod" in error_of(stack)["message"]
    project = await call(no_cli_settings, "pulumi_stack_history", {"project": "ghost", "stack": "dev"})
    assert error_code(project) == "not_found"
    assert error_data(project)["project"] == "ghost"


async def test_history_newest_first_with_pages(no_cli_settings: PulumiSettings) -> None:
    body = structured(
        await call(no_cli_settings, "pulumi_stack_history", {"project": "webapp", "stack": "prod", "limit": 4})
    )
    assert [e["version"] for e in body["entries"]] == [6, 5, 4, 3]
    assert body["entries"][0]["message"] == "change #6"
    assert body["entries"][2]["kind"] == "update" and body["entries"][3]["kind"] == "refresh"
    rest = structured(
        await call(
            no_cli_settings,
            "pulumi_stack_history",
            {"project": "webapp", "stack": "prod", "limit": 4, "cursor": body["next_cursor"]},
        )
    )
    assert [e["version"] for e in rest["entries"]] == [2, 1]
    assert rest["entries"][0]["result"] == "failed"
    assert rest["entries"][1]["resource_changes"] == {"create": 400}
    assert rest["next_cursor"] is None
    empty = structured(await call(no_cli_settings, "pulumi_stack_history", {"project": "network", "stack": "sandbox"}))
    assert empty["entries"] == []


async def test_config_redacts_secure_values(no_cli_settings: PulumiSettings) -> None:
    body = structured(await call(no_cli_settings, "pulumi_get_config", {"project": "webapp", "stack": "staging"}))
    entries = {e["key"]: e for e in body["entries"]}
    assert entries["webapp:region"] == {"key": "webapp:region", "value": "eu-west-1", "secret": False}
    assert entries["webapp:dbPassword"] == {"key": "webapp:dbPassword", "value": None, "secret": True}
    assert entries["webapp:tags"]["value"] == {"team": "platform", "cost": "42"}
    assert entries["webapp:db"] == {
        "key": "webapp:db",
        "value": {"user": "admin", "password": "[secret]"},
        "secret": True,
    }
    assert "db-staging-secret" not in str(body) and "v1:" not in str(body)


@pytest.mark.parametrize(
    ("tool", "args", "who"),
    [
        ("pulumi_preview", {}, DEVOPS),
        ("pulumi_up", {}, DEVOPS),
        ("pulumi_refresh", {}, DEVOPS),
        ("pulumi_destroy", {}, ADMIN),
        ("pulumi_set_config", {"key": "region", "value": "us-east-1"}, DEVOPS),
    ],
)
async def test_change_tools_without_cli_are_unavailable(
    no_cli_settings: PulumiSettings, read_backend: Backend, tool: str, args: dict[str, Any], who: Principal
) -> None:
    before = sorted(p.read_bytes() for p in (read_backend.root / ".pulumi" / "stacks").rglob("*.json*"))
    result = await call(no_cli_settings, tool, {"project": "webapp", "stack": "dev", **args}, who)
    assert error_code(result) == "unavailable"
    assert "Pulumi CLI" in error_of(result)["message"]
    after = sorted(p.read_bytes() for p in (read_backend.root / ".pulumi" / "stacks").rglob("*.json*"))
    assert before == after


async def test_roles_gate_change_tools(no_cli_settings: PulumiSettings) -> None:
    args = {"project": "webapp", "stack": "dev"}
    assert error_code(await call(no_cli_settings, "pulumi_preview", args, VIEWER)) == "forbidden"
    assert error_code(await call(no_cli_settings, "pulumi_destroy", args, DEVOPS)) == "forbidden"


async def test_read_only_mode_hides_change_tools(no_cli_settings: PulumiSettings) -> None:
    settings = no_cli_settings.model_copy(update={"read_only": True})
    server = build_server(settings)
    with anyio.fail_after(10):
        async with connect(server, principal=ADMIN) as client:
            names = {t.name for t in await client.list_tools()}
            refused = await client.call("pulumi_up", {"project": "webapp", "stack": "dev"})
    assert names == {
        "pulumi_list_stacks",
        "pulumi_stack_outputs",
        "pulumi_list_resources",
        "pulumi_stack_history",
        "pulumi_get_config",
        "pulumi_preview",
    }
    assert error_code(refused) == "forbidden"


async def test_large_pages_are_cut_by_size_with_a_cursor(no_cli_settings: PulumiSettings) -> None:
    small_cap = no_cli_settings.model_copy(update={"max_result_chars": 30_000})
    args: dict[str, Any] = {"project": "webapp", "stack": "prod", "limit": 1000}
    first = structured(await call(small_cap, "pulumi_list_resources", args))
    assert 0 < len(first["resources"]) < 443 and first["truncated"] and first["total"] == 443
    seen = [r["urn"] for r in first["resources"]]
    cursor = first["next_cursor"]
    while cursor:
        page = structured(await call(small_cap, "pulumi_list_resources", {**args, "cursor": cursor}))
        seen += [r["urn"] for r in page["resources"]]
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)) == 443


async def test_outputs_stay_under_the_result_cap(no_cli_settings: PulumiSettings) -> None:
    tiny = no_cli_settings.model_copy(update={"max_result_chars": 600})
    body = structured(await call(tiny, "pulumi_stack_outputs", {"project": "webapp", "stack": "prod"}))
    assert 0 < len(body["outputs"]) < 5 and body["truncated"] is True
