"""The stand-in itself: raw HTTP against the contract server, checking the Retool v2 behaviours the
client's tests rely on (contract notes Part B7), so a lenient stand-in cannot hide a client bug."""

from __future__ import annotations

import httpx
import pytest
from servers.retool.harness import ADMIN_TOKEN, Retool

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _api(retool: Retool) -> httpx.Client:
    return httpx.Client(base_url=f"{retool.base_url}/api/v2", headers=AUTH, timeout=10)


def test_envelope_list_fields_and_paging_only_where_supported(retool: Retool) -> None:
    with _api(retool) as api:
        everyone = api.get("/users").json()
        first = api.get("/users", params={"limit": 5}).json()
        token_alone = api.get("/users", params={"next_token": first["next_token"]}).json()
        folders = api.get("/folders", params={"limit": 1}).json()
        too_big = api.get("/users", params={"limit": 101})
    assert everyone["success"] is True and len(everyone["data"]) == len(retool.org.users)
    assert (everyone["has_more"], everyone["next_token"]) == (False, None)
    assert first["has_more"] and first["total_count"] == len(retool.org.users) and len(first["data"]) == 5
    # The token is honoured only with limit: alone, everything comes back.
    assert len(token_alone["data"]) == len(retool.org.users)
    # /folders ignores paging and returns everything.
    assert len(folders["data"]) == len(retool.org.folders) and folders["has_more"] is False
    assert too_big.status_code == 400 and too_big.json() == {
        "success": False,
        "message": "limit must be between 1 and 100",
    }


def test_auth_scopes_and_health(retool: Retool) -> None:
    with httpx.Client(base_url=retool.base_url, timeout=10) as raw:
        health = raw.get("/api/checkHealth").json()
        anonymous = raw.get("/api/v2/apps")
        wrong = raw.get("/api/v2/apps", headers={"Authorization": "Bearer retool_01nope"})
    assert health["version"] == "3.334.0"
    assert anonymous.status_code == 401 and wrong.status_code == 401
    assert retool.server.log[-1].token is None


def test_json_patch_required_and_deletes(retool: Retool) -> None:
    uid = retool.user(2)
    with _api(retool) as api:
        plain = api.patch(f"/users/{uid}", json={"first_name": "X"})
        email = api.patch(
            f"/users/{uid}", json={"operations": [{"op": "replace", "path": "/email", "value": "a@b.co"}]}
        )
        ok = api.patch(f"/users/{uid}", json={"operations": [{"op": "replace", "path": "/last_name", "value": "Y"}]})
        deleted = api.delete(f"/users/{uid}")
        folder_delete = api.delete("/folders/app_4")
    assert plain.status_code == 400 and email.status_code == 400
    assert ok.json()["data"]["last_name"] == "Y"
    assert deleted.status_code == 204 and deleted.content == b""
    assert retool.org.users[uid]["active"] is False and uid in retool.org.users
    assert folder_delete.status_code == 204 and "app_4" not in retool.org.folders


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/users/42", 400),
        ("/groups/admins", 400),
        ("/apps/app_1", 400),
        ("/folders/12", 400),
        ("/workflows/not-a-uuid", 400),
        ("/groups/404", 404),
        ("/resources/no-such-resource", 404),
    ],
)
def test_id_shapes_are_validated(retool: Retool, path: str, status: int) -> None:
    with _api(retool) as api:
        assert api.get(path).status_code == status


def test_webhook_key_content_type_and_query_key(retool: Retool) -> None:
    wid = retool.workflow("Nightly sync")
    key = retool.org.hooks[wid].key
    url = f"{retool.base_url}/v1/workflows/{wid}/startTrigger"
    with httpx.Client(timeout=10) as raw:
        no_key = raw.post(url, json={})
        not_json = raw.post(url, content=b"x=1", headers={"X-Workflow-Api-Key": key, "Content-Type": "text/plain"})
        by_query = raw.post(url, params={"workflowApiKey": key}, json={"a": 1})
    assert no_key.status_code == 401 and not_json.status_code == 400
    assert by_query.status_code == 200 and retool.org.hooks[wid].runs[-1]["data"] == {"a": 1}
    # The query key never reaches the log.
    assert retool.server.log[-1].query == {"workflowApiKey": "***"}
