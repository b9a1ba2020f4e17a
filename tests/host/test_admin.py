"""`sophia token ...` in process (typer's runner): tokens are created for a user."""

from __future__ import annotations

import pytest
from sophia_host.admin import token_app
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
