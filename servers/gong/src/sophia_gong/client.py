"""The only code that talks to Gong's API v2: rate limit, daily budget, retries, paging, OAuth."""

from __future__ import annotations

import base64
import copy
import fcntl
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
from pydantic import BaseModel
from sophia_shared.errors import (
    Forbidden,
    InvalidArgument,
    NotConfigured,
    NotFound,
    Unavailable,
    UpstreamError,
)
from sophia_shared.paths import sophia_home, write_atomically
from sophia_shared.rest import Answer, RestClient, RetryPolicy
from sophia_shared.rest_limits import BudgetExhausted as BudgetExhausted
from sophia_shared.rest_limits import DailyBudget as DailyBudget
from sophia_shared.rest_limits import RateLimited as RateLimited
from sophia_shared.rest_limits import RateLimiter

from .settings import CREDENTIAL_SETTINGS, GongSettings

if TYPE_CHECKING:
    import httpx

# Gong documents no page-size parameter: every list answers 100 records a page, and batches of
# more than 100 ids are reported to exceed a per-request cap.
PAGE_SIZE = 100
MAX_IDS_PER_REQUEST = 100

# Scope each endpoint needs with a bearer token, quoted when Gong refuses it.
_SCOPES = {
    "/v2/calls": "api:calls:read:basic",
    "/v2/calls/extensive": "api:calls:read:extensive",
    "/v2/calls/transcript": "api:calls:read:transcript",
    "/v2/users": "api:users:read",
    "/v2/users/extensive": "api:users:read",
    "/v2/workspaces": "api:workspaces:read",
}

Method = Literal["GET", "POST"]


class CursorRejected(UpstreamError):
    """Gong refused a paging cursor (expired, or the request changed under it)."""


@dataclass(frozen=True)
class GongPage:
    """One page of a Gong list: its records, the cursor for the next page (None: last), the total."""

    items: list[dict[str, Any]]
    cursor: str | None
    total: int
    request_id: str | None


def write_private(path: Path, data: dict[str, Any]) -> None:
    """Replace a JSON file atomically, readable by the owner only."""
    write_atomically(path, json.dumps(data).encode())


def gong_home() -> Path:
    """Where the Gong server keeps its state (budget, OAuth tokens, sync progress)."""
    path = sophia_home() / "gong"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


class OAuthTokens(BaseModel):
    """The OAuth state: refresh tokens are single-use, so this file is the only valid copy."""

    access_token: str | None = None
    refresh_token: str | None = None
    expires_at: float | None = None
    api_base_url: str | None = None
    # Fingerprint of the tokens in the settings this state grew from: new settings reseed it.
    seed: str = ""


