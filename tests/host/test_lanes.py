"""The differential test of the one request path (issue 13): one corpus of calls sent through a single
SophiaServer, through the host's SDK lane and through its fast lane, with the same results and the same
audit records.

Every stdio lane is a real process spoken to with raw JSON-RPC lines (what any MCP client puts on the
pipe): `child_server.py alpha` alone (lane `server`), and `sophia up` in front of that same child with the
fast lane off (`sdk`) and on (`fast`). The HTTP edge gets the same corpus as plain POSTs with a bearer
token, fast lane off (`http-sdk`) and on (`http-fast`), compared the same way (without the cancel: a
single-exchange POST has no cancel notification). The corpus: success, every stable error code the child
can raise, an unknown tool, a role refusal, an oversized result, forged `_meta` (principal and correlation
id), malformed `_meta`/params frames, confirmation by a pending approval (decided out of band, as
`sophia approve` does) and by elicitation, a cancelled call, and — on
the host lanes only, since a lone server has no call timeout and no supervisor — a timeout and a child
that dies mid-call. The host's own `fast_path_calls` must count exactly the calls the fast lane should
take (and stay 0 with it off), so a fast lane that silently handed everything to the SDK cannot pass.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from sophia_host.status import StatusFile
from sophia_shared.approvals import ApprovalStore
from sophia_shared.audit import AuditLog
from sophia_shared.auth import Role, TokenStore
from sophia_shared.errors import ErrorCode

from .conftest import CHILD, START_S
from .test_cli import SOPHIA
from .test_fastpath import ENVELOPE, MODERN, Wire

pytestmark = pytest.mark.e2e

CAP = 3_000  # the edge's result cap: the host's [host] max_result_chars, the lone server's own
TIMEOUT_S = 4.0  # the host's call timeout: long enough that a cancel always comes first
LANES = ("server", "sdk", "fast")
HTTP_LANES = ("http-sdk", "http-fast")
HOST_LANES = ("sdk", "fast", *HTTP_LANES)
PAIRS = (("sdk", "fast"), ("http-sdk", "http-fast"))  # the host's SDK lane and fast lane, per edge
HOST_ONLY = ("timeout", "child_dies", "child_back")
ELICITING = {**ENVELOPE, "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}}}
FORGED_PRINCIPAL = {"name": "mallory", "role": "admin", "kind": "token"}
FORGED_CORRELATION = "forged-correlation"
FORGED = {"sophia/principal": FORGED_PRINCIPAL, "sophia/correlation_id": FORGED_CORRELATION}
# Tools the driver calls to wait for the child (how often varies by run): left out of audit comparisons.
POLL_TOOL = "alpha_cancelled"
# What the host reads from its child on its own (the child's health check), not a caller's call.
UNCOMPARED = {POLL_TOOL, "resources/read"}


@dataclass
class Case:
    name: str
    tool: str
    arguments: Any
    meta: dict[str, Any] = field(default_factory=dict)
    fast: bool = True  # the fast lane takes it


PLAIN = [
    Case("ok", "alpha_echo", {"text": "hello"}),
    Case("tool_error", "alpha_echo", {"text": "missing"}),
    Case("invalid_argument", "alpha_echo", {"text": 5}),
    Case("unknown_tool", "alpha_nope", {}, fast=False),
    Case("role", "alpha_admin", {}),
    *(Case(f"fail_{code.value}", "alpha_fail", {"code": code.value}) for code in ErrorCode),
    Case("oversized", "alpha_echo", {"text": "x" * CAP}),
    Case("forged_meta", "alpha_echo", {"text": "who"}, meta=FORGED),
    Case("forged_role", "alpha_admin", {}, meta=FORGED),
]
# Frames no lane may take as a call: each gets a JSON-RPC error, and the next frame works.
JUNK: dict[str, dict[str, Any]] = {
    "meta_list": {"name": "alpha_echo", "arguments": {"text": "x"}, "_meta": [1, 2]},
    "meta_string": {"name": "alpha_echo", "arguments": {"text": "x"}, "_meta": "sophia"},
    "meta_number": {"name": "alpha_echo", "arguments": {"text": "x"}, "_meta": 7},
    "meta_nested_junk": {"name": "alpha_echo", "arguments": {"text": "x"}, "_meta": {"a": [[{"b": [None]}]]}},
    "meta_envelope_junk": {"name": "alpha_echo", "arguments": {"text": "x"},
                           "_meta": {**ENVELOPE, "progressToken": [1], "sophia/principal": "admin"}},
    "client_info_junk": {"name": "alpha_echo", "arguments": {"text": "x"},
                         "_meta": {**ENVELOPE, "io.modelcontextprotocol/clientInfo": [1]}},
    "capabilities_junk": {"name": "alpha_echo", "arguments": {"text": "x"},
                          "_meta": {**ENVELOPE, "io.modelcontextprotocol/clientCapabilities": {"elicitation": 1}}},
    "version_junk": {"name": "alpha_echo", "arguments": {"text": "x"},
                     "_meta": {**ENVELOPE, "io.modelcontextprotocol/protocolVersion": "1999-01-01"}},
    "handshake_era_call": {"name": "alpha_echo", "arguments": {"text": "x"}},
    "arguments_list": {"name": "alpha_echo", "arguments": ["text"], "_meta": ENVELOPE},
    "name_number": {"name": 5, "arguments": {}, "_meta": ENVELOPE},
}


@dataclass
class Transcript:
    lane: str
    home: Path
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)  # case → the JSON-RPC response
    expected_fast: int = 0
    fast_calls: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    in_flight: str = ""  # the case being sent: named when a lane fails, with the process's stderr

    @property
    def edge(self) -> str:
        return "alpha" if self.lane == "server" else "sophia"

    @property
    def http(self) -> bool:
        return self.lane.startswith("http")

    def edge_records(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["server"] == self.edge and r["tool"] not in UNCOMPARED]

    def child_records(self) -> list[dict[str, Any]]:
        assert self.lane != "server"
        return [r for r in self.records if r["server"] == "alpha" and r["tool"] not in UNCOMPARED]


class HttpWire:
    """POSTs of single JSON-RPC requests to the host's streamable HTTP endpoint, as the SDK client sends them."""

    def __init__(self, http: httpx2.AsyncClient, url: str, token: str):
        self.http = http
        self.url = url
        self.token = token
        self.next_id = 100

    async def request(self, method: str, params: Any) -> dict[str, Any]:
        self.next_id += 1
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
                   "MCP-Protocol-Version": MODERN, "Mcp-Method": method, "Authorization": f"Bearer {self.token}"}
        if isinstance(params, dict) and isinstance(params.get("name"), str):
            headers["Mcp-Name"] = params["name"]
        body = json.dumps({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        with anyio.fail_after(START_S):
            response = await self.http.post(self.url, headers=headers, content=body)
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            for line in response.text.splitlines():
                if line.startswith("data:"):
                    message: dict[str, Any] = json.loads(line[5:])
                    if message.get("id") == self.next_id:
                        return message
            raise AssertionError(f"no answer in the event stream: {response.text[:500]}")
        answer: dict[str, Any] = response.json()
        return answer


class Driver:
    """Sends the corpus down one lane and keeps what came back."""

    def __init__(self, wire: Wire | HttpWire, transcript: Transcript):
        self.wire = wire
        self.t = transcript
        self.host = transcript.lane != "server"
        self.fast = transcript.lane.endswith("fast")

    async def call(self, key: str, tool: str, arguments: Any, meta: dict[str, Any] | None = None, *,
                   fast: bool = True, envelope: dict[str, Any] = ENVELOPE, **params: Any) -> dict[str, Any]:
        self.t.in_flight = key
        response = await self.wire.request(
            "tools/call", {"name": tool, "arguments": arguments, "_meta": {**envelope, **(meta or {})}, **params})
        self.t.answers[key] = response
        self.t.expected_fast += int(self.fast and fast)
        return response

    async def poll_cancelled(self, at_least: int) -> None:
        """Wait (bounded) until the child counted `at_least` cancellations of its hang tool."""
        with anyio.fail_after(START_S):
            while True:
                response = await self.call("poll", POLL_TOOL, {})
                if response["result"]["structuredContent"]["result"] >= at_least:
                    return
                await anyio.sleep(0.05)

    async def run(self) -> None:
        for case in PLAIN:
            await self.call(case.name, case.tool, case.arguments, case.meta, fast=case.fast)
        for name, params in JUNK.items():
            self.t.in_flight = name
            self.t.answers[name] = await self.wire.request("tools/call", params)
        await self.call("after_junk", "alpha_echo", {"text": "still here"})
        await self.confirm_by_approval()
        await self.confirm_by_elicitation()
        cancelled = 0
        if isinstance(self.wire, Wire):
            await self.cancel(self.wire)
            cancelled += 1
        if self.host:
            await self.call("timeout", "alpha_hang", {})
            await self.poll_cancelled(cancelled + 1)
            await self.call("child_dies", "alpha_crash", {})
            await self.until_child_back()
            await self.call("child_back", "alpha_echo", {"text": "back"})

    async def confirm_by_approval(self) -> None:
        # Confirmed tools take the SDK lane on the host: it may turn the child's token into a question.
        first = await self.call("approval_pending", "alpha_delete", {"item": "db"}, fast=False)
        approval = first["result"]["_meta"]["sophia/error"]["data"]["approval_id"]
        await self.call("approval_forged", "alpha_delete", {"item": "db", "confirmation_token": approval}, fast=False)
        store = ApprovalStore(path=self.t.home / "approvals.db")  # what `sophia approve` decides in
        await anyio.to_thread.run_sync(lambda: store.decide(approval, approve=True, by="the-person"))
        await self.call("approval_redeemed", "alpha_delete", {"item": "db"}, fast=False)
        await self.call("approval_spent", "alpha_delete", {"item": "db"}, fast=False)

    async def confirm_by_elicitation(self) -> None:
        asked = await self.call("elicit_asked", "alpha_delete", {"item": "t"}, fast=False, envelope=ELICITING)
        result = asked["result"]
        answers = {key: {"action": "accept", "content": {"confirm": True}} for key in result["inputRequests"]}
        await self.call("elicit_accepted", "alpha_delete", {"item": "t"}, fast=False, envelope=ELICITING,
                        inputResponses=answers, requestState=result["requestState"])

    async def cancel(self, wire: Wire) -> None:
        wire.next_id += 1
        hung = wire.next_id
        await wire.send({"jsonrpc": "2.0", "id": hung, "method": "tools/call",
                              "params": {"name": "alpha_hang", "arguments": {}, "_meta": ENVELOPE}})
        self.t.expected_fast += int(self.fast)
        # Once a later call has come back, the hang is running in the child; then cancel it.
        await self.call("after_hang", "alpha_echo", {"text": "after the hang"})
        await wire.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": hung}})
        await self.poll_cancelled(1)

    async def until_child_back(self) -> None:
        status = StatusFile(self.t.home / "host" / "status.json")
        with anyio.fail_after(START_S):
            while True:
                servers = (status.read() or {}).get("servers") or [{}]
                if servers[0].get("state") == "ready" and servers[0].get("restarts", 0) >= 1:
                    return
                await anyio.sleep(0.05)


def _host_config(directory: Path, lane: str) -> Path:
    config = directory / "sophia.toml"
    config.write_text("\n".join([
        # Only the alpha child: the installed servers would start beside it on every lane and compare nothing.
        "[host]", "semantic_search = false", "installed_servers = false", "backoff_initial_s = 0.1",
        f"call_timeout_s = {TIMEOUT_S}",
        f"max_result_chars = {CAP}", f"fast_path = {'true' if lane.endswith('fast') else 'false'}", "",
        "[servers.alpha]", f"command = {json.dumps([sys.executable, str(CHILD), 'alpha'])}", "",
    ]))
    return config


async def _run_lane(lane: str, directory: Path) -> Transcript:
    home = directory / "home"
    home.mkdir(parents=True)
    # The default confirmation (pending approvals) for clients without elicitation.
    env = {**os.environ, "SOPHIA_HOME": str(home), "SOPHIA_CONFIRM_MODE": "approval"}
    transcript = Transcript(lane=lane, home=home)
    if lane == "server":
        command = [sys.executable, str(CHILD), "alpha"]
        env["SOPHIA_SERVER_MAX_RESULT_CHARS"] = str(CAP)
    else:
        env["SOPHIA_CONFIG"] = str(_host_config(directory, lane))
        command = [SOPHIA, "up", "--transport", "stdio"]
        if transcript.http:
            command = [SOPHIA, "up", "--port", str(_free_port())]
    log_path = directory / "stderr.log"
    try:
        await _drive_lane(transcript, command, env, log_path)
    except Exception as exc:
        # A lane that fails on a loaded machine says where and why: the case in flight and the process's own words.
        tail = log_path.read_bytes()[-4000:].decode(errors="replace")
        raise AssertionError(f"lane {lane} failed at case {transcript.in_flight!r}: {exc!r}\nits stderr:\n{tail}") \
            from exc
    # The host drains its write-behind audit on the way out; a server appended each record at once.
    transcript.records = AuditLog(home=home).records()
    assert AuditLog(home=home).verify().intact
    return transcript


async def _drive_lane(transcript: Transcript, command: list[str], env: dict[str, str], log_path: Path) -> None:
    with log_path.open("wb") as stderr:
        process = await anyio.open_process(command, env=env, stderr=stderr)
        try:
            if transcript.http:
                await _http_lane(transcript, log_path, f"http://127.0.0.1:{command[-1]}/mcp")
            else:
                await _stdio_lane(transcript, Wire(process))
        finally:
            if transcript.http:
                process.terminate()
            else:
                assert process.stdin is not None
                await process.stdin.aclose()
            with anyio.fail_after(START_S):
                await process.wait()


async def _stdio_lane(transcript: Transcript, wire: Wire) -> None:
    await _listed(wire)
    if transcript.lane != "server":
        await _child_ready(transcript.home)
    await Driver(wire, transcript).run()
    if transcript.lane != "server":
        transcript.fast_calls = await _fast_calls(transcript.home, transcript.expected_fast)


async def _http_lane(transcript: Transcript, log_path: Path, url: str) -> None:
    with anyio.fail_after(START_S):
        while b"sophia: serving on" not in log_path.read_bytes():
            await anyio.sleep(0.1)
    _record, token = TokenStore(transcript.home / "tokens.json").create("dana", Role.DEVELOPER)
    async with httpx2.AsyncClient(timeout=START_S) as http:
        wire = HttpWire(http, url, token)
        await _listed(wire)
        await _child_ready(transcript.home)
        await Driver(wire, transcript).run()
    transcript.fast_calls = await _fast_calls(transcript.home, transcript.expected_fast)


async def _listed(wire: Wire | HttpWire) -> None:
    """Wait (bounded) until the child's tools are listed: children start after the edge."""
    with anyio.fail_after(START_S):
        while "alpha_echo" not in {t["name"] for t in
                                   (await wire.request("tools/list", {"_meta": ENVELOPE}))["result"]["tools"]}:
            await anyio.sleep(0.1)


async def _child_ready(home: Path) -> None:
    """Wait (bounded) until the host's status, written after this moment, shows its child ready: a listed
    tool can come from a child that then dies and restarts (once, in CI, of a signal at its start), and the
    corpus must meet the child the fast lane takes calls to."""
    status = StatusFile(home / "host" / "status.json")
    since = time.time()
    with anyio.fail_after(START_S):
        while True:
            shown = status.read() or {}
            servers = shown.get("servers") or []
            if float(shown.get("updated", 0)) > since and servers and all(s.get("state") == "ready" for s in servers):
                return
            await anyio.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _fast_calls(home: Path, expected: int) -> int:
    """The host's fast_path_calls in a status it wrote after the corpus (every 2 s), once it shows `expected`."""
    status = StatusFile(home / "host" / "status.json")
    since = time.time()
    calls = -1
    with anyio.move_on_after(START_S):
        while True:
            shown = status.read() or {}
            calls = int(shown.get("fast_path_calls", -1))
            if float(shown.get("updated", 0)) > since and calls >= expected:
                break
            await anyio.sleep(0.2)
    return calls


@pytest.fixture(scope="module")
def lanes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Transcript]:
    """The corpus through every lane, all run side by side (one process tree per lane)."""
    root = tmp_path_factory.mktemp("lanes")
    transcripts: dict[str, Transcript] = {}

    async def all_lanes() -> None:
        async def one(lane: str) -> None:
            transcripts[lane] = await _run_lane(lane, root / lane)

        async with anyio.create_task_group() as tg:
            for lane in (*LANES, *HTTP_LANES):
                tg.start_soon(one, lane)

    anyio.run(all_lanes)
    return transcripts


# -- normalising what legitimately differs per run ------------------------------------------------

_VOLATILE = {"correlation_id", "pid", "confirmation_token", "requestState", "io.modelcontextprotocol/serverInfo",
             "approval_id", "expires_in_s"}
_TOKEN = re.compile(r"confirmation_token='[^']*'|sophia (?:approve|deny) [a-z0-9]{8}|valid \d+ s")


def _normal(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "<volatile>" if k in _VOLATILE else _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return _TOKEN.sub("<volatile>", value)
        return _normal(parsed) if isinstance(parsed, dict) else value
    return value


def _answer(response: dict[str, Any]) -> Any:
    return response.get("result", response.get("error"))


def _gist(response: dict[str, Any]) -> tuple[Any, ...]:
    """What every lane must agree on: JSON-RPC error code, or the tool error's code, or the structured result."""
    if "error" in response:
        return ("jsonrpc-error", response["error"]["code"])
    result = response["result"]
    if result.get("resultType") == "input_required":
        return ("input_required",)
    if result.get("isError"):
        return ("tool-error", result["_meta"]["sophia/error"]["code"])
    return ("ok", _normal(result.get("structuredContent")))


def _audited(record: dict[str, Any]) -> tuple[Any, ...]:
    return (record["tool"], record["outcome"], record["error_code"], record["principal"], record["principal_kind"],
            record["role"], record["arguments"])


def _cases(transcript: Transcript) -> Iterator[str]:
    return (k for k in transcript.answers if k != "poll")


# -- the comparisons ------------------------------------------------------------------------------


def test_every_lane_answers_alike(lanes: dict[str, Transcript]) -> None:
    for slow, fast in ((lanes[a], lanes[b]) for a, b in PAIRS):
        assert list(_cases(slow)) == list(_cases(fast))
        for case in _cases(slow):
            # The host's two lanes answer alike, byte for byte up to ids and tokens that differ per run.
            assert _normal(_answer(slow.answers[case])) == _normal(_answer(fast.answers[case])), (fast.lane, case)
    server, sdk = lanes["server"], lanes["sdk"]
    for case in _cases(server):
        assert _gist(server.answers[case]) == _gist(sdk.answers[case]), case
    assert set(server.answers) == set(sdk.answers) - set(HOST_ONLY)
    for fast in (lanes["fast"], lanes["http-fast"]):
        gists = {case: _gist(fast.answers[case]) for case in _cases(fast)}
        who = gists["ok"][1]["principal"]
        assert gists["ok"] == ("ok", {"text": "hello", "principal": who, "role": "developer",
                                      "correlation_id": "<volatile>", "pid": "<volatile>"})
        assert gists["tool_error"] == gists["unknown_tool"] == ("tool-error", "not_found")
        assert gists["role"] == gists["forged_role"] == ("tool-error", "forbidden")
        assert gists["oversized"] == ("tool-error", "limit_exceeded")
        assert {gists[f"fail_{code.value}"] for code in ErrorCode} == {("tool-error", c.value) for c in ErrorCode}
        assert all(gists[name][0] == "jsonrpc-error" for name in JUNK), fast.lane
        assert gists["after_junk"][0] == "ok"
        pending = ("tool-error", "approval_required")
        assert gists["approval_pending"] == gists["approval_forged"] == gists["approval_spent"] == pending
        assert gists["approval_redeemed"] == ("ok", {"result": f"deleted db for {who}"})
        assert (gists["elicit_asked"], gists["elicit_accepted"][0]) == (("input_required",), "ok")
        assert (gists["timeout"], gists["child_dies"], gists["child_back"][0]) == (
            ("tool-error", "timeout"), ("tool-error", "unavailable"), "ok")
    assert lanes["http-fast"].answers["ok"]["result"]["structuredContent"]["principal"] == "dana"


def test_every_lane_audits_alike(lanes: dict[str, Transcript]) -> None:
    edge = {lane: [_audited(r) for r in t.edge_records()] for lane, t in lanes.items()}
    for slow, fast in PAIRS:
        assert edge[slow] == edge[fast], fast
        assert [_audited(r) for r in lanes[slow].child_records()] == [_audited(r) for r in lanes[fast].child_records()]
        assert [r[:3] for r in edge[fast][-3:]] == [
            ("alpha_hang", "error", "timeout"), ("alpha_crash", "error", "unavailable"), ("alpha_echo", "ok", None)]
    # The lone server has no timeout or supervisor: its records are the host's up to those cases.
    assert edge["server"] == edge["sdk"][:-3]
    outcomes = {(r[0], r[1], r[2]) for r in edge["server"]}
    assert ("alpha_admin", "denied", "forbidden") in outcomes
    assert ("alpha_fail", "denied", "forbidden") in outcomes  # a tool's own refusal is a denial too
    assert ("alpha_delete", "input_required", None) in outcomes
    assert ("alpha_delete", "pending", "approval_required") in outcomes
    assert ("alpha_echo", "error", "limit_exceeded") in outcomes


def test_a_cancelled_call_is_audited_cancelled_on_every_lane(lanes: dict[str, Transcript]) -> None:
    for transcript in lanes.values():
        hangs = [(r["outcome"], r["error_code"]) for r in transcript.edge_records() if r["tool"] == "alpha_hang"]
        if not transcript.http:
            assert hangs[0] == ("cancelled", None), transcript.lane
        if transcript.lane != "server":
            # The host cancelled its forward of the cancelled (stdio) and of the timed-out call: the child saw it.
            child = [(r["outcome"], r["error_code"]) for r in transcript.child_records() if r["tool"] == "alpha_hang"]
            assert child == [("cancelled", None)] * (1 if transcript.http else 2), transcript.lane


def test_forged_meta_is_ignored_on_every_lane(lanes: dict[str, Transcript]) -> None:
    for transcript in lanes.values():
        echoed = transcript.answers["forged_meta"]["result"]["structuredContent"]
        assert echoed["principal"] != "mallory" and echoed["correlation_id"] != FORGED_CORRELATION
        assert echoed["principal"] == transcript.answers["ok"]["result"]["structuredContent"]["principal"]
        assert all(r["principal"] != "mallory" for r in transcript.records), transcript.lane
        assert all(r["correlation_id"] != FORGED_CORRELATION for r in transcript.records), transcript.lane
        assert all(re.fullmatch(r"[0-9a-f]{16}", r["correlation_id"]) for r in transcript.records), transcript.lane


def test_the_host_gives_its_child_its_own_correlation_id(lanes: dict[str, Transcript]) -> None:
    for lane in HOST_LANES:
        transcript = lanes[lane]
        host = {r["correlation_id"]: r for r in transcript.records if r["server"] == "sophia"}
        # The host's own reads of the child's check (sophia://health) are the host's, not a caller's.
        children = [r for r in transcript.records if r["server"] == "alpha" and r["tool"] != "resources/read"]
        assert children
        for child in children:
            # Every call the child served came from the host, under the id the host recorded it with.
            assert host[child["correlation_id"]]["tool"] == child["tool"], lane
            assert host[child["correlation_id"]]["principal"] == child["principal"], lane
        echoed = transcript.answers["ok"]["result"]["structuredContent"]["correlation_id"]
        assert host[echoed]["tool"] == "alpha_echo"
    server = lanes["server"]
    assert len({r["correlation_id"] for r in server.records}) == len(server.records)


def test_the_fast_lane_took_every_plain_call(lanes: dict[str, Transcript]) -> None:
    for slow, fast in ((lanes[a], lanes[b]) for a, b in PAIRS):
        assert fast.expected_fast > len(PLAIN)
        assert fast.fast_calls == fast.expected_fast, fast.lane
        assert slow.fast_calls == 0, slow.lane


def test_no_answer_carries_a_traceback(lanes: dict[str, Transcript]) -> None:
    for transcript in lanes.values():
        assert "Traceback" not in json.dumps(transcript.answers), transcript.lane
    for lane in HOST_LANES:
        log = (lanes[lane].home.parent / "stderr.log").read_text(errors="replace")
        # The fast lane never falls over a frame: its boundaries would log these lines.
        assert "fast lane could not take a frame" not in log and "fast lane failed" not in log, lane
