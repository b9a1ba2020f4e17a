"""The only code that talks to Retool: REST API v2 under /api/v2, workflow webhooks under /v1.

Retool's contract (see the issue's contract notes, Part B): every success is `{success: true, data}`,
every failure `{success: false, message}`; only /users and /resources page (with `limit` +
`next_token`), the other lists return everything; updates are JSON Patch. Retool publishes no rate
limit for cloud, so this client throttles itself (a sliding window, 45/min by default, as Retool's
own Terraform provider does) and backs off on 429 and 5xx. httpx is imported lazily so the server
answers initialize and tools/list without paying for it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from sophia_shared.errors import (
    Conflict,
    Forbidden,
    InvalidArgument,
    LimitExceeded,
    NotConfigured,
    NotFound,
    SophiaError,
    Unavailable,
    UpstreamError,
)
from sophia_shared.paths import sophia_home
from sophia_shared.redact import sanitize_untrusted
from sophia_shared.rest import IDEMPOTENT_METHODS, RestClient, RetryPolicy
from sophia_shared.rest_limits import Clock, DailyBudget, RateLimiter, RealClock

from .settings import RetoolSettings

if TYPE_CHECKING:
    import httpx

API_PREFIX = "/api/v2"
# A 429 asking for a longer wait than this ends the call limit_exceeded instead of being waited out.
MAX_RETRY_AFTER_S = 120.0

# Machine scope name -> the name Retool's token UI shows, for messages that say what to tick.
SCOPE_LABELS = {
    "apps:read": "Apps > Read",
    "folders:read": "Folders > Read",
    "folders:write": "Folders > Write",
    "users:read": "Users > Read",
    "users:write": "Users > Write",
    "groups:read": "Groups > Read",
    "groups:write": "Groups > Write",
    "permissions:all:read": "Permissions > Read",
    "permissions:all:write": "Permissions > Write",
    "resources:read": "Resources > Read",
    "environments:read": "Environment > Read",
    "workflows:read": "Workflows > Read",
}


class NoAnswerInTime(Unavailable):
    """The request was sent whole but no answer came before the read timeout."""


@dataclass
class Page:
    """One page of a list: items, the cursor for the next one, and the list's total size."""

    items: list[dict[str, Any]]
    next_token: str | None
    total_count: int | None


@dataclass
class TriggerResult:
    """What a workflow webhook answered, or that it had not answered within the wait."""

    outcome: Literal["responded", "still_running"]
    status_code: int | None
    body: Any
    waited_s: float


