"""Change tools (preview -> confirm -> up bound to the plan, refresh, destroy, set_config).

Every test here is parametrised over the CLI: `standin-cli` is the STAND-IN executable
(standin/pulumi_standin.py) driven through the real Automation API; `real-cli` runs the same test
against a real `pulumi` when one is on PATH and is skipped loudly otherwise (no Pulumi CLI can be
installed on our machines). The program is a real Python Pulumi program (programs/app).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
import yaml  # type: ignore[import-untyped]
from mcp.client import Client
from mcp.types import ElicitResult, RequestParamsMeta
from servers.pulumi.environments import ChangeEnv
from sophia_pulumi.tools import build_server
from sophia_shared.server import PRINCIPAL_META_KEY, Principal, Role, SophiaServer
from sophia_shared.testing import SophiaTestClient, connect, error_code, error_data, error_of, structured

pytestmark = pytest.mark.anyio

DEVOPS = Principal("dana", Role.DEVOPS, kind="test")
ADMIN = Principal("ada", Role.ADMIN, kind="test")
STACK = {"project": "app", "stack": "dev"}
TIMEOUT = 120


def checkpoint(env: ChangeEnv) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((env.backend.root / ".pulumi/stacks/app/dev.json").read_text())
    return doc


def resource_urns(env: ChangeEnv) -> list[str]:
    latest = checkpoint(env)["checkpoint"].get("latest") or {}
    return [r["urn"] for r in latest.get("resources") or []]


async def confirmed_up(client: SophiaTestClient) -> dict[str, Any]:
    first = await client.call("pulumi_up", STACK)
    assert error_code(first) == "confirmation_required"
    token = error_data(first)["confirmation_token"]
    done = await client.call("pulumi_up", {**STACK, "confirmation_token": token})
    assert not done.is_error, done.content
    return structured(done)


async def test_preview_lists_changes_and_streams_engine_events(change_env: ChangeEnv, sophia_home: Path) -> None:
    server = build_server(change_env.settings)
    messages: list[str] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    with anyio.fail_after(TIMEOUT):
        async with connect(server, principal=DEVOPS) as client:
            result = await client.call("pulumi_preview", STACK, progress_callback=progress)
    body = structured(result)
    created = {c["urn"].rsplit("::", 1)[-1] for c in body["creates"]}
    assert {"web", "web-w0", "web-w1", "assets"} <= created
    assert body["counts"]["create"] == len(body["creates"])
    assert body["updates"] == body["deletes"] == body["replaces"] == []
    assert len(body["plan_hash"]) == 64
    assert {m.split(" ", 1)[1] for m in messages} == {c["urn"] for c in body["creates"]}
    assert resource_urns(change_env) == []  # a preview changes nothing
    plans = list((sophia_home / "pulumi" / "plans" / "app" / "dev").glob("*.json"))
    assert [p.stem for p in plans] == [body["plan_hash"]]


async def test_up_needs_a_confirmation_bound_to_the_plan(change_env: ChangeEnv) -> None:
    server = build_server(change_env.settings)
    with anyio.fail_after(TIMEOUT):
        async with connect(server, principal=DEVOPS) as client:
            first = await client.call("pulumi_up", STACK)
            assert error_code(first) == "confirmation_required"
            preview = error_data(first)["preview"]
            assert "plan_hash" in preview["details"] and preview["details"]["counts"]["create"] >= 5
            assert resource_urns(change_env) == []  # refused without the token: nothing applied
            token = error_data(first)["confirmation_token"]
            done = structured(await client.call("pulumi_up", {**STACK, "confirmation_token": token}))
            outputs = structured(await client.call("pulumi_stack_outputs", STACK))
    assert done["result"] == "succeeded" and done["kind"] == "update"
    assert done["resource_changes"]["create"] == preview["details"]["counts"]["create"]
    assert any(u.endswith("::web-w1") for u in resource_urns(change_env))
    values = {o["name"]: o["value"] for o in outputs["outputs"]}
    assert values == {"url": "https://web.example.test", "replicas": 2, "api_key": "[secret]"}


async def test_a_changed_plan_invalidates_the_token(change_env: ChangeEnv, sophia_home: Path) -> None:
    server = build_server(change_env.settings)
    with anyio.fail_after(TIMEOUT):
        async with connect(server, principal=DEVOPS) as client:
            first = await client.call("pulumi_up", STACK)
            token = error_data(first)["confirmation_token"]
            changed = await client.call("pulumi_set_config", {**STACK, "key": "replicas", "value": "3"})
            assert not changed.is_error
            refused = await client.call("pulumi_up", {**STACK, "confirmation_token": token})
            assert error_code(refused) == "confirmation_required"
            assert "plan" in error_data(refused)["refused"]
            assert resource_urns(change_env) == []
            retry = error_data(refused)["confirmation_token"]
            done = structured(await client.call("pulumi_up", {**STACK, "confirmation_token": retry}))
    assert done["result"] == "succeeded"
    assert any(u.endswith("::web-w2") for u in resource_urns(change_env))
    # The applied plan is gone, and so is the superseded one from before the config change.
    assert list((sophia_home / "pulumi" / "plans" / "app" / "dev").iterdir()) == []


async def test_up_with_a_stale_saved_plan_applies_nothing(change_env: ChangeEnv) -> None:
    """The stack changes between the plan's preview and `up --plan`: the CLI refuses the plan."""
    from sophia_pulumi.client import PulumiClient
    from sophia_shared.errors import Conflict

    client = PulumiClient(change_env.settings)
    with anyio.fail_after(TIMEOUT):
        _, saved = await client.preview("app", "dev", None)
        change_env.run_cli("config", "set", "replicas", "--plaintext", "--stack", "organization/app/dev", "--", "4")
        with pytest.raises(Conflict, match="changed since the preview"):
            await client.up("app", "dev", saved, None)
    assert resource_urns(change_env) == []
    assert not saved.path.exists()


