"""OpenTelemetry, opt-in: one span per call on the host and one on its child, in one trace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect, error_code, structured

from .conftest import child_entry, running_host

pytestmark = pytest.mark.anyio


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
