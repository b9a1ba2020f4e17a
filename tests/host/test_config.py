"""sophia.toml → the servers the host composes; `sophia config`; the repo's mcp_config.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sophia_host.client_config import ClientKind, client_config, render
from sophia_host.config import HostSettings, ServerEntry, installed_servers, load_servers, parse_server_names
from sophia_shared.settings import SettingsError

REPO = Path(__file__).resolve().parents[2]
SOPHIA = str(Path(sys.executable).with_name("sophia"))


def test_repo_mcp_config_is_what_sophia_config_generates() -> None:
    generated = subprocess.run([SOPHIA, "config", "--client", "claude", "--portable"], capture_output=True,
                               text=True, check=True, timeout=120).stdout
    assert (REPO / "mcp_config.json").read_text() == generated, (
        "mcp_config.json is stale: regenerate it with `sophia config --client claude --portable > mcp_config.json`"
    )


@pytest.mark.parametrize("kind", list(ClientKind))
def test_client_configs_point_at_this_install(kind: ClientKind) -> None:
    config = client_config(kind)
    entry = config["servers" if kind is ClientKind.vscode else "mcpServers"]["sophia"]
    assert Path(entry["command"]).is_file()
    assert entry["args"] == ["up", "--transport", "stdio"]
    remote = json.loads(render(kind, url="http://127.0.0.1:8760/mcp"))
    remote_entry = remote["servers" if kind is ClientKind.vscode else "mcpServers"]["sophia"]
    if kind is ClientKind.claude:  # stdio entries only: the bridge to the URL
        assert remote_entry["args"] == ["connect", "http://127.0.0.1:8760/mcp"]
    else:
        assert remote_entry["url"] == "http://127.0.0.1:8760/mcp"


def test_servers_from_sophia_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "sophia.toml"
    config.write_text(
        '[servers.alpha]\ncommand = "python -m alpha"\nenv = { A = "1" }\ntoolsets = ["alpha"]\n'
        '[servers.remote]\nurl = "http://127.0.0.1:9000/mcp"\ntoken_env = "REMOTE_TOKEN"\n'
        '[servers.off]\ncommand = ["x"]\nenabled = false\n'
    )
    monkeypatch.setenv("SOPHIA_CONFIG", str(config))
    servers = {s.name: s for s in load_servers(HostSettings(installed_servers=False))}
    assert set(servers) == {"alpha", "remote"}
    assert servers["alpha"].command == ["python", "-m", "alpha"] and servers["alpha"].env == {"A": "1"}
    assert servers["remote"].remote and servers["remote"].token_env == "REMOTE_TOKEN"


def test_a_bad_server_table_fails_with_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "sophia.toml"
    config.write_text('[servers.both]\ncommand = ["x"]\nurl = "http://127.0.0.1/mcp"\n')
    monkeypatch.setenv("SOPHIA_CONFIG", str(config))
    with pytest.raises(SettingsError) as raised:
        load_servers()
    assert "servers.both" in str(raised.value) and "exactly one of command or url" in str(raised.value)


def test_bad_names_are_refused() -> None:
    with pytest.raises(ValueError, match="server name"):
        ServerEntry(name="Bad Name", command=["x"])


def test_without_sophia_toml_every_installed_server_is_served(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SOPHIA_CONFIG", raising=False)
    found = {s.name: s for s in installed_servers()}
    assert "sophia" not in found
    assert [s.name for s in load_servers()] == sorted(found)
    for server in found.values():
        assert Path(server.command[0]).name == f"sophia-{server.name}"


def test_a_table_adjusts_an_installed_server_without_describing_the_others(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "sophia.toml"
    config.write_text('[servers.gong]\nenabled = false\n\n[servers.snowflake]\ntoolsets = ["snowflake"]\n'
                      '[servers.extra]\ncommand = ["x"]\n')
    monkeypatch.setenv("SOPHIA_CONFIG", str(config))
    installed = {s.name: s for s in installed_servers()}
    servers = {s.name: s for s in load_servers()}
    assert set(servers) == (set(installed) - {"gong"}) | {"extra"}
    # The adjusted server keeps its installed command.
    assert servers["snowflake"].command == installed["snowflake"].command
    assert servers["snowflake"].toolsets == ["snowflake"]
    assert servers["memory"] == installed["memory"]


def test_servers_option_and_setting_pick_servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "sophia.toml"
    config.write_text('[host]\nservers = ["memory", "retool"]\n\n[servers.retool]\nenabled = false\n')
    monkeypatch.setenv("SOPHIA_CONFIG", str(config))
    # Named explicitly, a disabled server runs; --servers beats [host] servers.
    assert [s.name for s in load_servers(HostSettings())] == ["memory", "retool"]
    only = parse_server_names(" snowflake, memory ,")
    assert [s.name for s in load_servers(HostSettings(), only)] == ["snowflake", "memory"]
    with pytest.raises(SettingsError) as raised:
        load_servers(HostSettings(), ["memory", "nope"])
    assert "--servers" in str(raised.value) and "nope" in str(raised.value) and "memory" in str(raised.value)
    for bad in (",", "Memory"):
        with pytest.raises(SettingsError, match="--servers"):
            parse_server_names(bad)


def test_up_with_an_unknown_server_is_one_line_before_anything_starts(tmp_path: Path, sophia_home: Path) -> None:
    env = {**os.environ, "SOPHIA_HOME": str(sophia_home), "SOPHIA_CONFIG": str(tmp_path / "none.toml")}
    done = subprocess.run([SOPHIA, "up", "--transport", "stdio", "--servers", "memory,nope"], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "sophia: bad setting --servers: no server named nope; known: docker, gong, memory, pulumi, retool, snowflake"
    ]