class TokenStore:
    """OAuth tokens under SOPHIA_HOME, refreshed under a cross-process lock."""

    def __init__(self, settings: GongSettings, path: Path | None = None) -> None:
        self.settings = settings
        self.path = path or gong_home() / "oauth.json"
        self._lock_path = self.path.with_suffix(".lock")
        self._seed = self._fingerprint()
        self._tokens = self._load()
        self._refresh_lock = anyio.Lock()

    def _fingerprint(self) -> str:
        s = self.settings
        parts = [
            s.oauth_token.get_secret_value() if s.oauth_token else "",
            s.oauth_refresh_token.get_secret_value() if s.oauth_refresh_token else "",
        ]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]

    def _load(self) -> OAuthTokens:
        try:
            stored = OAuthTokens.model_validate_json(self.path.read_text())
        except (OSError, ValueError):
            stored = None
        if stored is not None and stored.seed == self._seed:
            return stored
        s = self.settings
        return OAuthTokens(
            access_token=s.oauth_token.get_secret_value() if s.oauth_token else None,
            refresh_token=s.oauth_refresh_token.get_secret_value() if s.oauth_refresh_token else None,
            seed=self._seed,
        )

    @property
    def tokens(self) -> OAuthTokens:
        return self._tokens

    def can_refresh(self) -> bool:
        s = self.settings
        return bool(self._tokens.refresh_token and s.oauth_client_id and s.oauth_client_secret)

    def needs_refresh(self) -> bool:
        t = self._tokens
        if not t.access_token:
            return True
        return t.expires_at is not None and time.time() > t.expires_at - 60

    async def refresh(self, http: httpx.AsyncClient, stale_access_token: str | None) -> OAuthTokens:
        """Exchange the refresh token once; a sibling that already refreshed wins and is reused."""
        async with self._refresh_lock:
            lock_fd = await anyio.to_thread.run_sync(self._acquire_file_lock)
            try:
                on_disk = self._load()
                if on_disk.access_token and on_disk.access_token != stale_access_token:
                    self._tokens = on_disk
                    return on_disk
                self._tokens = await self._exchange(http, on_disk)
                write_private(self.path, self._tokens.model_dump())
                return self._tokens
            finally:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)
                os.close(lock_fd)

    def _acquire_file_lock(self) -> int:
        self._lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    async def _exchange(self, http: httpx.AsyncClient, current: OAuthTokens) -> OAuthTokens:
        import httpx

        s = self.settings
        if not (current.refresh_token and s.oauth_client_id and s.oauth_client_secret):
            raise Forbidden(
                "the Gong OAuth token is expired or rejected and cannot be refreshed: set "
                "SOPHIA_GONG_OAUTH_REFRESH_TOKEN, SOPHIA_GONG_OAUTH_CLIENT_ID and SOPHIA_GONG_OAUTH_CLIENT_SECRET"
            )
        try:
            response = await http.post(
                s.oauth_token_url,
                data={"grant_type": "refresh_token", "refresh_token": current.refresh_token},
                auth=(s.oauth_client_id, s.oauth_client_secret.get_secret_value()),
            )
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"cannot reach Gong's OAuth endpoint {s.oauth_token_url}", detail=type(exc).__name__
            ) from None
        if response.status_code != 200:
            raise Forbidden(
                f"Gong refused to refresh the OAuth token (HTTP {response.status_code}): re-authorise the app "
                "and set SOPHIA_GONG_OAUTH_REFRESH_TOKEN to the new refresh token",
                detail=response.text[:500],
            )
        try:
            body = response.json()
            access = str(body["access_token"])
            refresh = str(body.get("refresh_token") or "")
        except (ValueError, KeyError, TypeError):
            raise UpstreamError("Gong's OAuth endpoint answered without an access token") from None
        expires_in = body.get("expires_in")
        return OAuthTokens(
            access_token=access,
            # Rotation: the old refresh token is now spent; keep it only if no new one came back.
            refresh_token=refresh or None,
            expires_at=time.time() + float(expires_in) if isinstance(expires_in, int | float) else None,
            api_base_url=self._checked_base_url(body.get("api_base_url_for_customer")) or current.api_base_url,
            seed=self._seed,
        )

    def _checked_base_url(self, value: object) -> str | None:
        if not isinstance(value, str) or not value:
            return None
        allowed: tuple[str, ...] = ("https://",)
        # Plain http only when the token endpoint itself is plain http (a local stand-in).
        if self.settings.oauth_token_url.startswith("http://"):
            allowed = ("https://", "http://")
        if not value.startswith(allowed):
            raise UpstreamError("Gong's OAuth endpoint returned an api_base_url_for_customer that is not https")
        return value.rstrip("/")


def _scope_for(path: str) -> str:
    if path.startswith("/v2/calls/") and path.count("/") == 3 and path.split("/")[3].isdigit():
        return "api:calls:read:basic"
    if path.startswith("/v2/users/") and path.split("/")[3].isdigit():
        return "api:users:read"
    return _SCOPES.get(path, "the scope of " + path)


def _json_or_none(response: httpx.Response) -> object:
    try:
        body: object = response.json()
    except ValueError:
        return None
    return body


