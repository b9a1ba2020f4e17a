"""A local HTTP server that follows Gong's documented API v2 contract (notes Part A6), for tests and
the benchmark: Basic and Bearer auth with scopes, an OAuth stub with single-use refresh tokens and a
regional host, 100-record pages with signed, expiring, filter-bound cursors (query for GET, body for
POST), 404 when a filter matches nothing, 3 req/s and a daily cap with 429 + Retry-After, unknown
extra fields. Every request is logged so tests can assert the client's behaviour.

Runs under uvicorn on 127.0.0.1 in a background thread, reached through a real socket.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .gong_dataset import GongCall, GongDataset

PAGE_SIZE = 100
REGION_PREFIX = "/eu"

_SCOPES = {
    ("GET", "/v2/calls"): "api:calls:read:basic",
    ("GET", "/v2/calls/{id}"): "api:calls:read:basic",
    ("POST", "/v2/calls/extensive"): "api:calls:read:extensive",
    ("POST", "/v2/calls/transcript"): "api:calls:read:transcript",
    ("GET", "/v2/users"): "api:users:read",
    ("GET", "/v2/users/{id}"): "api:users:read",
    ("POST", "/v2/users/extensive"): "api:users:read",
    ("GET", "/v2/workspaces"): "api:workspaces:read",
}
# Gong answers 403 instead of 401 on these paths when credentials are bad.
_FORBIDDEN_ON_BAD_AUTH = ("/v2/users", "/v2/workspaces", "/v2/call-outcomes")
ALL_SCOPES = frozenset(_SCOPES.values())


@dataclass
class LoggedRequest:
    """One request as the server saw it on arrival."""

    t: float
    method: str
    path: str
    region: str
    query: dict[str, str]
    body: Any
    auth: str | None
    status: int = 0


@dataclass
class _Token:
    scopes: frozenset[str]
    region: str
    expires_at: float


@dataclass
class _Fault:
    status: int
    retry_after: float | None


@dataclass
class GongContractServer:
    """The server's state; `start()` serves it on 127.0.0.1, `stop()` ends it."""

    dataset: GongDataset
    access_key: str = "test-access-key"
    access_key_secret: str = "test-access-secret"
    rate_limit: float = 3.0
    daily_cap: int = 10_000
    cursor_ttl_s: float = 600.0
    max_ids: int = 100
    oauth_client_id: str = "sophia-test-app"
    oauth_client_secret: str = "test-client-secret"
    access_token_ttl_s: int = 86_400
    log: list[LoggedRequest] = field(default_factory=list)
    published: set[str] = field(default_factory=set)
    daily_used: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._accepted: deque[float] = deque()
        self._faults: deque[_Fault] = deque()
        self._signing_key = secrets.token_bytes(32)
        self._access: dict[str, _Token] = {}
        self._refresh: dict[str, frozenset[str]] = {}
        self._spent_refresh: set[str] = set()
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._ready = threading.Event()
        self.base_url = ""
        routes = [
            Route("/oauth2/generate-customer-token", self._oauth_token, methods=["POST"]),
        ]
        for prefix in ("", REGION_PREFIX):
            routes += [
                Route(prefix + "/v2/calls", _final_status(self._calls), methods=["GET", "POST"]),
                Route(prefix + "/v2/calls/extensive", _final_status(self._calls_extensive), methods=["POST"]),
                Route(prefix + "/v2/calls/transcript", _final_status(self._transcripts), methods=["POST"]),
                Route(prefix + "/v2/calls/{id}", _final_status(self._call), methods=["GET"]),
                Route(prefix + "/v2/users", _final_status(self._users), methods=["GET"]),
                Route(prefix + "/v2/users/extensive", _final_status(self._users_extensive), methods=["POST"]),
                Route(prefix + "/v2/users/{id}", _final_status(self._user), methods=["GET"]),
                Route(prefix + "/v2/workspaces", _final_status(self._workspaces), methods=["GET"]),
            ]
        self.app = Starlette(routes=routes, lifespan=self._lifespan)

    # -- control (called by tests) ---------------------------------------------------------------

    def start(self) -> str:
        """Serve on an ephemeral port of 127.0.0.1; return the base URL."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="gong-contract-server", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout=15):
            raise RuntimeError("the Gong contract server did not start within 15 s")
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)

    @property
    def regional_base_url(self) -> str:
        return self.base_url + REGION_PREFIX

    @property
    def token_url(self) -> str:
        return self.base_url + "/oauth2/generate-customer-token"

    def reset(self) -> None:
        """Forget the log, faults, counters and published late calls (between tests)."""
        with self._lock:
            self.log.clear()
            self._accepted.clear()
            self._faults.clear()
            self.published.clear()
            self.daily_used = 0

    def requests(self, path_suffix: str | None = None) -> list[LoggedRequest]:
        with self._lock:
            entries = [e for e in self.log if e.path.startswith("/v2/")]
        return [e for e in entries if path_suffix is None or e.path == path_suffix]

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        """Answer the next `times` API requests with `status` (429 storms, 5xx outages)."""
        with self._lock:
            self._faults.extend(_Fault(status, retry_after) for _ in range(times))

    def publish_late_calls(self) -> list[str]:
        """Late calls finish processing: they appear in lists from now on."""
        ids = [c.id for c in self.dataset.calls if c.late]
        with self._lock:
            self.published.update(ids)
        return ids

    def new_day(self) -> None:
        with self._lock:
            self.daily_used = 0

    def issue_refresh_token(self, scopes: frozenset[str] = ALL_SCOPES) -> str:
        token = "rt-" + secrets.token_urlsafe(24)
        with self._lock:
            self._refresh[token] = scopes
        return token

    def issue_access_token(self, scopes: frozenset[str] = ALL_SCOPES, *, region: str = "") -> str:
        token = "at-" + secrets.token_urlsafe(24)
        with self._lock:
            self._access[token] = _Token(scopes, region, time.time() + self.access_token_ttl_s)
        return token

    # -- plumbing ----------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._ready.set()
        yield

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"requestId": _request_id(), "errors": [message]}, status, headers=headers)

    def _ok(self, payload: dict[str, Any]) -> JSONResponse:
        payload = {"requestId": _request_id(), **payload}
        return JSONResponse(payload)

    async def _enter(self, request: Request, route: str) -> tuple[Any, str] | Response:
        """Log, authenticate, authorise and rate-limit one API request; the parsed body and region."""
        now = time.monotonic()
        raw_path = request.url.path
        region = REGION_PREFIX if raw_path.startswith(REGION_PREFIX + "/") else ""
        path = raw_path.removeprefix(region)
        body: Any = None
        if request.method == "POST":
            raw = await request.body()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                return self._logged(
                    now, request, path, region, "<invalid json>", None, 400, self._error(400, "Malformed JSON body")
                )
        header = request.headers.get("authorization", "")
        kind, denial = self._authenticate(header, request.method, route, path, region)
        if denial is not None:
            return self._logged(now, request, path, region, body, kind, denial.status_code, denial)
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault is not None:
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
            text = "Too many requests" if fault.status == 429 else "Unexpected error"
            return self._logged(
                now, request, path, region, body, kind, fault.status, self._error(fault.status, text, headers)
            )
        with self._lock:
            while self._accepted and now - self._accepted[0] >= 1.0:
                self._accepted.popleft()
            if self.daily_used >= self.daily_cap:
                midnight = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0)
                wait = int((midnight - datetime.now(UTC)).total_seconds()) + 1
                limited = self._error(429, "Daily API call limit reached", {"Retry-After": str(wait)})
            elif len(self._accepted) >= self.rate_limit:
                limited = self._error(429, "Too many requests", {"Retry-After": "1"})
            else:
                limited = None
                self._accepted.append(now)
                self.daily_used += 1
        if limited is not None:
            return self._logged(now, request, path, region, body, kind, 429, limited)
        self._logged(now, request, path, region, body, kind, 200, None)
        return body, region

    def _logged(
        self,
        t: float,
        request: Request,
        path: str,
        region: str,
        body: Any,
        auth: str | None,
        status: int,
        response: Response | None,
    ) -> Response:
        entry = LoggedRequest(t, request.method, path, region, dict(request.query_params), body, auth, status)
        request.state.entry = entry
        with self._lock:
            self.log.append(entry)
        return response if response is not None else Response(status_code=status)

    def _authenticate(
        self, header: str, method: str, route: str, path: str, region: str
    ) -> tuple[str | None, Response | None]:
        bad_status = 403 if path.startswith(_FORBIDDEN_ON_BAD_AUTH) else 401
        if header.startswith("Basic "):
            expected = base64.b64encode(f"{self.access_key}:{self.access_key_secret}".encode()).decode()
            if hmac.compare_digest(header.removeprefix("Basic "), expected):
                return "basic", None
            return "basic", self._error(bad_status, "Access denied")
        if header.startswith("Bearer "):
            with self._lock:
                token = self._access.get(header.removeprefix("Bearer "))
            if token is None or token.expires_at < time.time():
                return "bearer", self._error(bad_status, "Access denied")
            if token.region != region:
                # A regional tenant's token is only valid on its own host.
                return "bearer", self._error(bad_status, "Token was revoked or is not valid for this host")
            needed = _SCOPES.get((method, route))
            if needed and needed not in token.scopes:
                return "bearer", self._error(403, f"Missing required scope: {needed}")
            return "bearer", None
        return None, self._error(bad_status, "Access denied")

    def _visible(self, call: GongCall) -> bool:
        return not call.late or call.id in self.published

    def _paged(self, request: Request, body: Any, key: str, items: list[Any], method: str) -> Response:
        """Cut `items` into 100-record pages bound to the exact request by a signed cursor."""
        if method == "GET":
            cursor = request.query_params.get("cursor")
            shape: Any = {k: v for k, v in sorted(request.query_params.items()) if k != "cursor"}
        else:
            # Gong reads a POST's cursor from the body only; one in the query string is ignored.
            cursor = body.get("cursor") if isinstance(body, dict) else None
            shape = {k: v for k, v in body.items() if k != "cursor"} if isinstance(body, dict) else body
        request_key = hashlib.sha256(
            json.dumps([method, request.url.path, shape], sort_keys=True).encode()
        ).hexdigest()[:32]
        offset = 0
        if cursor is not None:
            decoded = self._open_cursor(str(cursor))
            if decoded is None:
                return self._error(400, "Invalid cursor")
            if decoded["exp"] < time.time():
                return self._error(400, "The cursor has expired")
            if decoded["q"] != request_key:
                return self._error(400, "The cursor does not match the request; all other inputs must stay identical")
            offset = int(decoded["o"])
        page = items[offset : offset + PAGE_SIZE]
        records: dict[str, Any] = {
            "totalRecords": len(items),
            "currentPageSize": len(page),
            "currentPageNumber": offset // PAGE_SIZE,
        }
        if offset + PAGE_SIZE < len(items):
            records["cursor"] = self._make_cursor(
                {"q": request_key, "o": offset + PAGE_SIZE, "n": len(items), "exp": time.time() + self.cursor_ttl_s}
            )
        return self._ok({"records": records, key: page})

    def _make_cursor(self, payload: dict[str, Any]) -> str:
        raw = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
        mac = hmac.new(self._signing_key, raw.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{raw}.{mac}"

    def _open_cursor(self, cursor: str) -> dict[str, Any] | None:
        raw, _, mac = cursor.partition(".")
        expected = hmac.new(self._signing_key, raw.encode(), hashlib.sha256).hexdigest()[:32]
        if not hmac.compare_digest(mac, expected):
            return None
        try:
            decoded = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        except ValueError:
            return None
        return decoded if isinstance(decoded, dict) else None

    def _filtered_calls(self, flt: dict[str, Any]) -> list[GongCall] | str:
        """Calls matching a Gong call filter, or the 400 message for a bad one."""
        try:
            start = _parse_dt(flt.get("fromDateTime"))
            end = _parse_dt(flt.get("toDateTime"))
        except ValueError as exc:
            return str(exc)
        ids = flt.get("callIds")
        if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
            return "callIds must be an array of strings"
        if ids is not None and len(ids) > self.max_ids:
            return f"Too many callIds: at most {self.max_ids} per request"
        hosts = flt.get("primaryUserIds")
        workspace = flt.get("workspaceId")
        chosen = []
        for call in self.dataset.calls:
            if not self._visible(call):
                continue
            moment = call.filter_time()
            if start and moment < start:
                continue
            if end and moment >= end:
                continue
            if workspace and call.meta["workspaceId"] != workspace:
                continue
            if ids is not None and call.id not in ids:
                continue
            if hosts and call.meta["primaryUserId"] not in hosts:
                continue
            chosen.append(call)
        return chosen

    # -- endpoints -------------------------------------------------------------------------------

    async def _calls(self, request: Request) -> Response:
        entered = await self._enter(request, "/v2/calls")
        if isinstance(entered, Response):
            return entered
        if request.method == "POST":
            # POST /v2/calls creates a call: a list request sent there is malformed.
            return self._error(400, "Missing required fields: clientUniqueId, actualStart, parties, direction")
        query = request.query_params
        if "fromDateTime" not in query or "toDateTime" not in query:
            return self._error(400, "fromDateTime and toDateTime are required")
        flt = {k: query[k] for k in ("fromDateTime", "toDateTime", "workspaceId") if k in query}
        chosen = self._filtered_calls(flt)
        if isinstance(chosen, str):
            return self._error(400, chosen)
        if not chosen:
            return self._error(404, "No calls found corresponding to the provided filters")
        return self._paged(request, None, "calls", [_with_junk(c.meta, i) for i, c in enumerate(chosen)], "GET")

    async def _call(self, request: Request) -> Response:
        entered = await self._enter(request, "/v2/calls/{id}")
        if isinstance(entered, Response):
            return entered
        call_id = request.path_params["id"]
        if not call_id.isdigit():
            return self._error(400, "Invalid call id")
        call = self.dataset.by_id.get(call_id)
        if call is None or not self._visible(call):
            return self._error(404, "Call not found")
        return self._ok({"call": call.meta})

    async def _calls_extensive(self, request: Request) -> Response:
        entered = await self._enter(request, "/v2/calls/extensive")
        if isinstance(entered, Response):
            return entered
        body, _ = entered
        if not isinstance(body, dict) or not isinstance(body.get("filter"), dict):
            return self._error(400, "filter is required")
        chosen = self._filtered_calls(body["filter"])
        if isinstance(chosen, str):
            return self._error(400, chosen)
        if not chosen:
            return self._error(404, "No calls found corresponding to the provided filters")
        selector = body.get("contentSelector") or {}
        if not isinstance(selector, dict):
            return self._error(400, "contentSelector must be an object")
        records = [_extensive(call, selector, index) for index, call in enumerate(chosen)]
        return self._paged(request, body, "calls", records, "POST")

    async def _transcripts(self, request: Request) -> Response:
        entered = await self._enter(request, "/v2/calls/transcript")
        if isinstance(entered, Response):
            return entered
        body, _ = entered
        flt = body.get("filter") if isinstance(body, dict) else None
        if not isinstance(flt, dict):
            return self._error(400, "filter is required")
        chosen = self._filtered_calls(flt)
        if isinstance(chosen, str):
            return self._error(400, chosen)
        if not chosen:
            return self._error(404, "No calls found corresponding to the provided filters")
        records = [{"callId": c.id, "transcript": c.transcript} for c in chosen]
        return self._paged(request, body, "callTranscripts", records, "POST")

    async def _users(self, request: Request) -> Response:
        entered = await self._enter(request, "/v2/users")
        if isinstance(entered, Response):
            return entered
        users = self.dataset.users
        if request.query_params.get("includeAvatars", "false").lower() != "true":
            users = [u for u in users if not u.get("isAvatar")]
        return self._paged(request, None, "users", [_with_junk(u, i) for i, u in enumerate(users)], "GET")

    async def _user(self, request: Request) -> Response:
        entered = await self._enter(request, "/v2/users/{id}")
        if isinstance(entered, Response):
            return entered
        for user in self.dataset.users:
            if user["id"] == request.path_params["id"]:
                return self._ok({"user": user})
        return self._error(404, "User not found")

    async def _users_extensive(self, request: Request) -> Response:
        entered = await self._enter(request, "/v2/users/extensive")
        if isinstance(entered, Response):
            return entered
        body, _ = entered
        flt = body.get("filter") if isinstance(body, dict) else None
        if not isinstance(flt, dict):
            return self._error(400, "filter is required")
        ids = flt.get("userIds")
        if isinstance(ids, list) and len(ids) > self.max_ids:
            return self._error(400, f"Too many userIds: at most {self.max_ids} per request")
        users = [u for u in self.dataset.users if ids is None or u["id"] in ids]
        if not users:
            return self._error(404, "No users found corresponding to the provided filters")
        return self._paged(request, body, "users", users, "POST")

    async def _workspaces(self, request: Request) -> Response:
        entered = await self._enter(request, "/v2/workspaces")
        if isinstance(entered, Response):
            return entered
        return self._ok({"workspaces": self.dataset.workspaces})

    async def _oauth_token(self, request: Request) -> Response:
        """Gong's token endpoint: client credentials as Basic; parameters in the query or the form."""
        form = dict(await request.form())
        params = {**dict(request.query_params), **{k: str(v) for k, v in form.items()}}
        header = request.headers.get("authorization", "")
        expected = base64.b64encode(f"{self.oauth_client_id}:{self.oauth_client_secret}".encode()).decode()
        self._logged(
            time.monotonic(),
            request,
            "/oauth2/generate-customer-token",
            "",
            {"grant_type": params.get("grant_type")},
            "client",
            0,
            Response(),
        )
        if not hmac.compare_digest(header.removeprefix("Basic "), expected):
            return JSONResponse({"error": "invalid_client"}, 401)
        if params.get("grant_type") != "refresh_token":
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        presented = params.get("refresh_token", "")
        with self._lock:
            scopes = self._refresh.pop(presented, None)
            if scopes is None:
                reused = presented in self._spent_refresh
                return JSONResponse(
                    {
                        "error": "invalid_grant",
                        "error_description": "refresh token already used" if reused else "unknown refresh token",
                    },
                    400,
                )
            self._spent_refresh.add(presented)
            new_refresh = "rt-" + secrets.token_urlsafe(24)
            self._refresh[new_refresh] = scopes
            access = "at-" + secrets.token_urlsafe(24)
            self._access[access] = _Token(scopes, REGION_PREFIX, time.time() + self.access_token_ttl_s)
        return JSONResponse(
            {
                "access_token": access,
                "refresh_token": new_refresh,
                "expires_in": self.access_token_ttl_s,
                "scope": " ".join(sorted(scopes)),
                "token_type": "bearer",
                "api_base_url_for_customer": self.regional_base_url,
            }
        )


