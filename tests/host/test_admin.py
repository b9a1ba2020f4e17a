"""`sophia token ...` and `sophia approvals/approve/deny` in process (typer's runner)."""

from __future__ import annotations

import json

import pytest
from sophia_host.__main__ import app
from sophia_host.admin import token_app
from sophia_shared.approvals import ApprovalStore, Binding
from sophia_shared.audit import AuditLog
from sophia_shared.auth import TokenStore, os_user
from typer.testing import CliRunner


def test_token_create_is_for_a_user_default_the_os_user(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    made = runner.invoke(token_app, ["create", "--name", "laptop", "--user", "alice", "--role", "viewer"])
    assert made.exit_code == 0, made.output
    mine = runner.invoke(token_app, ["create", "--name", "desk"])
    assert mine.exit_code == 0, mine.output
    monkeypatch.setenv("SOPHIA_USER", "bob")
    bobs = runner.invoke(token_app, ["create", "--name", "bob-ci"])
    bad = runner.invoke(token_app, ["create", "--name", "x", "--user", "space:team"])
    assert bad.exit_code == 2 and "invalid_argument" in bad.output
    users = {r.name: (r.user, r.role.label) for r in TokenStore().list()}
    assert users == {"laptop": ("alice", "viewer"), "desk": (os_user(), "developer"), "bob-ci": ("bob", "developer")}
    assert bobs.exit_code == 0
    listed = runner.invoke(token_app, ["list"]).output
    assert " laptop " in listed and " alice " in listed


def test_approvals_approve_and_deny_from_the_command_line() -> None:
    store = ApprovalStore.from_settings()
    one = store.request(Binding("alice", "k", "docker", "docker_remove_container", "d1"), "remove web-1", {})
    two = store.request(Binding("alice", "k", "docker", "docker_remove_container", "d2"), "remove web-2", {})
    runner = CliRunner()
    listed = runner.invoke(app, ["approvals"])
    assert listed.exit_code == 0 and one.id in listed.output and "remove web-2" in listed.output
    approved = runner.invoke(app, ["approve", one.id])
    denied = runner.invoke(app, ["deny", two.id])
    twice = runner.invoke(app, ["approve", one.id])
    missing = runner.invoke(app, ["deny", "zzzzzzzz"])
    assert approved.exit_code == 0 and f"approved {one.id}" in approved.output
    assert denied.exit_code == 0 and f"denied {two.id}" in denied.output
    assert twice.exit_code == 2 and "conflict" in twice.output
    assert missing.exit_code == 2 and "not_found" in missing.output
    every = runner.invoke(app, ["approvals", "--all", "--json"]).output.splitlines()
    assert json.loads(every[0])["status"] == "approved"
    records = [(r["server"], r["tool"], json.loads(r["arguments"])["approval_id"]) for r in AuditLog().records()]
    assert records == [("approvals", "approve", one.id), ("approvals", "deny", two.id)]
