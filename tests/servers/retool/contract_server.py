"""A local HTTP server that follows Retool's REST API v2 contract, over a seeded organisation.

It is the closest real thing to Retool that runs here: a real HTTP server on 127.0.0.1, reached
through a real socket by the real httpx client. It follows Part B7 of the contract notes
(/work/shared/API-CONTRACTS-gong-retool.md): bearer tokens mapped to scopes (401 bad token, 403
missing scope), the `{success, data}` envelope with the three list fields on every list,
`limit` + `next_token` only on /users and /resources (everything without `limit`), JSON Patch on
PATCH, 409 on duplicate folder names, 204 on deletes, DELETE /users only disabling, revoke of a
missing grant answering 404, ID shapes validated, a per-window request limit answering 429 (every
other 429 without Retry-After), and the workflow webhook with its own key and an optional
synchronous Response block.

Where the contract marks a behaviour as unverified ([?]) the choice made here is named in a
comment, so a test relying on it is easy to find. Time for the rate-limit window comes from an
injectable clock, so tests can share a virtual clock with the client's limiter and check
throttling deterministically from the request log.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from servers.retool.contract_org import ACCESS_RANK, STAMP, Org
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

USER_ID = re.compile(r"^user_[0-9a-zA-Z]+$")
FOLDER_ID = re.compile(r"^(app|workflow|resource|agent|library)_[0-9]+$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
USER_PATCH_PATHS = {"/first_name", "/last_name", "/active", "/metadata", "/user_type"}
FOLDER_PATCH_PATHS = {"/name", "/parent_folder_id"}
LIST_OBJECT_TYPES = {"folder", "app", "resource", "resource_configuration"}
GRANT_OBJECT_TYPES = {"folder", "app", "screen", "resource", "resource_configuration"}
ACCESS_LIST_TYPES = {"app", "folder", "resource", "workflow", "agent"}


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class RequestRecord:
    """One request as the server saw it (no credentials: only which token name was used)."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    at: float
    token: str | None
    retry_after: str | None


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()