class RetoolClient:
    """Async client for one Retool instance. Connects on first use, never at construction."""

    def __init__(
        self,
        settings: RetoolSettings,
        *,
        clock: Clock | None = None,
        limiter: RateLimiter | None = None,
        transport: Any = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or RealClock()
        self.limiter = limiter or RateLimiter(settings.rate_limit_per_minute, 60.0, self.clock)
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        budget = None
        if settings.daily_budget is not None:
            budget = DailyBudget(settings.daily_budget, sophia_home() / "retool" / "budget.json",
                                 api="Retool", setting="SOPHIA_RETOOL_DAILY_BUDGET")
        self.rest = RestClient(
            self._client, limiter=self.limiter, budget=budget, clock=self.clock,
            policy=RetryPolicy(max_retries=settings.max_retries, backoff_base_s=settings.retry_base_s,
                               max_retry_after_s=MAX_RETRY_AFTER_S),
        )

    @property
    def requests_sent(self) -> int:
        return self.rest.stats.requests

    # -- plumbing ----------------------------------------------------------------------------
    def _require_config(self) -> tuple[str, str]:
        missing = self.settings.missing()
        if missing:
            raise NotConfigured(
                f"Retool is not configured: set {' and '.join(missing)} "
                "(the instance address and an API token from Settings → Retool API)",
                data={"settings": missing},
            )
        assert self.settings.base_url is not None and self.settings.api_token is not None
        return self.settings.base_url, self.settings.api_token.get_secret_value()

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            import httpx

            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(self.settings.request_timeout_s, connect=10.0),
                transport=self._transport,
                follow_redirects=False,
                headers={"Accept": "application/json", "User-Agent": "sophia-retool/0.1"},
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _send(self, method: str, url: str, *, what: str, **kwargs: Any) -> httpx.Response:
        """Send under the shared policy (sophia_shared.rest); return the final response (any status) or raise."""
        import httpx

        try:
            answer = await self.rest.send(method, url, key=urlsplit(url).path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise Unavailable(
                f"cannot reach Retool at {_origin_of(url)} to {what}; check SOPHIA_RETOOL_BASE_URL and the network",
                detail=str(exc),
            ) from None
        except httpx.TransportError as exc:
            # The request may have arrived: the policy sent only reads again.
            outcome = "" if method in IDEMPOTENT_METHODS else (
                "; the change may or may not have been applied, check before retrying")
            kind = NoAnswerInTime if isinstance(exc, httpx.ReadTimeout) else Unavailable
            raise kind(f"Retool at {_origin_of(url)} did not answer to {what}{outcome}", detail=str(exc)) from None
        return answer.response

    async def call(
        self,
        method: str,
        path: str,
        *,
        scope: str,
        what: str,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """One API call: the unwrapped envelope (a dict with `data`, and list fields), or None on 204."""
        base, token = self._require_config()
        kwargs: dict[str, Any] = {"headers": {"Authorization": f"Bearer {token}"}}
        if params:
            kwargs["params"] = {k: v for k, v in params.items() if v is not None}
        if body is not None:
            kwargs["json"] = body
        response = await self._send(method, f"{base}{API_PREFIX}{path}", what=what, **kwargs)
        if response.status_code == 204:
            return None
        payload = _json_body(response)
        if 200 <= response.status_code < 300:
            if not isinstance(payload, dict) or payload.get("success") is False:
                raise UpstreamError(f"Retool answered {what} without its usual envelope", detail=_message(payload))
            return payload
        raise _error_for(response.status_code, _message(payload), scope=scope, what=what)

    async def data(self, method: str, path: str, **kwargs: Any) -> Any:
        envelope = await self.call(method, path, **kwargs)
        return None if envelope is None else envelope.get("data")

    async def everything(
        self, path: str, *, scope: str, what: str, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """A list Retool returns whole (no paging parameters); the list fields are ignored."""
        data = await self.data("GET", path, scope=scope, what=what, params=params)
        return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []

    async def page(
        self,
        path: str,
        *,
        scope: str,
        what: str,
        limit: int,
        next_token: str | None,
        params: dict[str, Any] | None = None,
    ) -> Page:
        """One page of a list that supports `limit` + `next_token` (/users, /resources)."""
        query = dict(params or {})
        query["limit"] = limit
        if next_token:
            query["next_token"] = next_token
        envelope = await self.call("GET", path, scope=scope, what=what, params=query)
        assert envelope is not None
        items = envelope.get("data")
        token = envelope.get("next_token") if envelope.get("has_more", True) else None
        total = envelope.get("total_count")
        return Page(
            items=[i for i in items if isinstance(i, dict)] if isinstance(items, list) else [],
            next_token=token if isinstance(token, str) and token else None,
            total_count=total if isinstance(total, int) else None,
        )

    # -- the API, as the tools use it ----------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        base, _token = self._require_config()
        response = await self._send("GET", f"{base}/api/checkHealth", what="check Retool's health")
        payload = _json_body(response)
        if response.status_code != 200 or not isinstance(payload, dict):
            raise Unavailable(f"Retool at {base} answered its health check with {response.status_code}")
        return payload

    async def list_apps(self) -> list[dict[str, Any]]:
        return await self.everything("/apps", scope="apps:read", what="list apps")

    async def get_app(self, app_id: str) -> dict[str, Any]:
        return await self._one(f"/apps/{app_id}", "apps:read", f"app {app_id}")

    async def list_folders(self) -> list[dict[str, Any]]:
        return await self.everything("/folders", scope="folders:read", what="list folders")

    async def create_folder(self, name: str, folder_type: str, parent_folder_id: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "folder_type": folder_type}
        if parent_folder_id is not None:
            body["parent_folder_id"] = parent_folder_id
        return await self._one("/folders", "folders:write", f"folder {name!r}", method="POST", body=body)

    async def list_users(
        self,
        *,
        email: str | None,
        first_name: str | None,
        last_name: str | None,
        limit: int,
        next_token: str | None,
    ) -> Page:
        return await self.page(
            "/users",
            scope="users:read",
            what="list users",
            limit=limit,
            next_token=next_token,
            params={"email": email, "first_name": first_name, "last_name": last_name},
        )

    async def get_user(self, user_id: str, *, include_groups: bool = True) -> dict[str, Any]:
        params = {"includeGroups": "true"} if include_groups else None
        return await self._one(f"/users/{user_id}", "users:read", f"user {user_id}", params=params)

    async def update_user(self, user_id: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
        return await self._one(
            f"/users/{user_id}", "users:write", f"user {user_id}", method="PATCH", body={"operations": operations}
        )

    async def disable_user(self, user_id: str) -> None:
        await self.call("DELETE", f"/users/{user_id}", scope="users:write", what=f"user {user_id}")

    async def invite_user(
        self, email_address: str, group_ids: list[int], metadata: dict[str, Any] | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"email": email_address}
        if group_ids:
            body["defaultGroupIds"] = group_ids
        if metadata:
            body["metadata"] = metadata
        return await self._one("/user_invites", "users:write", f"invite for {email_address}", method="POST", body=body)

    async def list_groups(self) -> list[dict[str, Any]]:
        return await self.everything("/groups", scope="groups:read", what="list groups")

    async def get_group(self, group_id: int) -> dict[str, Any]:
        return await self._one(f"/groups/{group_id}", "groups:read", f"group {group_id}")

    async def add_group_members(self, group_id: int, members: list[dict[str, Any]]) -> dict[str, Any]:
        return await self._one(
            f"/groups/{group_id}/members",
            "groups:write",
            f"group {group_id} or one of the users",
            method="POST",
            body={"members": members},
        )

    async def remove_group_member(self, group_id: int, user_id: str) -> dict[str, Any]:
        return await self._one(
            f"/groups/{group_id}/members/{user_id}",
            "groups:write",
            f"membership of {user_id} in group {group_id}",
            method="DELETE",
        )

    async def access_list(self, object_type: str, object_id: str) -> dict[str, Any]:
        return await self._one(
            f"/permissions/accessList/{object_type}/{object_id}", "permissions:all:read", f"{object_type} {object_id}"
        )

    async def list_objects(
        self, subject: dict[str, Any], object_type: str, include_inherited: bool
    ) -> list[dict[str, Any]]:
        data = await self.data(
            "POST",
            "/permissions/listObjects",
            scope="permissions:all:read",
            what=f"{subject['type']} {subject['id']}",
            body={"subject": subject, "object_type": object_type, "include_inherited_access": include_inherited},
        )
        return [i for i in data if isinstance(i, dict)] if isinstance(data, list) else []

    async def grant(self, subject: dict[str, Any], obj: dict[str, Any], access_level: str) -> None:
        await self.call(
            "POST",
            "/permissions/grant",
            scope="permissions:all:write",
            what=f"{subject['type']} {subject['id']} or {obj['type']} {obj['id']}",
            body={"subject": subject, "object": obj, "access_level": access_level},
        )

    async def revoke(self, subject: dict[str, Any], obj: dict[str, Any]) -> bool:
        """Revoke a direct grant; False when there was none (Retool answers 404 then)."""
        try:
            await self.call(
                "POST",
                "/permissions/revoke",
                scope="permissions:all:write",
                what=f"grant of {obj['type']} {obj['id']} to {subject['type']} {subject['id']}",
                body={"subject": subject, "object": obj},
            )
        except NotFound:
            return False
        return True

    async def list_resources(self, *, resource_type: str | None, limit: int, next_token: str | None) -> Page:
        return await self.page(
            "/resources",
            scope="resources:read",
            what="list resources",
            limit=limit,
            next_token=next_token,
            params={"resource_type": resource_type},
        )

    async def get_resource(self, resource_id: str) -> dict[str, Any]:
        return await self._one(f"/resources/{resource_id}", "resources:read", f"resource {resource_id}")

    async def list_environments(self) -> list[dict[str, Any]]:
        return await self.everything("/environments", scope="environments:read", what="list environments")

    async def list_workflows(self) -> list[dict[str, Any]]:
        return await self.everything("/workflows", scope="workflows:read", what="list workflows")

    async def get_workflow(self, workflow_id: str) -> dict[str, Any]:
        return await self._one(f"/workflows/{workflow_id}", "workflows:read", f"workflow {workflow_id}")

    async def trigger_workflow(self, workflow_id: str, payload: dict[str, Any] | None, wait_s: float) -> TriggerResult:
        """POST the workflow's webhook with its own key; wait up to `wait_s` for a Response block."""
        import httpx

        key = self.settings.workflow_keys.get(workflow_id.lower())
        if key is None:
            raise NotConfigured(
                f"no webhook key for workflow {workflow_id}: add it to SOPHIA_RETOOL_WORKFLOW_KEYS "
                '(a JSON object {"<workflow id>": "retool_wk_…"}) from the workflow\'s Triggers panel',
                data={"settings": ["SOPHIA_RETOOL_WORKFLOW_KEYS"]},
            )
        base = self.settings.webhook_base_url or self.settings.base_url
        if base is None:
            raise NotConfigured(
                "Retool is not configured: set SOPHIA_RETOOL_BASE_URL (or SOPHIA_RETOOL_WEBHOOK_BASE_URL)",
                data={"settings": ["SOPHIA_RETOOL_BASE_URL"]},
            )
        url = f"{base}/v1/workflows/{workflow_id}/startTrigger"
        started = time.perf_counter()
        try:
            response = await self._send(
                "POST",
                url,
                what=f"trigger workflow {workflow_id}",
                content=json.dumps(payload if payload is not None else {}).encode(),
                headers={"Content-Type": "application/json", "X-Workflow-Api-Key": key.get_secret_value()},
                timeout=httpx.Timeout(wait_s, connect=10.0),
            )
        except NoAnswerInTime:
            # The request went out whole; Retool is running the workflow and holding the answer for
            # its Response block. The run continues in Retool after we stop waiting.
            return TriggerResult("still_running", None, None, round(time.perf_counter() - started, 3))
        status = response.status_code
        if status in (401, 403):
            raise NotConfigured(
                f"Retool refused the webhook key for workflow {workflow_id}: update its entry in "
                "SOPHIA_RETOOL_WORKFLOW_KEYS from the workflow's Triggers panel",
                data={"settings": ["SOPHIA_RETOOL_WORKFLOW_KEYS"]},
            )
        if status == 404:
            raise NotFound(
                f"workflow {workflow_id} has no reachable webhook: it does not exist, is not published, "
                "or its webhook trigger is disabled"
            )
        if status == 429:
            raise LimitExceeded(f"Retool kept answering 429 to the webhook of workflow {workflow_id}; try later")
        return TriggerResult("responded", status, _json_body(response), round(time.perf_counter() - started, 3))

    async def _one(
        self,
        path: str,
        scope: str,
        what: str,
        *,
        method: str = "GET",
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        data = await self.data(method, path, scope=scope, what=what, params=params, body=body)
        if not isinstance(data, dict):
            raise UpstreamError(f"Retool answered {what} without an object")
        return data


def _origin_of(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"



def _json_body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def _message(payload: Any) -> str:
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        text = payload["message"]
    elif isinstance(payload, str):
        text = payload
    else:
        text = ""
    return sanitize_untrusted(text)[:500]


def _error_for(status: int, message: str, *, scope: str, what: str) -> SophiaError:
    """Retool's `{success: false, message}` and status -> Sophia's error codes."""
    if status == 401:
        return NotConfigured(
            "Retool rejected the API token (401): set SOPHIA_RETOOL_API_TOKEN to a valid, unexpired token",
            detail=message,
            data={"settings": ["SOPHIA_RETOOL_API_TOKEN"]},
        )
    if status == 403:
        label = SCOPE_LABELS.get(scope, scope)
        return Forbidden(
            f"the Retool API token lacks the {scope} scope ({label}) needed for {what}; add it to the "
            "token under Settings → Retool API",
            detail=message,
            data={"scope": scope},
        )
    if status == 404:
        return NotFound(f"Retool has no {what}; check the id (list first to find it)", detail=message)
    if status == 409:
        return Conflict(f"Retool refused the change to {what} as a conflict (409)", detail=message)
    if status in (400, 422):
        return InvalidArgument(
            f"Retool rejected the request for {what} as invalid ({status}); check the arguments", detail=message
        )
    if status == 429:
        return LimitExceeded(
            f"Retool kept answering 429 (rate limit) for {what} after retries; wait a minute, or lower "
            "SOPHIA_RETOOL_RATE_LIMIT_PER_MINUTE",
            detail=message,
        )
    if status >= 500:
        return Unavailable(f"Retool failed with {status} for {what}; try again later", detail=message)
    return UpstreamError(f"Retool answered {status} for {what}", detail=message)