def _final_status(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Record the status the endpoint finally answered with in the request's log entry."""

    async def endpoint(request: Request) -> Response:
        response = await handler(request)
        entry = getattr(request.state, "entry", None)
        if isinstance(entry, LoggedRequest):
            entry.status = response.status_code
        return response

    return endpoint


def _request_id() -> str:
    return secrets.token_hex(8)


def _parse_dt(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str) or not (value.endswith("Z") or "+" in value[10:] or "-" in value[10:]):
        raise ValueError(f"Invalid date-time {value!r}: use ISO-8601 with Z or an offset")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"Invalid date-time {value!r}") from None


def _with_junk(record: dict[str, Any], index: int) -> dict[str, Any]:
    # Gong adds fields without notice; clients must ignore what they do not know.
    return {**record, "x_addedLater": {"v": index}} if index % 7 == 3 else record


def _extensive(call: GongCall, selector: dict[str, Any], index: int) -> dict[str, Any]:
    exposed = selector.get("exposedFields") or {}
    record: dict[str, Any] = {"metaData": _with_junk(call.meta, index)}
    context = selector.get("context", "None")
    if context in ("Basic", "Extended"):
        objects = []
        for system in call.context:
            objs = [{k: v for k, v in o.items() if context == "Extended" or k != "fields"} for o in system["objects"]]
            objects.append({"system": system["system"], "objects": objs})
        record["context"] = objects
    if exposed.get("parties"):
        record["parties"] = call.parties
    content_sel = exposed.get("content") or {}
    content = {k: v for k, v in call.content.items() if content_sel.get(k)}
    if content:
        record["content"] = content
    interaction_sel = exposed.get("interaction") or {}
    interaction = {k: v for k, v in call.interaction.items() if interaction_sel.get(k)}
    if interaction_sel.get("personInteractionStats"):
        interaction["interactionStats"] = call.interaction["interactionStats"]
    if interaction:
        record["interaction"] = interaction
    if exposed.get("media"):
        record["media"] = {"audioUrl": f"https://media.example/{call.id}.mp3", "videoUrl": None}
    return record
