"""retool_trigger_workflow against the contract server's webhook: keys from settings, confirmation,
the synchronous Response block, the immediate answer, and the wait bound."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest
from servers.retool.harness import DEVOPS, VIEWER, Retool, confirmed
from sophia_shared.server import SophiaServer
from sophia_shared.testing import connect, error_code, error_data, structured

pytestmark = pytest.mark.anyio

MakeServer = Callable[..., SophiaServer]


async def test_synchronous_workflow_returns_its_response_block(retool: Retool, make_server: MakeServer) -> None:
    wid = retool.workflow("Lookup customer")
    async with connect(make_server(), principal=DEVOPS) as client:
        with anyio.fail_after(20):
            asked = await client.call("retool_trigger_workflow", {"workflow_id": wid, "payload": {"email": "a@b.co"}})
            assert error_code(asked) == "confirmation_required"
            assert retool.org.hooks[wid].runs == [], "nothing runs before the user approves"
            result = structured(
                await confirmed(client, "retool_trigger_workflow", {"workflow_id": wid, "payload": {"email": "a@b.co"}})
            )
    assert result["outcome"] == "responded" and result["status_code"] == 200
    assert result["body"] == {"customer": "acme", "tier": "gold"}
    assert [run["data"] for run in retool.org.hooks[wid].runs] == [{"email": "a@b.co"}]
    # The key travelled in the header, never in the URL.
    hook_requests = retool.server.records("/v1/workflows")
    assert len(hook_requests) == 1 and "workflowApiKey" not in hook_requests[0].query


async def test_asynchronous_workflow_answers_at_once_with_the_run(retool: Retool, make_server: MakeServer) -> None:
    wid = retool.workflow("Nightly sync")
    async with connect(make_server(), principal=DEVOPS) as client:
        with anyio.fail_after(20):
            result = structured(await confirmed(client, "retool_trigger_workflow", {"workflow_id": wid}))
    assert result["outcome"] == "responded" and result["status_code"] == 200
    assert result["body"]["workflow_run_id"] == retool.org.hooks[wid].runs[0]["id"]
    assert retool.org.hooks[wid].runs[0]["data"] == {}


async def test_response_block_slower_than_the_wait_leaves_the_run_going(
    retool: Retool, make_server: MakeServer
) -> None:
    wid = retool.workflow("Slow report")
    async with connect(make_server(), principal=DEVOPS) as client:
        with anyio.fail_after(20):
            result = structured(
                await confirmed(client, "retool_trigger_workflow", {"workflow_id": wid, "wait_seconds": 0.3})
            )
    assert result["outcome"] == "still_running" and result["status_code"] is None and result["body"] is None
    assert len(retool.org.hooks[wid].runs) == 1
    # Not retried: a second POST would start a second run.
    assert len(retool.server.records("/v1/workflows")) == 1


async def test_keys_come_only_from_settings(retool: Retool, make_server: MakeServer) -> None:
    wid = retool.workflow("Lookup customer")
    args = {"workflow_id": wid}
    no_keys = make_server(workflow_keys={})
    async with connect(no_keys, principal=DEVOPS) as client:
        with anyio.fail_after(20):
            tool = next(t for t in await client.list_tools() if t.name == "retool_trigger_workflow")
            missing = await confirmed(client, "retool_trigger_workflow", args)
    wrong = make_server(workflow_keys={wid: "retool_wk_wrongkey"})
    async with connect(wrong, principal=DEVOPS) as client:
        with anyio.fail_after(20):
            refused = await confirmed(client, "retool_trigger_workflow", args)
            # The right key passed as an argument is dropped: the settings' (wrong) key is what is sent.
            smuggled = await confirmed(client, "retool_trigger_workflow", {**args, "api_key": "retool_wk_sync00001"})
    assert set(tool.input_schema["properties"]) == {"workflow_id", "payload", "wait_seconds", "confirmation_token"}
    assert error_code(missing) == "not_configured"
    assert error_data(missing)["settings"] == ["SOPHIA_RETOOL_WORKFLOW_KEYS"]
    assert error_code(refused) == "not_configured" and "SOPHIA_RETOOL_WORKFLOW_KEYS" in refused.content[0].text  # type: ignore[union-attr]
    assert error_code(smuggled) == "not_configured"
    assert retool.org.hooks[wid].runs == []
    assert [r.status for r in retool.server.records("/v1/workflows")] == [401, 401]


async def test_unpublished_workflow_and_bad_input(retool: Retool, make_server: MakeServer) -> None:
    draft = retool.workflow("Draft workflow")
    async with connect(make_server(), principal=DEVOPS) as client:
        with anyio.fail_after(20):
            unpublished = await confirmed(client, "retool_trigger_workflow", {"workflow_id": draft})
            bad_id = await client.call("retool_trigger_workflow", {"workflow_id": "nightly-sync"})
            too_big = await client.call(
                "retool_trigger_workflow",
                {"workflow_id": retool.workflow("Nightly sync"), "payload": {"blob": "x" * 70_000}},
            )
            viewer = await client.call("retool_trigger_workflow", {"workflow_id": draft}, principal=VIEWER)
    assert error_code(unpublished) == "not_found" and "not published" in unpublished.content[0].text  # type: ignore[union-attr]
    assert error_code(bad_id) == "invalid_argument"
    assert error_code(too_big) == "invalid_argument"
    assert error_code(viewer) == "forbidden"
    assert all(not h.runs for h in retool.org.hooks.values())
