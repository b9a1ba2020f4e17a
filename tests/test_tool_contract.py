"""Suite-wide rules every tool of every server obeys (STYLE.md rules 2, 3 and 7).

Each server is built on its embedded defaults (building must not contact its system); every
tool must state its role and all four annotations, have a description, and typed, described
parameters; its schemas are snapshotted, one file per tool (tests/snapshots/<server>/<tool>.json),
so a diff shows which tool changed. A missing or left-over snapshot fails; `make snapshots`
regenerates them all after an intended change (SOPHIA_UPDATE_SNAPSHOTS=1 on this file's tests).
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from sophia_shared.cli import BUILDERS
from sophia_shared.server import Principal, Role, SophiaServer
from sophia_shared.testing import connect, error_code, structured
from sophia_shared.tool_meta import ToolMeta

SERVERS = ["memory", "snowflake", "docker", "pulumi", "gong", "retool"]
SNAPSHOTS = Path(__file__).parent / "snapshots"
ROLES = {"viewer", "developer", "devops", "admin"}


def _server(name: str) -> SophiaServer:
    importlib.import_module(f"sophia_{name}.__main__")
    server = BUILDERS[name]()
    assert isinstance(server, SophiaServer), f"sophia-{name} must build a SophiaServer"
    return server


async def _tools(server: SophiaServer) -> list[Any]:
    with anyio.fail_after(10):
        return await server.list_tools()


@pytest.mark.parametrize("name", SERVERS)
def test_every_tool_states_role_and_all_four_annotations(name: str) -> None:
    server = _server(name)
    tools = anyio.run(_tools, server)
    assert tools, f"sophia-{name} lists no tools"
    for tool in tools:
        assert tool.name.startswith(f"{name}_"), f"{tool.name}: tool names carry their server's prefix"
        assert tool.description and len(tool.description) > 20, f"{tool.name}: needs a real description"
        ann = tool.annotations
        assert ann is not None, f"{tool.name}: no annotations"
        for hint in ("read_only_hint", "destructive_hint", "idempotent_hint", "open_world_hint"):
            assert isinstance(getattr(ann, hint), bool), f"{tool.name}: {hint} unset"
        role = (tool.meta or {}).get("sophia", {}).get("role")
        assert role in ROLES, f"{tool.name}: no minimum role"
        if ann.destructive_hint:
            assert tool.meta["sophia"]["confirm"], f"{tool.name}: destructive tools are confirmed"
            assert "confirmation_token" in tool.input_schema["properties"]
        for pname, prop in tool.input_schema.get("properties", {}).items():
            assert prop.get("description"), f"{tool.name}.{pname}: parameter needs a description"
        _assert_texts_for_a_model(tool, server.specs[tool.name])


def _assert_texts_for_a_model(tool: Any, spec: Any) -> None:
    """A title; the role above viewer and the confirmation stated in the description; no schema noise."""
    assert tool.title and tool.title != tool.name, f"{tool.name}: needs a title"
    says_role = f"Needs role {spec.role.label} or higher." in tool.description
    assert says_role == (spec.role > Role.VIEWER), f"{tool.name}: the description must state a role above viewer"
    assert ("a preview first." in tool.description) == spec.confirm, f"{tool.name}: confirmation not stated"
    for schema in (tool.input_schema, tool.output_schema or {}):
        assert not _schema_titles(schema), f"{tool.name}: schema titles are pydantic noise"


def _schema_titles(node: Any) -> list[str]:
    """Every `title` keyword in a JSON schema (a property *named* title is not one)."""
    if isinstance(node, list):
        return [t for item in node for t in _schema_titles(item)]
    if not isinstance(node, dict):
        return []
    found = [node["title"]] if isinstance(node.get("title"), str) else []
    for key, value in node.items():
        if key in ("properties", "$defs") and isinstance(value, dict):
            found += [t for sub in value.values() for t in _schema_titles(sub)]
        elif key not in ("title", "default", "enum", "const", "examples"):
            found += _schema_titles(value)
    return found


def snapshot_of(tool: Any) -> str:
    """What a tool's snapshot file holds: everything tools/list says about it."""
    entry = {
        "title": tool.title,
        "description": tool.description,
        "annotations": tool.annotations.model_dump(exclude_none=True) if tool.annotations else None,
        "meta": tool.meta,
        "input_schema": tool.input_schema,
        "output_schema": tool.output_schema,
    }
    return json.dumps(entry, indent=1, sort_keys=True) + "\n"


@pytest.mark.parametrize("name", SERVERS)
def test_tool_schemas_match_their_snapshot(name: str) -> None:
    tools = anyio.run(_tools, _server(name))
    folder = SNAPSHOTS / name
    current = {f"{t.name}.json": snapshot_of(t) for t in tools}
    if os.environ.get("SOPHIA_UPDATE_SNAPSHOTS") == "1":
        folder.mkdir(parents=True, exist_ok=True)
        for stale in set(p.name for p in folder.glob("*.json")) - set(current):
            (folder / stale).unlink()
        for file, text in current.items():
            (folder / file).write_text(text)
    stored = {p.name: p.read_text() for p in folder.glob("*.json")} if folder.is_dir() else {}
    hint = "review the change, then run `make snapshots` and commit tests/snapshots"
    missing, left_over = sorted(set(current) - set(stored)), sorted(set(stored) - set(current))
    assert not missing, f"{name}: tools without a snapshot: {missing}; {hint}"
    assert not left_over, f"{name}: snapshots of no tool: {left_over}; {hint}"
    changed = sorted(f for f, text in current.items() if stored[f] != text)
    assert not changed, f"{name}: tool schemas changed: {changed}; {hint}"


