"""Principals and the file token store: users, SOPHIA_USER, and stores from before users."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import anyio
import pytest
from sophia_shared.auth import (
    Principal,
    Role,
    SophiaTokenVerifier,
    TokenStore,
    local_principal,
    os_user,
    principal_from_access_token,
)
from sophia_shared.errors import InvalidArgument
from sophia_shared.settings import SuiteSettings


def test_a_token_acts_as_its_user_and_names_itself_in_the_audit_kind(sophia_home: Path) -> None:
    _record, plaintext = TokenStore().create("laptop", Role.DEVELOPER, user="alice")
    access = anyio.run(SophiaTokenVerifier(TokenStore()).verify_token, plaintext)
    assert access is not None
    principal = principal_from_access_token(access)
    assert principal == Principal("alice", Role.DEVELOPER, kind="token", credential="laptop")
    assert principal.audit_kind == "token:laptop"
    assert Principal.from_meta(principal.as_meta()) == principal


def test_a_file_store_from_before_users_is_read_as_user_equals_name(sophia_home: Path) -> None:
    digest = hashlib.sha256(b"sph_old").hexdigest()
    old = {"id": "old1", "name": "make-run", "role": "developer", "created": 1.0, "revoked": False}
    (sophia_home / "tokens.json").write_text(json.dumps({"version": 1, "tokens": {digest: old}}))
    store = TokenStore()
    found = store.lookup("sph_old")
    assert found is not None and (found.name, found.user) == ("make-run", "make-run")
    store.create("laptop", Role.VIEWER, user="alice")  # a write saves the migrated entry with its user
    saved = json.loads((sophia_home / "tokens.json").read_text())["tokens"]
    assert saved[digest]["user"] == "make-run"
    assert {r.name: r.user for r in TokenStore().list()} == {"make-run": "make-run", "laptop": "alice"}


@pytest.mark.parametrize("bad", ["space:team", "", "a b", "-rf", "x" * 129])
def test_user_names_are_checked(sophia_home: Path, bad: str) -> None:
    with pytest.raises(InvalidArgument):
        TokenStore().create("t", Role.VIEWER, user=bad)
    with pytest.raises(InvalidArgument):
        local_principal(SuiteSettings(user=bad or " "))


def test_stdio_runs_as_the_os_user_unless_sophia_user_says(monkeypatch: pytest.MonkeyPatch) -> None:
    assert local_principal(SuiteSettings()).name == os_user()
    monkeypatch.setenv("SOPHIA_USER", "alice")
    assert local_principal().name == "alice" and local_principal().kind == "local"
