"""The file-backend reader over real checkpoint v3 files written in Pulumi's format."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from servers.pulumi.environments import Backend
from servers.pulumi.state_fixtures import SIG
from sophia_pulumi.state import (
    OUTPUT_SIG,
    SECRET_MASK,
    FileBackend,
    StateError,
    contains_secret,
    mask_secrets,
    parse_checkpoint,
    read_stack_config,
)


def test_projects_and_stacks_including_gzip(read_backend: Backend) -> None:
    backend = FileBackend(read_backend.root)
    assert backend.projects() == ["network", "webapp"]
    assert [s.name for s in backend.stacks("network")] == ["dev", "sandbox"]
    assert backend.stack_file("network", "dev") is not None
    assert backend.stack_file("network", "dev").path.name == "dev.json.gz"  # type: ignore[union-attr]
    assert backend.stack_file("webapp", "qa") is None
    assert backend.stacks("ghost") == []


def test_snapshot_projection_and_cache(read_backend: Backend) -> None:
    backend = FileBackend(read_backend.root)
    entry = backend.stack_file("webapp", "staging")
    assert entry is not None
    snap = backend.snapshot(entry)
    assert snap.stack == "organization/webapp/staging"
    assert len(snap.resources) == 120 + 3 + 12
    bucket = next(r for r in snap.resources if r.type == "aws:s3/bucket:Bucket")
    assert bucket.name == "bucket-0" and bucket.custom and bucket.resource_id == "bucket-0-00000"
    assert bucket.provider == "urn:pulumi:staging::webapp::pulumi:providers:aws::default_6_0_0"
    assert backend.snapshot(entry) is snap  # unchanged file: served from the cache


def test_snapshot_cache_notices_a_rewrite(tmp_path: Path) -> None:
    stacks = tmp_path / ".pulumi" / "stacks" / "p"
    stacks.mkdir(parents=True)
    path = stacks / "s.json"
    doc = {"version": 3, "checkpoint": {"stack": "organization/p/s", "latest": {"resources": []}}}
    path.write_text(json.dumps(doc))
    backend = FileBackend(tmp_path)
    entry = backend.stack_file("p", "s")
    assert entry is not None
    assert backend.snapshot(entry).resources == ()
    doc["checkpoint"]["latest"] = {"resources": [{"urn": "urn:pulumi:s::p::t:m:R::x", "type": "t:m:R"}]}  # type: ignore[index]
    path.write_text(json.dumps(doc, indent=2))
    assert [r.name for r in backend.snapshot(entry).resources] == ["x"]


@pytest.mark.parametrize(
    "raw",
    [
        {"version": 2, "checkpoint": {}},
        {"version": 3},
        [],
        {"version": 3, "checkpoint": {"latest": {"resources": [{}]}}},
    ],
)
def test_malformed_checkpoints_are_state_errors(raw: object) -> None:
    with pytest.raises(StateError):
        parse_checkpoint(raw)  # type: ignore[arg-type]


def test_secret_helpers() -> None:
    value = {"a": 1, "b": [{**SIG, "ciphertext": "v1:x:y"}], "c": {"d": 2}}
    assert mask_secrets(value) == {"a": 1, "b": [SECRET_MASK], "c": {"d": 2}}
    assert contains_secret(value) and not contains_secret({"a": [1, {"b": 2}]})


def test_output_values_of_checkpoint_v4() -> None:
    out_sig = "4dabf18193072939515e22adb298388d"
    plain = {out_sig: OUTPUT_SIG, "value": {"host": "db"}, "dependencies": ["urn:x"]}
    hidden = {out_sig: OUTPUT_SIG, "value": "pw", "secret": True}
    unknown = {out_sig: OUTPUT_SIG, "dependencies": []}
    assert mask_secrets({"p": plain, "h": hidden, "u": unknown}) == {
        "p": {"host": "db"},
        "h": SECRET_MASK,
        "u": "[unknown]",
    }
    assert contains_secret({"h": hidden}) and not contains_secret({"p": plain})


def test_history_is_newest_first_with_versions(read_backend: Backend) -> None:
    history = FileBackend(read_backend.root).history("webapp", "staging")
    assert [h["version"] for h in history] == [3, 2, 1]
    assert history[0]["kind"] == "refresh" and history[1]["result"] == "failed"
    assert history[2]["start_time"] == "2025-11-13T02:13:20Z"


def test_stack_config_file(read_backend: Backend, tmp_path: Path) -> None:
    config = read_stack_config(read_backend.projects / "webapp", "dev")
    assert config is not None
    assert set(config["webapp:dbPassword"]) == {"secure"}
    assert read_stack_config(read_backend.projects / "webapp", "qa") is None
    (tmp_path / "Pulumi.bad.yaml").write_text("config: [1, 2]\n")
    with pytest.raises(StateError):
        read_stack_config(tmp_path, "bad")


def test_compressed_and_newest_state_files(tmp_path: Path) -> None:
    stacks = tmp_path / ".pulumi" / "stacks" / "p"
    history = tmp_path / ".pulumi" / "history" / "p" / "s"
    stacks.mkdir(parents=True)
    history.mkdir(parents=True)
    old = {"version": 3, "checkpoint": {"stack": "organization/p/s", "latest": {"resources": []}}}
    new = {
        "version": 3,
        "checkpoint": {"latest": {"resources": [{"urn": "urn:pulumi:s::p::t:m:R::x", "type": "t:m:R"}]}},
    }
    (stacks / "s.json").write_text(json.dumps(old))
    os.utime(stacks / "s.json", ns=(1, 1))
    (stacks / "s.json.gz").write_bytes(gzip.compress(json.dumps(new).encode()))
    (stacks / "z.json.zst").write_bytes(b"\x28\xb5\x2f\xfd")
    info = {"kind": "update", "result": "succeeded", "startTime": 1, "endTime": 2}
    (history / "s-100.history.json.gz").write_bytes(gzip.compress(json.dumps(info).encode()))
    (history / "s-200.history.json").write_text(json.dumps({**info, "kind": "refresh"}))
    (history / "s-200.checkpoint.json").write_text("{}")
    backend = FileBackend(tmp_path)
    entry = backend.stack_file("p", "s")
    assert entry is not None and entry.path.name == "s.json.gz"  # the most recently written
    assert [r.name for r in backend.snapshot(entry).resources] == ["x"]
    zst = backend.stack_file("p", "z")
    assert zst is not None
    with pytest.raises(StateError, match="zstd"):
        backend.snapshot(zst)
    assert [(h["version"], h["kind"]) for h in backend.history("p", "s")] == [(2, "refresh"), (1, "update")]
