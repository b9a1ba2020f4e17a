"""first_run.py (what `make run` prints before `sophia up`): the token is made and shown once, kept 0600
for the bridge, and every run prints each client's config without it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from sophia_host.first_run import TOKEN_NAME, main, token_file
from sophia_shared.auth import TokenStore


def test_the_token_is_shown_once_and_configs_every_time(sophia_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", "http://127.0.0.1:8760/mcp"]) == 0
    first = capsys.readouterr().out
    path = token_file()
    token = path.read_text().strip()
    assert path.parent == sophia_home / "keys" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.count(token) == 1
    assert TokenStore().lookup(token) is not None
    assert [r.name for r in TokenStore().list()] == [TOKEN_NAME]
    assert main([]) == 0
    again = capsys.readouterr().out
    assert token not in again
    for where in ("claude_desktop_config.json", ".cursor/mcp.json", ".vscode/mcp.json", "Bearer ${input:sophia-token}",
                  "Bearer ${env:SOPHIA_TOKEN}", str(path)):
        assert where in again
    assert len(TokenStore().list()) == 1