async def test_destroy_confirmation_lists_every_resource(change_env: ChangeEnv) -> None:
    change_env.deploy()
    server = build_server(change_env.settings)
    with anyio.fail_after(TIMEOUT):
        async with connect(server, principal=ADMIN) as client:
            urns = resource_urns(change_env)
            first = await client.call("pulumi_destroy", STACK)
            assert error_code(first) == "confirmation_required"
            details = error_data(first)["preview"]["details"]
            assert sorted(details["resources"]) == sorted(u for u in urns if "pulumi:pulumi:Stack" not in u)
            assert details["count"] == len(urns) - 1
            as_devops = await client.call("pulumi_destroy", STACK, principal=DEVOPS)
            assert error_code(as_devops) == "forbidden"
            token = error_data(first)["confirmation_token"]
            done = structured(await client.call("pulumi_destroy", {**STACK, "confirmation_token": token}))
            history = structured(await client.call("pulumi_stack_history", STACK))
    assert done["kind"] == "destroy" and done["result"] == "succeeded"
    assert done["resource_changes"]["delete"] == len(urns)
    assert resource_urns(change_env) == []
    assert [e["kind"] for e in history["entries"]] == ["destroy", "update"]


async def test_refresh_is_confirmed_first(change_env: ChangeEnv) -> None:
    change_env.deploy()
    server = build_server(change_env.settings)
    with anyio.fail_after(TIMEOUT):
        async with connect(server, principal=DEVOPS) as client:
            first = await client.call("pulumi_refresh", STACK)
            assert error_code(first) == "confirmation_required"
            token = error_data(first)["confirmation_token"]
            done = structured(await client.call("pulumi_refresh", {**STACK, "confirmation_token": token}))
            history = structured(await client.call("pulumi_stack_history", STACK))
    assert done["kind"] == "refresh" and done["result"] == "succeeded"
    assert done["changes"] == []  # nothing drifted; per-resource refresh steps are not changes
    assert history["entries"][0]["kind"] == "refresh"


async def test_up_declined_by_elicitation_applies_nothing(change_env: ChangeEnv) -> None:
    server = build_server(change_env.settings)
    with anyio.fail_after(TIMEOUT):
        async with connect(server, principal=DEVOPS, elicitation="decline") as client:
            declined = await client.call("pulumi_up", STACK)
    assert error_code(declined) == "forbidden"
    assert resource_urns(change_env) == []


async def test_set_config_stores_secrets_as_secrets(change_env: ChangeEnv) -> None:
    server = build_server(change_env.settings)
    with anyio.fail_after(TIMEOUT):
        async with connect(server, principal=DEVOPS) as client:
            secret = await client.call(
                "pulumi_set_config", {**STACK, "key": "app:dbPassword", "secret_value": "hunter2-secret"}
            )
            plain = await client.call("pulumi_set_config", {**STACK, "key": "size", "value": "medium"})
            shown = structured(await client.call("pulumi_get_config", STACK))
            malformed = await client.call("pulumi_set_config", {**STACK, "key": "a:b:c", "value": "x"})
            both = await client.call("pulumi_set_config", {**STACK, "key": "k", "value": "x", "secret_value": "y"})
            neither = await client.call("pulumi_set_config", {**STACK, "key": "k"})
    assert structured(secret) == {"project": "app", "stack": "dev", "key": "app:dbPassword", "secret": True}
    assert structured(plain)["key"] == "app:size"
    stored = yaml.safe_load((change_env.backend.projects / "app" / "Pulumi.dev.yaml").read_text())["config"]
    assert set(stored["app:dbPassword"]) == {"secure"} and stored["app:dbPassword"]["secure"].startswith("v1:")
    assert stored["app:size"] == "medium"
    entries = {e["key"]: e for e in shown["entries"]}
    assert entries["app:dbPassword"] == {"key": "app:dbPassword", "value": None, "secret": True}
    assert entries["app:size"]["value"] == "medium"
    assert "hunter2-secret" not in json.dumps(shown)
    assert error_code(malformed) == error_code(both) == error_code(neither) == "invalid_argument"


