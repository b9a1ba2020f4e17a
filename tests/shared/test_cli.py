"""The one CLI shape, end to end: a server spawned over stdio with the real SDK client; check; bad settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from importlib.metadata import entry_points, version
from pathlib import Path

import anyio
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from sophia_shared.testing import error_code, structured

TESTS = Path(__file__).resolve().parents[1]
DEMO = [sys.executable, "-m", "shared.demo_server"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPHIA_DEMO_")}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DEMO, *args], capture_output=True, text=True, timeout=60, env=_env(**env), check=False)


@pytest.mark.anyio
@pytest.mark.parametrize("args", [[], ["serve", "--transport", "stdio"]])
async def test_stdio_serves_as_the_local_user_with_the_stdio_role(args: list[str]) -> None:
    params = StdioServerParameters(command=DEMO[0], args=[*DEMO[1:], *args], env=_env(SOPHIA_STDIO_ROLE="viewer"))
    with anyio.fail_after(30):
        async with Client(params) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            echo = await client.call_tool("demo_echo", {"text": "stdio"})
            write = await client.call_tool("demo_write", {"value": 1})
    # tools/list shows the local user (viewer here) only what its role may call.
    assert "demo_echo" in names and "demo_drop" not in names and "demo_write" not in names
    assert structured(echo)["role"] == "viewer"
    assert error_code(write) == "forbidden"


@pytest.mark.anyio
async def test_read_only_flag_hides_writes() -> None:
    params = StdioServerParameters(command=DEMO[0], args=[*DEMO[1:], "serve", "--read-only"], env=_env())
    with anyio.fail_after(30):
        async with Client(params) as client:
            names = {t.name for t in (await client.list_tools()).tools}
    assert names == {"demo_echo", "demo_big", "demo_fail"}


@pytest.mark.anyio
async def test_host_principal_is_ignored_unless_trusted() -> None:
    meta = {"sophia/principal": {"name": "root-by-meta", "role": "admin"}}
    for trusted, expected in (("0", "viewer"), ("1", "admin")):
        env = _env(SOPHIA_STDIO_ROLE="viewer", SOPHIA_TRUST_HOST_PRINCIPAL=trusted)
        params = StdioServerParameters(command=DEMO[0], args=DEMO[1:], env=env)
        with anyio.fail_after(30):
            async with Client(params) as client:
                echo = await client.call_tool("demo_echo", {"text": "x"}, meta=meta)  # type: ignore[arg-type]
        assert structured(echo)["role"] == expected


def test_check_ok_and_not_configured() -> None:
    ok = _run("check")
    assert ok.returncode == 0, ok.stderr
    assert "ok: demo server ready" in ok.stdout
    bad = _run("check", SOPHIA_DEMO_GREETING="fail")
    assert bad.returncode == 1
    assert "not_configured" in bad.stderr


def test_a_bad_setting_fails_at_start_with_one_line_naming_it() -> None:
    bad = _run("check", SOPHIA_DEMO_MAX_RESULT_CHARS="lots")
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "SOPHIA_DEMO_MAX_RESULT_CHARS" in lines[0]


def test_sophia_toml_section_is_read(tmp_path: Path) -> None:
    config = tmp_path / "sophia.toml"
    config.write_text('[demo]\ngreeting = "fail"\n')
    from_file = _run("check", SOPHIA_CONFIG=str(config))
    assert from_file.returncode == 1
    env_wins = _run("check", SOPHIA_CONFIG=str(config), SOPHIA_DEMO_GREETING="hi")
    assert env_wins.returncode == 0


def test_unauthenticated_http_off_loopback_is_refused_by_the_cli() -> None:
    refused = _run("serve", "--transport", "http", "--host", "0.0.0.0", "--allow-unauthenticated")
    assert refused.returncode == 2
    assert "loopback only" in refused.stderr


# -- a CLI that feels native: --version, a --help that loads nothing heavy, a quiet Ctrl-C ---------------

# Modules the help and version paths must not import: the MCP SDK, the settings stack, the embedding
# runtime, database drivers, HTTP servers, a server's own tools.
HEAVY = ("mcp", "pydantic_settings", "onnxruntime", "tokenizers", "numpy", "psycopg", "uvicorn", "starlette",
         "anyio", "httpx", "docker", "snowflake", "pulumi", "sophia_shared.settings", "sophia_shared.server")
SERVER_CLIS = sorted(ep.name for ep in entry_points(group="console_scripts")
                     if ep.name.startswith("sophia-") and ep.value.endswith(":main"))


def test_every_server_cli_is_found() -> None:
    assert {f"sophia-{n}" for n in ("memory", "snowflake", "docker", "pulumi", "gong", "retool")} <= set(SERVER_CLIS)


def _loaded_by(script: str, *argvs: list[str]) -> list[str]:
    """Run console script `script` in-process with each of `argvs` in turn; which HEAVY modules it imported."""
    (ep,) = [ep for ep in entry_points(group="console_scripts") if ep.name == script]
    probe = (
        "import sys\n"
        f"from {ep.module} import {ep.attr} as main\n"
        f"for args in {list(argvs)!r}:\n"
        f"    sys.argv = [{script!r}, *args]\n"
        "    try:\n        main()\n    except SystemExit:\n        pass\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    loaded: list[str] = eval(done.stdout.strip().splitlines()[-1])  # noqa: S307 - our own probe's list literal
    return loaded


@pytest.mark.parametrize("script", SERVER_CLIS)
def test_server_help_and_version_import_nothing_heavy(script: str) -> None:
    assert _loaded_by(script, ["--help"], ["--version"], ["serve", "--help"], ["check", "--help"]) == []


@pytest.mark.parametrize("script", SERVER_CLIS)
def test_server_version(script: str) -> None:
    done = subprocess.run([str(Path(sys.executable).with_name(script)), "--version"], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == f"{script} {version(script)}"


@pytest.mark.anyio
async def test_ctrl_c_ends_a_stdio_server_without_a_traceback() -> None:
    process = await anyio.open_process(DEMO, env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE)
    async with process:
        assert process.stdin is not None and process.stdout is not None and process.stderr is not None
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
        await process.stdin.send(json.dumps(init).encode() + b"\n")
        with anyio.fail_after(60):
            assert b'"result"' in await process.stdout.receive()  # serving: stdin is held by the SDK's reader
            process.send_signal(signal.SIGINT)
            code = await process.wait()
            err = b"".join([chunk async for chunk in process.stderr])
    assert code == 130 and b"Traceback" not in err, err