@pytest.mark.parametrize("name", SERVERS)
def test_read_only_mode_leaves_only_read_only_tools(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"SOPHIA_{name.upper()}_READ_ONLY", "1")
    tools = anyio.run(_tools, _server(name))
    assert all(t.annotations.read_only_hint for t in tools)


async def _listed(server: SophiaServer, role: Role = Role.ADMIN) -> set[str]:
    """What tools/list shows a caller with `role` (over the in-memory SDK client, as a client sees it)."""
    with anyio.fail_after(30):
        async with connect(server, principal=Principal("lister", role, kind="test")) as client:
            return {t.name for t in await client.list_tools()}


@pytest.mark.anyio
@pytest.mark.parametrize("name", SERVERS)
async def test_tools_list_shows_a_role_only_what_it_may_call(name: str) -> None:
    server = _server(name)
    offered = {t.name for t in await _tools(server)}
    for role in (Role.VIEWER, Role.DEVELOPER, Role.ADMIN):
        may_call = {n for n in offered if role >= server.specs[n].role}
        listed = await _listed(server, role)
        assert listed <= may_call, f"{role.label} sees tools it may not call: {sorted(listed - may_call)}"
        if server.configured():
            assert listed == may_call
    server.list_all_tools = True
    assert await _listed(server, Role.VIEWER) == offered


@pytest.mark.anyio
@pytest.mark.parametrize("name", SERVERS)
async def test_tools_list_shows_a_role_only_the_arguments_it_may_pass(name: str) -> None:
    server = _server(name)
    server.list_all_tools = True
    catalogue = {t.name: t for t in await _tools(server)}
    server.list_all_tools = False
    for role in (Role.VIEWER, Role.DEVELOPER, Role.ADMIN):
        async with connect(server, principal=Principal("lister", role, kind="test")) as client:
            listed = {t.name: t for t in await client.list_tools()}
        for tool_name, tool in listed.items():
            whole = catalogue[tool_name]
            roles = ToolMeta.of(whole.meta).args or {}
            hidden = {arg for arg, label in roles.items() if role < Role.parse(label)}
            assert set(tool.input_schema["properties"]) == set(whole.input_schema["properties"]) - hidden
            assert ToolMeta.of(tool.meta).args is None, f"{tool_name}: a caller's listing names no argument roles"
            assert tool.output_schema == whole.output_schema and tool.description == whole.description


@pytest.mark.anyio
async def test_memory_tenant_and_pulumi_reveal_secrets_are_listed_to_admins_only() -> None:
    for name, tool_name, arg in (("memory", "memory_search", "tenant"), ("pulumi", "pulumi_stack_outputs",
                                                                         "reveal_secrets")):
        server = _server(name)
        server.list_all_tools = True
        whole = {t.name: t for t in await _tools(server)}[tool_name]
        assert ToolMeta.of(whole.meta).args == {arg: "admin"}
        assert "x-sophia-role" not in json.dumps(whole.input_schema)
        for role, shown in ((Role.DEVELOPER, False), (Role.ADMIN, True)):
            server.list_all_tools = False
            async with connect(server, principal=Principal("lister", role, kind="test")) as client:
                tool = next(t for t in await client.list_tools() if t.name == tool_name)
            assert (arg in tool.input_schema["properties"]) is shown, (tool_name, role.label)


@pytest.mark.anyio
async def test_confirmation_token_is_published_only_in_token_mode_and_always_accepted(
    approval_mode: None,
) -> None:
    server = _server("memory")
    tool = next(t for t in await _tools(server) if t.name == "memory_delete")
    assert "confirmation_token" not in tool.input_schema["properties"]
    async with connect(server, principal=Principal("dev", Role.DEVELOPER, kind="test")) as client:
        stored = await client.call("memory_store", {"text": "the staging database is called orders_stg"})
        memory_id = structured(stored)["memory"]["id"]
        result = await client.call("memory_delete", {"id": memory_id, "confirmation_token": "made-up"})
    # Accepted as an argument (no invalid_argument): the call waits for the person's approval.
    assert error_code(result) == "approval_required"


@pytest.mark.anyio
async def test_unconfigured_gong_and_retool_list_only_what_works_without_configuration() -> None:
    gong, retool = _server("gong"), _server("retool")
    assert not gong.configured() and not retool.configured()
    # Gong's offline tools (the local cache's search and its status) work without credentials;
    # every Retool tool needs the instance and a token.
    assert await _listed(gong) == {"gong_search_calls", "gong_sync_status"}
    assert await _listed(retool) == set()
    # Called anyway, a hidden tool still answers not_configured, naming the settings.
    async with connect(retool, principal=Principal("a", Role.ADMIN, kind="test")) as client:
        assert error_code(await client.call("retool_list_apps", {})) == "not_configured"
    # Shown to a host (SOPHIA_LIST_ALL_TOOLS), they say they are unconfigured.
    gong.list_all_tools = True
    async with connect(gong, principal=Principal("a", Role.ADMIN, kind="test")) as client:
        marks = {t.name: (t.meta or {})["sophia"].get("configured", True) for t in await client.list_tools()}
    assert marks["gong_search_calls"] is True and marks["gong_list_calls"] is False


@pytest.mark.anyio
async def test_configured_gong_and_retool_list_every_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOPHIA_GONG_ACCESS_KEY", "key")
    monkeypatch.setenv("SOPHIA_GONG_ACCESS_KEY_SECRET", "secret")
    monkeypatch.setenv("SOPHIA_RETOOL_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SOPHIA_RETOOL_API_TOKEN", "retool_token")
    for name in ("gong", "retool"):
        server = _server(name)
        assert server.configured()
        assert await _listed(server) == {t.name for t in await _tools(server)}
