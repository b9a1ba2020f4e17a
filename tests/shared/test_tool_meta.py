"""The typed contract with a host: `_meta.sophia` written and read through one model."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from sophia_shared.errors import error_data
from sophia_shared.paths import write_atomically
from sophia_shared.roles import Role, RoleName
from sophia_shared.tool_meta import ToolMeta


def test_roles_and_their_names_are_one_list() -> None:
    assert list(typing.get_args(RoleName)) == [r.label for r in Role]


def test_listed_meta_writes_only_what_differs_from_the_defaults() -> None:
    assert ToolMeta.listed(role=Role.VIEWER, toolset=None, confirm=False).dump() == {"role": "viewer"}
    meta = ToolMeta.listed(role=Role.ADMIN, toolset="stacks", confirm=True)
    assert meta.dump() == {"role": "admin", "toolset": "stacks", "confirm": True}
    assert ToolMeta.of(meta.as_tool_meta({"other": 1})) == meta


def test_argument_roles_are_written_only_when_there_are_some_and_hide_what_a_role_may_not_pass() -> None:
    assert "args" not in ToolMeta.listed(role=Role.VIEWER, toolset=None, confirm=False, args={}).dump()
    meta = ToolMeta.listed(role=Role.VIEWER, toolset=None, confirm=False, args={"tenant": Role.ADMIN})
    assert meta.dump() == {"role": "viewer", "args": {"tenant": "admin"}}
    assert ToolMeta.of(meta.as_tool_meta()) == meta
    assert meta.hidden_from(Role.DEVELOPER) == {"tenant"} and meta.hidden_from(Role.ADMIN) == set()
    # An argument whose role does not parse is hidden from everyone; a value that is no map reads as none.
    assert ToolMeta.of({"sophia": {"args": {"x": "root", "y": 3}}}).hidden_from(Role.ADMIN) == {"x"}
    assert ToolMeta.of({"sophia": {"args": ["tenant"]}}).args is None


@pytest.mark.parametrize("sophia", [None, 5, "x", [], {"role": 3, "toolset": ["a"]}, {"role": "root"}])
def test_reading_a_bad_meta_falls_back_to_the_defaults(sophia: object) -> None:
    meta = ToolMeta.of({"sophia": sophia})
    assert meta.role_or("developer") is Role.DEVELOPER or meta.role == "3"
    assert meta.configured is True
    assert meta.toolset in (None, "['a']")


def test_only_an_explicit_false_marks_a_tool_unconfigured() -> None:
    assert ToolMeta.of({"sophia": {"configured": False}}).configured is False
    assert ToolMeta.of({"sophia": {"configured": 0}}).configured is True
    assert ToolMeta.of({"sophia": {"confirm": "yes"}}).confirm is True


def test_error_data_of_a_success_is_empty() -> None:
    assert error_data({"content": []}) == {}
    failed = {"isError": True, "_meta": {"sophia/error": {"code": "conflict", "data": {"k": 1}}}}
    assert error_data(failed) == {"k": 1}


def test_write_atomically_is_private_and_keeps_an_existing_file_when_asked(tmp_path: Path) -> None:
    (tmp_path := tmp_path / "files").mkdir()
    target = tmp_path / "f.json"
    write_atomically(target, b"one")
    assert target.read_bytes() == b"one" and target.stat().st_mode & 0o777 == 0o600
    write_atomically(target, b"two", replace=False)
    assert target.read_bytes() == b"one"
    write_atomically(target, b"three")
    assert target.read_bytes() == b"three"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]