def _json_object(response: httpx.Response, path: str) -> dict[str, Any]:
    try:
        parsed = response.json()
    except ValueError:
        raise UpstreamError(f"Gong answered {path} with a body that is not JSON") from None
    if not isinstance(parsed, dict):
        raise UpstreamError(f"Gong answered {path} with an unexpected body")
    return parsed


def _error_text(body: object) -> str:
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            return "; ".join(str(e) for e in errors)[:500]
    return ""


def chunked(ids: Sequence[str], size: int = MAX_IDS_PER_REQUEST) -> Iterator[list[str]]:
    """Batches of at most `size` ids, in order, duplicates removed."""
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), size):
        yield unique[start : start + size]


class GongClient:
    """Gong API v2 over httpx. Built without I/O; the HTTP client is created on first use."""

    def __init__(self, settings: GongSettings) -> None:
        self.settings = settings
        self.limiter = RateLimiter.per_second(settings.rate_limit_per_second)
        self.budget = DailyBudget(settings.daily_budget, gong_home() / "budget.json",
                                  api="Gong", setting="SOPHIA_GONG_DAILY_BUDGET")
        self.rest = RestClient(
            self._client, limiter=self.limiter, budget=self.budget,
            policy=RetryPolicy(max_retries=settings.max_retries, backoff_base_s=settings.retry_backoff_s,
                               max_retry_after_s=settings.max_retry_after_s),
        )
        self.stats = self.rest.stats
        self._tokens = TokenStore(settings) if settings.auth_mode() == "oauth" else None
        self._http: httpx.AsyncClient | None = None

    @property
    def configured(self) -> bool:
        return self.settings.auth_mode() is not None

    def require_configured(self) -> None:
        if not self.configured:
            raise NotConfigured(f"Gong is not configured: set {CREDENTIAL_SETTINGS}")

    @property
    def base_url(self) -> str:
        """The host API calls go to: the OAuth customer host once known, else SOPHIA_GONG_BASE_URL."""
        if self._tokens is not None and self._tokens.tokens.api_base_url:
            return self._tokens.tokens.api_base_url
        return self.settings.base_url

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            import httpx

            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(self.settings.request_timeout_s, connect=10.0),
                headers={"Accept": "application/json", "User-Agent": "sophia-gong/0.1"},
                follow_redirects=False,
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _auth_header(self) -> str:
        s = self.settings
        if s.access_key and s.access_key_secret:
            raw = f"{s.access_key.get_secret_value()}:{s.access_key_secret.get_secret_value()}"
            return "Basic " + base64.b64encode(raw.encode()).decode()
        assert self._tokens is not None
        if self._tokens.needs_refresh() and self._tokens.can_refresh():
            await self._tokens.refresh(self._client(), self._tokens.tokens.access_token)
        token = self._tokens.tokens.access_token
        if not token:
            raise NotConfigured(f"Gong OAuth has no access token: set {CREDENTIAL_SETTINGS}")
        return "Bearer " + token

    async def request(
        self,
        method: Method,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        empty_on_404: bool = False,
    ) -> dict[str, Any]:
        """Send one logical request (retried on 429/5xx/network errors); return Gong's JSON body.

        With `empty_on_404`, Gong's "nothing matched the filter" 404 (its own error envelope,
        saying not found) returns `{}`; any other 404 is still an error.
        """
        self.require_configured()
        refreshed = False
        while True:
            auth = await self._auth_header()
            answer = await self._send(method, path, params=params, body=body, auth=auth)
            response, status = answer.response, answer.response.status_code
            if status == 200:
                return _json_object(response, path)
            error_body = _json_or_none(response)
            request_id = error_body.get("requestId") if isinstance(error_body, dict) else None
            data: dict[str, Any] = {"status": status, "path": path}
            if request_id:
                data["request_id"] = str(request_id)
            text = _error_text(error_body)
            if status == 401 and self._tokens is not None and not refreshed and self._tokens.can_refresh():
                refreshed = True
                await self._tokens.refresh(self._client(), auth.removeprefix("Bearer "))
                continue
            if status == 404 and empty_on_404 and request_id and "found" in text.lower():
                return {}
            raise self._failure(answer, path, text, data)

    async def _send(self, method: Method, path: str, *, params: dict[str, Any] | None,
                    body: dict[str, Any] | None, auth: str) -> Answer:
        """One logical request under the shared policy (every Gong request is a read: all are retried)."""
        import httpx

        try:
            return await self.rest.send(method, self.base_url + path, key=path, idempotent=True,
                                        params=params, json=body, headers={"Authorization": auth})
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"cannot reach Gong at {self.base_url} (check SOPHIA_GONG_BASE_URL)",
                detail=type(exc).__name__,
            ) from None

    def _failure(self, answer: Answer, path: str, text: str, data: dict[str, Any]) -> Exception:
        status = answer.response.status_code
        if status == 429:
            wait = answer.retry_after_s
            if wait is not None:
                data["retry_after_s"] = round(wait, 1)
            if wait is not None and wait > self.settings.max_retry_after_s:
                return RateLimited(
                    f"Gong asked for no requests for {wait / 60:.0f} min (its request limit, likely the "
                    "company's daily cap); try again later",
                    detail=text, data=data,
                )
            return RateLimited(f"Gong kept answering 429 after {answer.attempts} tries; try again later",
                               detail=text, data=data)
        if status >= 500:
            return Unavailable(
                f"Gong at {self.base_url} failed with HTTP {status} after {answer.attempts} tries",
                detail=text, data=data,
            )
        return self._mapped(status, path, text, data)

    def _mapped(self, status: int, path: str, text: str, data: dict[str, Any]) -> Exception:
        if status in (401, 403):
            scope = _scope_for(path)
            data["required_scope"] = scope
            how = (
                f"check {CREDENTIAL_SETTINGS}"
                if status == 401 or self._tokens is None
                else f"the OAuth app needs the scope {scope}"
            )
            return Forbidden(f"Gong refused {path} (HTTP {status}): {how}", detail=text, data=data)
        if status == 404:
            return NotFound(f"Gong found nothing at {path}", detail=text, data=data)
        if status == 400 and "cursor" in text.lower():
            return CursorRejected("Gong rejected the paging cursor; restart the listing", detail=text, data=data)
        if status == 400:
            return InvalidArgument(f"Gong rejected the request to {path} as malformed", detail=text, data=data)
        return UpstreamError(f"Gong answered {path} with HTTP {status}", detail=text, data=data)

    # -- paging -------------------------------------------------------------------------------

    async def page(
        self,
        method: Method,
        path: str,
        key: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        cursor: str | None = None,
    ) -> GongPage:
        """One page of a list endpoint; the cursor goes in the query for GET, in the body for POST."""
        query = dict(params or {})
        payload = copy.deepcopy(body) if body is not None else None
        if cursor is not None:
            if method == "GET":
                query["cursor"] = cursor
            else:
                payload = dict(payload or {})
                payload["cursor"] = cursor
        answer = await self.request(method, path, params=query or None, body=payload, empty_on_404=True)
        records = answer.get("records") if isinstance(answer.get("records"), dict) else {}
        assert isinstance(records, dict)
        items = answer.get(key) or []
        if not isinstance(items, list):
            raise UpstreamError(f"Gong answered {path} without a '{key}' list")
        next_cursor = records.get("cursor")
        return GongPage(
            items=[i for i in items if isinstance(i, dict)],
            cursor=str(next_cursor) if next_cursor else None,
            total=int(records.get("totalRecords") or len(items)),
            request_id=str(answer["requestId"]) if answer.get("requestId") else None,
        )

    async def pages(
        self,
        method: Method,
        path: str,
        key: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        cursor: str | None = None,
    ) -> AsyncIterator[GongPage]:
        """Every page of a list, the filter frozen (copied once) for the whole scan."""
        frozen_params = copy.deepcopy(params)
        frozen_body = copy.deepcopy(body)
        while True:
            current = await self.page(method, path, key, params=frozen_params, body=frozen_body, cursor=cursor)
            yield current
            if current.cursor is None:
                return
            cursor = current.cursor

    # -- endpoints ------------------------------------------------------------------------------

    async def list_calls(
        self, from_dt: str, to_dt: str, *, workspace_id: str | None = None, cursor: str | None = None
    ) -> GongPage:
        """GET /v2/calls: one page of calls in [from, to)."""
        params: dict[str, Any] = {"fromDateTime": from_dt, "toDateTime": to_dt}
        if workspace_id:
            params["workspaceId"] = workspace_id
        return await self.page("GET", "/v2/calls", "calls", params=params, cursor=cursor)

    async def calls_extensive_page(
        self, call_filter: dict[str, Any], content_selector: dict[str, Any], cursor: str | None = None
    ) -> GongPage:
        """POST /v2/calls/extensive: one page of call details for a filter."""
        body = {"filter": call_filter, "contentSelector": content_selector}
        return await self.page("POST", "/v2/calls/extensive", "calls", body=body, cursor=cursor)

    async def get_call(self, call_id: str) -> dict[str, Any]:
        """GET /v2/calls/{id}: the basic call object, NotFound when Gong has no such call."""
        answer = await self.request("GET", f"/v2/calls/{call_id}")
        call = answer.get("call")
        if not isinstance(call, dict):
            raise UpstreamError("Gong answered without a 'call' object")
        return call

    async def call_details(
        self, call_ids: Sequence[str], content_selector: dict[str, Any]
    ) -> dict[str, dict[str, Any]]:
        """Call details by id, ≤100 ids a request, every page; ids Gong does not know are absent."""
        found: dict[str, dict[str, Any]] = {}
        for batch in chunked(call_ids):
            body = {"filter": {"callIds": batch}, "contentSelector": content_selector}
            async for current in self.pages("POST", "/v2/calls/extensive", "calls", body=body):
                for call in current.items:
                    meta = call.get("metaData")
                    if isinstance(meta, dict) and meta.get("id"):
                        found[str(meta["id"])] = call
        return found

    async def transcripts(self, call_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Transcripts (monologues) by call id, ≤100 ids a request, every page."""
        found: dict[str, list[dict[str, Any]]] = {}
        for batch in chunked(call_ids):
            body = {"filter": {"callIds": batch}}
            async for current in self.pages("POST", "/v2/calls/transcript", "callTranscripts", body=body):
                for item in current.items:
                    monologues = item.get("transcript")
                    if item.get("callId") and isinstance(monologues, list):
                        found[str(item["callId"])] = [m for m in monologues if isinstance(m, dict)]
        return found

    async def list_users(self, cursor: str | None = None) -> GongPage:
        """GET /v2/users: one page of users."""
        return await self.page("GET", "/v2/users", "users", cursor=cursor)

    async def users_by_id(self, user_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """POST /v2/users/extensive with ≤100 ids a request (never one GET per user)."""
        found: dict[str, dict[str, Any]] = {}
        for batch in chunked(user_ids):
            body = {"filter": {"userIds": batch}}
            async for current in self.pages("POST", "/v2/users/extensive", "users", body=body):
                for user in current.items:
                    if user.get("id"):
                        found[str(user["id"])] = user
        return found

    async def workspaces(self) -> list[dict[str, Any]]:
        """GET /v2/workspaces."""
        answer = await self.request("GET", "/v2/workspaces", empty_on_404=True)
        items = answer.get("workspaces") or []
        return [w for w in items if isinstance(w, dict)] if isinstance(items, list) else []
