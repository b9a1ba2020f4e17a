"""OpenTelemetry, opt-in: one span per call on the host and one on its child, in one trace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fixtures.dashboard_host import error_of, start_dashboard_host
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect, error_code, structured

from .conftest import child_entry, running_host


@pytest.mark.anyio
async def test_a_forwarded_call_is_one_trace_across_host_and_child(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    spans_file = tmp_path / "spans.jsonl"
    monkeypatch.setenv("SOPHIA_OTEL", "1")
    monkeypatch.setenv("SOPHIA_OTEL_FILE", str(spans_file))  # the child gets both: suite-wide settings
    async with running_host([child_entry("alpha")]) as host, \
            connect(host, principal=Principal("alice", Role.DEVELOPER, kind="token")) as client:
        echoed = structured(await client.call("alpha_echo", {"text": "traced"}))
        assert error_code(await client.call("alpha_fail", {"code": "not_found"})) == "not_found"
    spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    by_service: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_service.setdefault(span["resource"]["attributes"]["service.name"], []).append(span)
    host_echo = next(s for s in by_service["sophia-sophia"] if s["attributes"]["sophia.tool"] == "alpha_echo")
    child_echo = next(s for s in by_service["sophia-alpha"] if s["attributes"]["sophia.tool"] == "alpha_echo")
    assert child_echo["context"]["trace_id"] == host_echo["context"]["trace_id"]
    assert child_echo["parent_id"] == host_echo["context"]["span_id"]
    assert host_echo["parent_id"] is None
    assert host_echo["attributes"]["sophia.correlation_id"] == echoed["correlation_id"]
    assert host_echo["attributes"]["sophia.outcome"] == child_echo["attributes"]["sophia.outcome"] == "ok"
    failed = [s for s in spans if s["attributes"]["sophia.tool"] == "alpha_fail"]
    assert len(failed) == 2 and all(s["status"]["status_code"] == "ERROR" for s in failed)
    assert all(s["attributes"]["sophia.error_code"] == "not_found" for s in failed)
    assert {s["context"]["trace_id"] for s in failed} != {host_echo["context"]["trace_id"]}  # another call


def _spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_http_fast_lane_traces_the_same_way(tmp_path: Path) -> None:
    spans_file = tmp_path / "spans.jsonl"
    host = start_dashboard_host(tmp_path / "host", env={"SOPHIA_OTEL": "1", "SOPHIA_OTEL_FILE": str(spans_file)})
    try:
        host.create_token("ada", "developer")
        with httpx.Client(timeout=60.0) as client:
            assert "demo_echo" in host.tool_names(client, "ada")
            assert error_of(host.call(client, "ada", "demo_echo", {"text": "fast"})) is None
    finally:
        host.stop()  # its spans are written as each ends; stopping also flushes nothing left behind
    echo = [s for s in _spans(spans_file) if s["attributes"]["sophia.tool"] == "demo_echo"]
    services = {s["resource"]["attributes"]["service.name"]: s for s in echo}
    assert set(services) == {"sophia-sophia", "sophia-demo"}
    edge, child = services["sophia-sophia"], services["sophia-demo"]
    assert child["context"]["trace_id"] == edge["context"]["trace_id"]
    assert child["parent_id"] == edge["context"]["span_id"]