async def test_admin_reveal_uses_the_cli_and_is_audited(change_env: ChangeEnv) -> None:
    change_env.deploy()
    server = build_server(change_env.settings)
    with anyio.fail_after(TIMEOUT):
        async with connect(server, principal=ADMIN) as client:
            shown = structured(await client.call("pulumi_stack_outputs", {**STACK, "reveal_secrets": True}))
    values = {o["name"]: (o["value"], o["secret"]) for o in shown["outputs"]}
    assert values["api_key"] == ("key-123", True) and shown["revealed"] is True
    reveals = [r for r in server.audit.records() if r["tool"] == "pulumi_stack_outputs#reveal_secrets"]
    assert len(reveals) == 1 and reveals[0]["principal"] == "ada"
    assert "key-123" not in json.dumps(server.audit.records())


async def test_unknown_stack_is_not_found_and_never_created(change_env: ChangeEnv) -> None:
    server = build_server(change_env.settings)
    with anyio.fail_after(TIMEOUT):
        async with connect(server, principal=DEVOPS) as client:
            preview = await client.call("pulumi_preview", {"project": "app", "stack": "qa"})
            config = await client.call("pulumi_set_config", {"project": "app", "stack": "qa", "key": "a", "value": "b"})
            project = await client.call("pulumi_preview", {"project": "ghost", "stack": "dev"})
    assert error_code(preview) == error_code(config) == error_code(project) == "not_found"
    assert not (change_env.backend.root / ".pulumi/stacks/app/qa.json").exists()
    assert not (change_env.backend.projects / "app" / "Pulumi.qa.yaml").exists()


async def test_read_tools_through_the_automation_api(change_env: ChangeEnv) -> None:
    settings = change_env.settings.model_copy(update={"read_via": "cli"})
    change_env.deploy()
    server: SophiaServer = build_server(settings)
    with anyio.fail_after(TIMEOUT):
        async with connect(server, principal=DEVOPS) as client:
            stacks = structured(await client.call("pulumi_list_stacks", {"project": "app"}))
            outputs = structured(await client.call("pulumi_stack_outputs", STACK))
            resources = structured(await client.call("pulumi_list_resources", {**STACK, "limit": 1000}))
            history = structured(await client.call("pulumi_stack_history", STACK))
            config = structured(await client.call("pulumi_get_config", STACK))
    assert [s["name"] for s in stacks["stacks"]] == ["dev"] and stacks["source"] == "cli"
    assert {o["name"]: o["value"] for o in outputs["outputs"]}["api_key"] == "[secret]"
    assert outputs["source"] == "cli"
    assert sorted(r["urn"] for r in resources["resources"]) == sorted(resource_urns(change_env))
    assert history["entries"][0]["kind"] == "update" and history["source"] == "cli"
    assert {e["key"]: e["secret"] for e in config["entries"]}["app:apiKey"] is True
    assert "key-123" not in json.dumps([outputs, config])


async def test_a_plan_changed_during_the_users_confirmation_is_asked_again(change_env: ChangeEnv) -> None:
    """While the user looks at plan A, the config changes: plan B is shown and confirmed before it runs."""
    server = build_server(change_env.settings)
    asked: list[str] = []
    with anyio.fail_after(TIMEOUT):
        async with connect(server, principal=DEVOPS) as other:

            async def answer(context: Any, params: Any) -> ElicitResult:
                asked.append(str(params.message))
                if len(asked) == 1:
                    await other.call("pulumi_set_config", {**STACK, "key": "replicas", "value": "3"})
                return ElicitResult(action="accept", content={"confirm": True})

            async with Client(server, elicitation_callback=answer) as raw:
                meta = cast(RequestParamsMeta, {PRINCIPAL_META_KEY: DEVOPS.as_meta()})
                result = await raw.call_tool("pulumi_up", STACK, meta=meta)
    assert len(asked) == 2
    first, second = (re.search(r"sha256:([0-9a-f]{64})", m) for m in asked)
    assert first and second and first.group(1) != second.group(1)
    assert not result.is_error
    assert any(u.endswith("::web-w2") for u in resource_urns(change_env))  # plan B, the one shown last


async def test_legacy_mid_call_confirmation_voided_by_a_newer_preview(change_env: ChangeEnv) -> None:
    """Protocol <= 2025-11-25 asks mid-call, once: if another preview saves a newer plan while the
    user answers, the confirmed plan is no longer the stack's plan and nothing is applied."""
    server = build_server(change_env.settings)
    with anyio.fail_after(TIMEOUT):
        async with connect(server, principal=DEVOPS) as other:

            async def answer(context: Any, params: Any) -> ElicitResult:
                await other.call("pulumi_set_config", {**STACK, "key": "replicas", "value": "3"})
                assert not (await other.call("pulumi_preview", STACK)).is_error
                return ElicitResult(action="accept", content={"confirm": True})

            async with Client(server, mode="legacy", elicitation_callback=answer) as raw:
                meta = cast(RequestParamsMeta, {PRINCIPAL_META_KEY: DEVOPS.as_meta()})
                result = await raw.call_tool("pulumi_up", STACK, meta=meta)
    assert error_code(result) == "conflict"
    assert "nothing was applied" in error_of(result)["message"]
    assert resource_urns(change_env) == []