class ContractServer:
    """Serves the contract over a real socket on 127.0.0.1 in a background thread."""

    def __init__(
        self,
        org: Org | None = None,
        *,
        tokens: dict[str, set[str]] | None = None,
        rate_limit: int = 300,
        window_s: float = 60.0,
        clock: Any = None,
    ) -> None:
        self.org = org or Org()
        # token value -> scopes; the log names tokens by a short label, never by value.
        self.tokens = tokens or {}
        self.rate_limit = rate_limit
        self.window_s = window_s
        self.clock = clock or MonotonicClock()
        self.log: list[RequestRecord] = []
        self.fail_next: list[int] = []  # statuses to answer before handling (5xx injection)
        self._lock = threading.Lock()
        self._window: tuple[int, int] = (-1, 0)
        self._limited = 0
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = self._build_app()

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self._sock is not None
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> ContractServer:
        # Binding here means the port is known and accepting (into the backlog) before uvicorn's
        # loop runs, so nobody has to poll for readiness.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(512)
        self._sock = sock
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="off", access_log=False, timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="retool-contract", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()

    def reset_window(self) -> None:
        with self._lock:
            self._window = (-1, 0)
            self._limited = 0

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()

    def records(self, path_prefix: str = "") -> list[RequestRecord]:
        with self._lock:
            return [r for r in self.log if r.path.startswith(path_prefix)]

    # -- plumbing ----------------------------------------------------------------------------
    def _build_app(self) -> Starlette:
        v2 = "/api/v2"
        routes = [
            Route("/api/checkHealth", self._health, methods=["GET"]),
            Route(f"{v2}/apps", self._list_apps, methods=["GET"]),
            Route(f"{v2}/apps/{{app_id}}", self._get_app, methods=["GET"]),
            Route(f"{v2}/folders", self._folders, methods=["GET", "POST"]),
            Route(f"{v2}/folders/{{folder_id}}", self._folder, methods=["GET", "PATCH", "DELETE"]),
            Route(f"{v2}/users", self._users, methods=["GET", "POST"]),
            Route(f"{v2}/users/{{user_id}}", self._user, methods=["GET", "PATCH", "DELETE"]),
            Route(f"{v2}/user_invites", self._invites, methods=["GET", "POST"]),
            Route(f"{v2}/groups", self._list_groups, methods=["GET"]),
            Route(f"{v2}/groups/{{group_id}}", self._get_group, methods=["GET"]),
            Route(f"{v2}/groups/{{group_id}}/members", self._add_members, methods=["POST"]),
            Route(f"{v2}/groups/{{group_id}}/members/{{user_sid}}", self._remove_member, methods=["DELETE"]),
            Route(
                f"{v2}/permissions/accessList/{{object_type}}/{{object_id}}",
                self._access_list,
                methods=["GET"],
            ),
            Route(f"{v2}/permissions/listObjects", self._list_objects, methods=["POST"]),
            Route(f"{v2}/permissions/grant", self._grant, methods=["POST"]),
            Route(f"{v2}/permissions/revoke", self._revoke, methods=["POST"]),
            Route(f"{v2}/resources", self._list_resources, methods=["GET"]),
            Route(f"{v2}/resources/{{resource_id}}", self._get_resource, methods=["GET"]),
            Route(f"{v2}/environments", self._environments, methods=["GET"]),
            Route(f"{v2}/workflows", self._list_workflows, methods=["GET"]),
            Route(f"{v2}/workflows/{{workflow_id}}", self._get_workflow, methods=["GET"]),
            Route("/v1/workflows/{workflow_id}/startTrigger", self._start_trigger, methods=["POST"]),
        ]
        return Starlette(routes=routes)

    def _record(self, request: Request, status: int, token: str | None, retry_after: str | None) -> RequestRecord:
        query = {k: ("***" if k == "workflowApiKey" else v) for k, v in request.query_params.items()}
        rec = RequestRecord(request.method, request.url.path, query, status, self.clock.now(), token, retry_after)
        with self._lock:
            self.log.append(rec)
        return rec

    def _throttle(self) -> None:
        now = self.clock.now()
        window = math.floor(now / self.window_s)
        with self._lock:
            current, count = self._window
            if window != current:
                current, count = window, 0
            if count >= self.rate_limit:
                self._window = (current, count)
                self._limited += 1
                headers = {}
                # [?] Retool does not promise Retry-After: send it on every other 429 only.
                if self._limited % 2 == 1:
                    headers["Retry-After"] = str(max(1, math.ceil((window + 1) * self.window_s - now)))
                raise HttpError(429, "Rate limit exceeded", headers)
            self._window = (current, count + 1)

    def _auth(self, request: Request, scope: str) -> str:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            raise HttpError(401, "Unauthorized: missing bearer token")
        token = header.removeprefix("Bearer ")
        scopes = self.tokens.get(token)
        if scopes is None:
            raise HttpError(401, "Unauthorized: invalid API token")
        needed = {scope}
        if scope.endswith(":read"):
            # Write implies read.
            needed.add(scope.removesuffix(":read") + ":write")
        if not needed & scopes:
            raise HttpError(403, f"API token is missing a required scope: {scope}")
        return token

    async def _handle(self, request: Request, scope: str, body: Callable[[str], Any]) -> Response:
        token_label: str | None = None
        retry_after: str | None = None
        try:
            self._throttle()
            token = self._auth(request, scope)
            # The log says which token was used without holding any of its value.
            token_label = hashlib.sha256(token.encode()).hexdigest()[:8]
            with self._lock:
                injected = self.fail_next.pop(0) if self.fail_next else None
            if injected is not None:
                raise HttpError(injected, "Internal server error")
            result = body(token)
            response = result if isinstance(result, Response) else JSONResponse(result)
        except HttpError as err:
            retry_after = err.headers.get("Retry-After")
            response = JSONResponse(
                {"success": False, "message": err.message}, status_code=err.status, headers=err.headers
            )
        self._record(request, response.status_code, token_label, retry_after)
        return response

    @staticmethod
    def _ok(data: Any) -> dict[str, Any]:
        return {"success": True, "data": data}

    @staticmethod
    def _list(items: list[Any], *, total: int | None = None, next_token: str | None = None) -> dict[str, Any]:
        return {
            "success": True,
            "data": items,
            "total_count": len(items) if total is None else total,
            "next_token": next_token,
            "has_more": next_token is not None,
        }

    @staticmethod
    async def _json(request: Request) -> dict[str, Any]:
        try:
            payload = json.loads(await request.body() or b"null")
        except json.JSONDecodeError as err:
            raise HttpError(400, "Request body is not valid JSON") from err
        if not isinstance(payload, dict):
            raise HttpError(400, "Request body must be a JSON object")
        return payload

    def _page(self, request: Request, items: list[Any]) -> dict[str, Any]:
        """limit + next_token paging: the token is honoured only with limit; no limit -> everything."""
        raw_limit = request.query_params.get("limit")
        if raw_limit is None:
            return self._list(items)
        try:
            limit = int(raw_limit)
        except ValueError as err:
            raise HttpError(400, "limit must be an integer") from err
        if not 1 <= limit <= 100:
            raise HttpError(400, "limit must be between 1 and 100")
        offset = 0
        raw_token = request.query_params.get("next_token")
        if raw_token:
            try:
                offset = int(json.loads(base64.urlsafe_b64decode(raw_token.encode()))["o"])
            except (ValueError, KeyError, TypeError) as err:
                raise HttpError(400, "Invalid next_token") from err
        chunk = items[offset : offset + limit]
        nxt = offset + limit
        token = base64.urlsafe_b64encode(json.dumps({"o": nxt}).encode()).decode() if nxt < len(items) else None
        return self._list(chunk, total=len(items), next_token=token)

    # -- endpoints ---------------------------------------------------------------------------
    async def _health(self, request: Request) -> Response:
        self._record(request, 200, None, None)
        return JSONResponse({"version": "3.334.0", "status": "HEALTHY"})

    async def _list_apps(self, request: Request) -> Response:
        return await self._handle(request, "apps:read", lambda _t: self._list(list(self.org.apps.values())))

    async def _get_app(self, request: Request) -> Response:
        app_id = request.path_params["app_id"]

        def body(_t: str) -> Any:
            if not UUID_RE.match(app_id):
                raise HttpError(400, "Invalid app id: expected a UUID")
            app = self.org.apps.get(app_id)
            if app is None:
                raise HttpError(404, "App not found")
            return self._ok(app)

        return await self._handle(request, "apps:read", body)

    async def _folders(self, request: Request) -> Response:
        if request.method == "GET":
            # /folders always returns everything, whatever the query says.
            return await self._handle(request, "folders:read", lambda _t: self._list(list(self.org.folders.values())))
        payload = await self._json(request)

        def create(_t: str) -> Any:
            name, ftype, parent = (
                payload.get("name"),
                payload.get("folder_type"),
                payload.get("parent_folder_id"),
            )
            if not isinstance(name, str) or not name.strip():
                raise HttpError(400, "name is required")
            if ftype not in {"app", "workflow", "resource", "agent", "library"}:
                raise HttpError(400, "folder_type must be one of app, workflow, resource, agent, library")
            if parent is None:
                roots = [
                    f["id"] for f in self.org.folders.values() if f["folder_type"] == ftype and f["is_system_folder"]
                ]
                parent = roots[0] if roots else None
            elif parent not in self.org.folders:
                raise HttpError(404, "Parent folder not found")
            elif self.org.folders[parent]["folder_type"] != ftype:
                raise HttpError(422, "Parent folder has a different folder_type")
            self._check_duplicate_folder(name, parent, ftype)
            fid = self.org.new_folder_id(ftype)
            folder = {
                "id": fid,
                "legacy_id": int(fid.split("_")[1]),
                "name": name,
                "parent_folder_id": parent,
                "is_system_folder": False,
                "folder_type": ftype,
                "created_at": STAMP,
                "updated_at": STAMP,
            }
            self.org.folders[fid] = folder
            return self._ok(folder)

        return await self._handle(request, "folders:write", create)

    def _check_duplicate_folder(self, name: str, parent: str | None, ftype: str, skip: str | None = None) -> None:
        for f in self.org.folders.values():
            if (
                f["id"] != skip
                and f["name"].lower() == name.lower()
                and f["parent_folder_id"] == parent
                and f["folder_type"] == ftype
            ):
                raise HttpError(409, f"A folder named {name!r} already exists in this folder")

    async def _folder(self, request: Request) -> Response:
        fid = request.path_params["folder_id"]
        scope = "folders:read" if request.method == "GET" else "folders:write"
        payload = await self._json(request) if request.method == "PATCH" else {}

        def body(_t: str) -> Any:
            if not FOLDER_ID.match(fid):
                raise HttpError(400, "Invalid folder id: expected e.g. app_12")
            folder = self.org.folders.get(fid)
            if folder is None:
                raise HttpError(404, "Folder not found")
            if request.method == "GET":
                return self._ok(folder)
            if request.method == "DELETE":
                del self.org.folders[fid]
                return Response(status_code=204)
            ops = _operations(payload, FOLDER_PATCH_PATHS)
            updated = dict(folder)
            for op in ops:
                key = op["path"][1:]
                updated[key] = None if op["op"] == "remove" else op["value"]
            self._check_duplicate_folder(updated["name"], updated["parent_folder_id"], folder["folder_type"], skip=fid)
            self.org.folders[fid] = updated
            return self._ok(updated)

        return await self._handle(request, scope, body)

    async def _users(self, request: Request) -> Response:
        if request.method == "GET":
            q = request.query_params

            def listing(_t: str) -> Any:
                users = list(self.org.users.values())
                # [?] Filters match whole values, case-insensitively.
                for key in ("email", "first_name", "last_name"):
                    if q.get(key):
                        users = [u for u in users if str(u[key]).lower() == q[key].lower()]
                return self._page(request, users)

            return await self._handle(request, "users:read", listing)
        payload = await self._json(request)

        def create(_t: str) -> Any:
            for key in ("email", "first_name", "last_name"):
                if not isinstance(payload.get(key), str) or not payload[key]:
                    raise HttpError(400, f"{key} is required")
            if not EMAIL_RE.match(payload["email"]):
                raise HttpError(400, "email is not a valid address")
            if any(u["email"].lower() == payload["email"].lower() for u in self.org.users.values()):
                raise HttpError(409, "A user with this email already exists")
            uid = f"user_{uuid.uuid4().hex[:12]}"
            user = {
                "id": uid,
                "legacy_id": 9000 + len(self.org.users),
                "email": payload["email"],
                "active": payload.get("active", True),
                "created_at": STAMP,
                "last_active": None,
                "first_name": payload["first_name"],
                "last_name": payload["last_name"],
                "metadata": payload.get("metadata", {}),
                "is_admin": False,
                "user_type": payload.get("user_type", "default"),
                "two_factor_auth_enabled": False,
            }
            self.org.users[uid] = user
            return self._ok(user)

        return await self._handle(request, "users:write", create)

    async def _user(self, request: Request) -> Response:
        uid = request.path_params["user_id"]
        scope = "users:read" if request.method == "GET" else "users:write"
        payload = await self._json(request) if request.method == "PATCH" else {}

        def body(_t: str) -> Any:
            if not USER_ID.match(uid):
                raise HttpError(400, "Invalid user id: expected user_…")
            user = self.org.users.get(uid)
            if user is None:
                raise HttpError(404, "User not found")
            if request.method == "GET":
                data = dict(user)
                if request.query_params.get("includeGroups") == "true":
                    data["groups"] = [{"id": g["id"], "name": g["name"]} for g in self.org.groups_of(uid)]
                return self._ok(data)
            if request.method == "DELETE":
                # DELETE only disables the user.
                user["active"] = False
                return Response(status_code=204)
            ops = _operations(payload, USER_PATCH_PATHS | {"/email"})
            updated = dict(user)
            for op in ops:
                if op["path"] == "/email":
                    raise HttpError(400, "email cannot be changed")
                key = op["path"][1:]
                if key == "user_type" and op.get("value") not in {"default", "mobile", "embed"}:
                    raise HttpError(400, "user_type must be default, mobile or embed")
                if key == "active" and not isinstance(op.get("value"), bool):
                    raise HttpError(400, "active must be a boolean")
                updated[key] = None if op["op"] == "remove" else op["value"]
            self.org.users[uid] = updated
            return self._ok(updated)

        return await self._handle(request, scope, body)

    async def _invites(self, request: Request) -> Response:
        if request.method == "GET":
            return await self._handle(request, "users:read", lambda _t: self._list(self.org.invites))
        payload = await self._json(request)

        def create(_t: str) -> Any:
            email = payload.get("email")
            if not isinstance(email, str) or not EMAIL_RE.match(email):
                raise HttpError(400, "email is required and must be a valid address")
            # [?] inviting an existing member answers 409.
            if any(u["email"].lower() == email.lower() for u in self.org.users.values()):
                raise HttpError(409, "A user with this email is already a member")
            groups = payload.get("defaultGroupIds", [])
            if not isinstance(groups, list) or any(g not in self.org.groups for g in groups):
                raise HttpError(400, "defaultGroupIds must list existing group ids")
            invite = {
                "id": len(self.org.invites) + 1,
                "legacy_id": len(self.org.invites) + 1,
                "invited_by": "user_0000a00000",
                "invited_email": email,
                "expires_at": "2026-11-28T09:30:00.000Z",
                "claimed_by": None,
                "claimed_at": None,
                "user_type": "default",
                "metadata": payload.get("metadata", {}),
                "created_at": STAMP,
                "invite_link": f"https://retool.example/invite/{uuid.uuid4().hex}",
            }
            self.org.invites.append(invite)
            return self._ok(invite)

        return await self._handle(request, "users:write", create)

    def _group(self, raw: str) -> dict[str, Any]:
        if not raw.isdigit():
            raise HttpError(400, "Invalid group id: expected a number")
        group = self.org.groups.get(int(raw))
        if group is None:
            raise HttpError(404, "Group not found")
        return group

    async def _list_groups(self, request: Request) -> Response:
        return await self._handle(request, "groups:read", lambda _t: self._list(list(self.org.groups.values())))

    async def _get_group(self, request: Request) -> Response:
        raw = request.path_params["group_id"]

        def body(_t: str) -> Any:
            group = dict(self._group(raw))
            if request.query_params.get("excludeDisabledUsers") == "true":
                group["members"] = [m for m in group["members"] if self.org.users[m["id"]]["active"]]
            return self._ok(group)

        return await self._handle(request, "groups:read", body)

    async def _add_members(self, request: Request) -> Response:
        raw = request.path_params["group_id"]
        payload = await self._json(request)

        def body(_t: str) -> Any:
            group = self._group(raw)
            members = payload.get("members")
            if not isinstance(members, list) or not members:
                raise HttpError(400, "members must be a non-empty list of {id, is_group_admin}")
            for m in members:
                if not isinstance(m, dict) or not isinstance(m.get("id"), str) or not USER_ID.match(m["id"]):
                    raise HttpError(400, "each member needs an id like user_…")
                if m["id"] not in self.org.users:
                    raise HttpError(404, f"User {m['id']} not found")
            for m in members:
                admin = bool(m.get("is_group_admin", False))
                existing = next((x for x in group["members"] if x["id"] == m["id"]), None)
                if existing is not None:
                    existing["is_group_admin"] = admin
                else:
                    group["members"].append(
                        {"id": m["id"], "email": self.org.users[m["id"]]["email"], "is_group_admin": admin}
                    )
            return self._ok(group)

        return await self._handle(request, "groups:write", body)

    async def _remove_member(self, request: Request) -> Response:
        raw, sid = request.path_params["group_id"], request.path_params["user_sid"]

        def body(_t: str) -> Any:
            group = self._group(raw)
            if not USER_ID.match(sid):
                raise HttpError(400, "Invalid user id: expected user_…")
            before = len(group["members"])
            group["members"] = [m for m in group["members"] if m["id"] != sid]
            if len(group["members"]) == before:
                # [?] removing a non-member answers 404.
                raise HttpError(404, "User is not a member of this group")
            return self._ok(group)

        return await self._handle(request, "groups:write", body)

    # -- permissions ---------------------------------------------------------------------------
    def _subject(self, raw: Any) -> tuple[str, str]:
        if not isinstance(raw, dict) or raw.get("type") not in {"user", "group"}:
            raise HttpError(400, "subject must be {type: user|group, id}")
        sid = raw.get("id")
        if raw["type"] == "group":
            if not isinstance(sid, int) or isinstance(sid, bool):
                raise HttpError(400, "a group subject id must be a number")
            if sid not in self.org.groups:
                raise HttpError(404, "Group not found")
            return "group", str(sid)
        if not isinstance(sid, str) or not USER_ID.match(sid):
            raise HttpError(400, "a user subject id must look like user_…")
        if sid not in self.org.users:
            raise HttpError(404, "User not found")
        return "user", sid

    def _object(self, raw: Any) -> tuple[str, str]:
        if not isinstance(raw, dict) or raw.get("type") not in GRANT_OBJECT_TYPES:
            raise HttpError(400, "object must be {type: folder|app|screen|resource|resource_configuration, id}")
        otype, oid = raw["type"], raw.get("id")
        if not isinstance(oid, str):
            raise HttpError(400, "object id must be a string")
        if otype == "folder" and not FOLDER_ID.match(oid):
            raise HttpError(400, "Invalid folder id")
        if otype == "app" and not UUID_RE.match(oid):
            raise HttpError(400, "Invalid app id: expected a UUID")
        if otype == "screen" and not isinstance(raw.get("appId"), str):
            raise HttpError(400, "a screen object also needs appId")
        if otype in {"app", "folder", "resource"} and not self.org.object_exists(otype, oid):
            raise HttpError(404, f"{otype} not found")
        return otype, oid

    def _objects_for(self, stype: str, sid: str, otype: str, inherited: bool) -> list[dict[str, Any]]:
        found: dict[str, str] = {}
        for (gst, gsid, got, goid), level in self.org.grants.items():
            if gst == stype and gsid == sid and got == otype:
                found[goid] = level
        if inherited and otype in {"app", "resource"}:
            for (gst, gsid, got, goid), level in self.org.grants.items():
                if gst == stype and gsid == sid and got == "folder":
                    table = self.org.apps if otype == "app" else self.org.resources
                    for oid, obj in table.items():
                        if obj.get("folder_id") == goid and ACCESS_RANK[level] > ACCESS_RANK.get(
                            found.get(oid, "none"), 0
                        ):
                            found[oid] = level
        return [{"type": otype, "id": oid, "access_level": lvl} for oid, lvl in sorted(found.items())]

    async def _list_objects(self, request: Request) -> Response:
        payload = await self._json(request)

        def body(_t: str) -> Any:
            stype, sid = self._subject(payload.get("subject"))
            otype = payload.get("object_type")
            if otype not in LIST_OBJECT_TYPES:
                raise HttpError(400, "object_type must be one of folder, app, resource, resource_configuration")
            return self._list(self._objects_for(stype, sid, otype, bool(payload.get("include_inherited_access"))))

        return await self._handle(request, "permissions:all:read", body)

    async def _grant(self, request: Request) -> Response:
        payload = await self._json(request)

        def body(_t: str) -> Any:
            stype, sid = self._subject(payload.get("subject"))
            otype, oid = self._object(payload.get("object"))
            level = payload.get("access_level")
            if level not in {"own", "edit", "use"}:
                raise HttpError(400, "access_level must be own, edit or use")
            self.org.grants[(stype, sid, otype, oid)] = level
            return self._list(self._objects_for(stype, sid, otype, False))

        return await self._handle(request, "permissions:all:write", body)

    async def _revoke(self, request: Request) -> Response:
        payload = await self._json(request)

        def body(_t: str) -> Any:
            stype, sid = self._subject(payload.get("subject"))
            otype, oid = self._object(payload.get("object"))
            if self.org.grants.pop((stype, sid, otype, oid), None) is None:
                raise HttpError(404, "No such permission grant")
            return self._list(self._objects_for(stype, sid, otype, False))

        return await self._handle(request, "permissions:all:write", body)

    async def _access_list(self, request: Request) -> Response:
        otype, oid = request.path_params["object_type"], request.path_params["object_id"]

        def body(_t: str) -> Any:
            if otype not in ACCESS_LIST_TYPES:
                raise HttpError(400, "objectType must be one of app, folder, resource, workflow, agent")
            if otype in {"app", "workflow"} and not UUID_RE.match(oid):
                raise HttpError(400, f"Invalid {otype} id: expected a UUID")
            if otype == "folder" and not FOLDER_ID.match(oid):
                raise HttpError(400, "Invalid folder id")
            if not self.org.object_exists(otype, oid):
                raise HttpError(404, f"{otype} not found")
            return self._ok(self._compute_access(otype, oid))

        return await self._handle(request, "permissions:all:read", body)

    def _compute_access(self, otype: str, oid: str) -> dict[str, Any]:
        universal_key = {
            "app": "universal_app_access",
            "folder": "universal_app_access",
            "resource": "universal_resource_access",
            "workflow": "universal_workflow_access",
        }.get(otype)
        parent = self.org.parent_folder(otype, oid)

        def direct_level(stype: str, sid: str) -> str:
            return self.org.grants.get((stype, sid, otype, oid), "none")

        def inherited_level(stype: str, sid: str) -> str:
            return "none" if parent is None else self.org.grants.get((stype, sid, "folder", parent), "none")

        group_entries: list[dict[str, Any]] = []
        group_level: dict[int, str] = {}
        group_universal: dict[int, bool] = {}
        for gid, g in self.org.groups.items():
            d, i = direct_level("group", str(gid)), inherited_level("group", str(gid))
            u = g.get(universal_key, "none") if universal_key else "none"
            best = max((d, i, u), key=lambda lvl: ACCESS_RANK[lvl])
            if best == "none":
                continue
            group_level[gid] = best
            group_universal[gid] = u != "none" and ACCESS_RANK[u] >= max(ACCESS_RANK[d], ACCESS_RANK[i])
            group_entries.append(
                {
                    "subject": {"id": gid, "type": "group"},
                    "accessLevel": best,
                    "sources": {
                        "direct": d != "none",
                        "universal": u != "none",
                        "groups": [],
                        "inherited": i != "none",
                    },
                }
            )
        user_entries: list[dict[str, Any]] = []
        for uid in self.org.users:
            d, i = direct_level("user", uid), inherited_level("user", uid)
            via = [g["id"] for g in self.org.groups_of(uid) if g["id"] in group_level]
            via_level = max((group_level[g] for g in via), key=lambda lvl: ACCESS_RANK[lvl], default="none")
            best = max((d, i, via_level), key=lambda lvl: ACCESS_RANK[lvl])
            if best == "none":
                continue
            user_entries.append(
                {
                    "subject": {"id": uid, "type": "user"},
                    "accessLevel": best,
                    "sources": {
                        "direct": d != "none",
                        "universal": any(group_universal.get(g, False) for g in via),
                        "groups": sorted(via),
                        "inherited": i != "none",
                    },
                }
            )
        return {"user": user_entries, "group": group_entries, "userInvite": []}

    # -- resources, environments, workflows ----------------------------------------------------
    @staticmethod
    def _public_resource(r: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in r.items() if k != "options"}

    async def _list_resources(self, request: Request) -> Response:
        rtype = request.query_params.get("resource_type")

        def body(_t: str) -> Any:
            items = [
                self._public_resource(r) for r in self.org.resources.values() if rtype is None or r["type"] == rtype
            ]
            return self._page(request, items)

        return await self._handle(request, "resources:read", body)

    async def _get_resource(self, request: Request) -> Response:
        rid = request.path_params["resource_id"]

        def body(_t: str) -> Any:
            res = self.org.resources.get(rid) or next(
                (r for r in self.org.resources.values() if r["display_name"] == rid), None
            )
            if res is None:
                raise HttpError(404, "Resource not found")
            # [?] the single-resource read returns some connection options; the client must drop them.
            return self._ok(res)

        return await self._handle(request, "resources:read", body)

    async def _environments(self, request: Request) -> Response:
        return await self._handle(request, "environments:read", lambda _t: self._list(self.org.environments))

    async def _list_workflows(self, request: Request) -> Response:
        return await self._handle(request, "workflows:read", lambda _t: self._list(list(self.org.workflows.values())))

    async def _get_workflow(self, request: Request) -> Response:
        wid = request.path_params["workflow_id"]

        def body(_t: str) -> Any:
            if not UUID_RE.match(wid):
                raise HttpError(400, "Invalid workflow id: expected a UUID")
            wf = self.org.workflows.get(wid)
            if wf is None:
                raise HttpError(404, "Workflow not found")
            return self._ok(wf)

        return await self._handle(request, "workflows:read", body)

    async def _start_trigger(self, request: Request) -> Response:
        wid = request.path_params["workflow_id"]
        hook = self.org.hooks.get(wid)
        status, retry_after = 200, None
        pending: RequestRecord | None = None
        try:
            self._throttle()
            key = request.headers.get("x-workflow-api-key") or request.query_params.get("workflowApiKey")
            if hook is None or not hook.published or not hook.trigger_enabled:
                # [?] unknown, unpublished and trigger-disabled workflows all answer 404.
                raise HttpError(404, "Workflow not found or not deployed")
            if key != hook.key:
                raise HttpError(401, "Invalid workflow API key")
            if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
                raise HttpError(400, "Content-Type must be application/json")
            raw = await request.body()
            try:
                data = json.loads(raw) if raw else None
            except json.JSONDecodeError as err:
                raise HttpError(400, "Body must be JSON") from err
            run_id = str(uuid.uuid4())
            hook.runs.append({"id": run_id, "data": data})
            if hook.response_status is None:
                # [?] the immediate answer's body is undocumented; this one names the run.
                response: Response = JSONResponse({"workflow_run_id": run_id, "status": "running"})
            else:
                delay = min(hook.response_delay_s, hook.block_timeout_s)
                if delay:
                    # Logged on arrival (status 0 until answered): the caller may stop waiting first.
                    pending = self._record(request, 0, None, None)
                    await asyncio.sleep(delay)
                if hook.response_delay_s > hook.block_timeout_s:
                    response = JSONResponse({"success": False, "message": "Response block timed out"}, status_code=504)
                else:
                    response = JSONResponse(hook.response_body, status_code=hook.response_status)
            status = response.status_code
        except HttpError as err:
            status, retry_after = err.status, err.headers.get("Retry-After")
            response = JSONResponse(
                {"success": False, "message": err.message}, status_code=err.status, headers=err.headers
            )
        if pending is not None:
            pending.status = status
        else:
            self._record(request, status, None, retry_after)
        return response


def _operations(payload: dict[str, Any], allowed: set[str]) -> list[dict[str, Any]]:
    """Validate a JSON Patch body: {operations: [{op, path, value}]}; plain objects are refused."""
    ops = payload.get("operations")
    if not isinstance(ops, list) or not ops:
        raise HttpError(400, "Body must be a JSON Patch: {operations: [{op, path, value}]}")
    for op in ops:
        if not isinstance(op, dict) or op.get("op") not in {"add", "remove", "replace"}:
            raise HttpError(400, "each operation needs op add, remove or replace")
        if op.get("path") not in allowed:
            raise HttpError(422, f"path {op.get('path')!r} cannot be patched")
        if op["op"] != "remove" and "value" not in op:
            raise HttpError(400, "add and replace need a value")
    return ops
