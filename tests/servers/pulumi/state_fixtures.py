"""Writes a real Pulumi file backend: checkpoint v3 stacks, history files, stack config.

The layout and formats are Pulumi's own (project-scoped DIY backend, checkpoint version 3, secret
values as {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": ...}
encrypted by the passphrase provider, `secure:` config values, history as UpdateInfo JSON), so the
same directory could be read by the real CLI given the passphrase.
"""

from __future__ import annotations

import gzip
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]
from servers.pulumi.standin import passphrase

SIG = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}
PASSPHRASE = "correct horse battery staple"
EPOCH = 1_763_000_000  # fixed, so fixtures are reproducible
TYPES = [
    "aws:s3/bucket:Bucket",
    "aws:ec2/instance:Instance",
    "aws:iam/role:Role",
    "aws:lambda/function:Function",
    "random:index/randomPassword:RandomPassword",
]


@dataclass(frozen=True)
class StackSpec:
    project: str
    stack: str
    resources: int
    history: int = 4
    gzip: bool = False
    empty: bool = False


def secret(key: bytes, value: Any) -> dict[str, Any]:
    return {**SIG, "ciphertext": passphrase.encrypt(key, json.dumps(value))}


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(ts))


def build_resources(project: str, stack: str, n: int, key: bytes) -> list[dict[str, Any]]:
    """A stack resource, two default providers, components of 10 and `n` custom resources."""
    prefix = f"urn:pulumi:{stack}::{project}::"
    stack_urn = f"{prefix}pulumi:pulumi:Stack::{project}-{stack}"
    providers = {}
    resources: list[dict[str, Any]] = [
        {
            "urn": stack_urn,
            "custom": False,
            "type": "pulumi:pulumi:Stack",
            "outputs": {
                "url": f"https://{project}-{stack}.example.test",
                "bucket_names": [f"{project}-{stack}-assets-{i}" for i in range(3)],
                "replicas": 3,
                "db_password": secret(key, f"pw-{project}-{stack}"),
                "db": {"host": f"db.{stack}.internal", "password": secret(key, "nested-secret")},
            },
            "created": iso(EPOCH),
            "modified": iso(EPOCH),
        }
    ]
    for pkg, version in (("aws", "6_0_0"), ("random", "4_16_0")):
        urn = f"{prefix}pulumi:providers:{pkg}::default_{version}"
        pid = str(uuid.uuid5(uuid.NAMESPACE_URL, urn))
        providers[pkg] = f"{urn}::{pid}"
        resources.append(
            {
                "urn": urn,
                "custom": True,
                "id": pid,
                "type": f"pulumi:providers:{pkg}",
                "inputs": {"version": version.replace("_", ".")},
                "outputs": {},
                "parent": stack_urn,
            }
        )
    component = None
    for i in range(n):
        if i % 10 == 0:
            component = f"{prefix}my:app:Service::svc-{i // 10}"
            resources.append(
                {"urn": component, "custom": False, "type": "my:app:Service", "parent": stack_urn, "outputs": {}}
            )
        rtype = TYPES[i % len(TYPES)]
        name = f"{rtype.rsplit(':', 1)[-1].lower()}-{i}"
        urn = f"{prefix}my:app:Service${rtype}::{name}"
        outputs: dict[str, Any] = {"arn": f"arn:aws:{i}", "tags": {"stack": stack}}
        if rtype.startswith("random:"):
            outputs["result"] = secret(key, f"generated-{i}")
        resources.append(
            {
                "urn": urn,
                "custom": True,
                "id": f"{name}-{i:05d}",
                "type": rtype,
                "inputs": {"name": name},
                "outputs": outputs,
                "parent": component,
                "provider": providers[rtype.split(":", 1)[0]],
                "dependencies": [],
                "propertyDependencies": {},
                "created": iso(EPOCH + i),
                "modified": iso(EPOCH + i),
            }
        )
    return resources


# One salt for every fixture stack (Pulumi allows any salt per stack): one key derivation in all.
FIXTURE_SALT = b"sophia-1"


def write_stack(root: Path, projects_dir: Path, spec: StackSpec, *, pending_delete: bool = False) -> None:
    salt_state, key = passphrase.new_salt_state(PASSPHRASE, FIXTURE_SALT)
    project_dir = projects_dir / spec.project
    project_dir.mkdir(parents=True, exist_ok=True)
    if not (project_dir / "Pulumi.yaml").exists():
        (project_dir / "Pulumi.yaml").write_text(
            yaml.safe_dump({"name": spec.project, "runtime": "python", "description": "fixture project"})
        )
    config = {
        f"{spec.project}:region": "eu-west-1",
        f"{spec.project}:replicas": "3",
        f"{spec.project}:dbPassword": {"secure": passphrase.encrypt(key, f"db-{spec.stack}-secret")},
        "aws:region": "eu-west-1",
        f"{spec.project}:tags": {"team": "platform", "cost": "42"},
        f"{spec.project}:db": {"user": "admin", "password": {"secure": passphrase.encrypt(key, "nested-pw")}},
    }
    (project_dir / f"Pulumi.{spec.stack}.yaml").write_text(
        yaml.safe_dump({"encryptionsalt": salt_state, "config": config})
    )
    stacks_dir = root / ".pulumi" / "stacks" / spec.project
    stacks_dir.mkdir(parents=True, exist_ok=True)
    latest: dict[str, Any] | None = None
    if not spec.empty:
        resources = build_resources(spec.project, spec.stack, spec.resources, key)
        if pending_delete and len(resources) > 5:
            resources.append({**resources[5], "delete": True})
        latest = {
            "manifest": {"time": iso(EPOCH + 3600 * spec.history), "magic": "", "version": "v3.200.0"},
            "secrets_providers": {"type": "passphrase", "state": {"salt": salt_state}},
            "resources": resources,
            "pending_operations": [],
        }
    doc = {"version": 3, "checkpoint": {"stack": f"organization/{spec.project}/{spec.stack}", "latest": latest}}
    data = json.dumps(doc, indent=4).encode()
    if spec.gzip:
        (stacks_dir / f"{spec.stack}.json.gz").write_bytes(gzip.compress(data))
    else:
        (stacks_dir / f"{spec.stack}.json").write_bytes(data)
        (stacks_dir / f"{spec.stack}.json.bak").write_bytes(data)
    meta = root / ".pulumi" / "meta.yaml"
    meta.write_text("version: 1\n")
    history = root / ".pulumi" / "history" / spec.project / spec.stack
    history.mkdir(parents=True, exist_ok=True)
    for n in range(spec.history):
        start = EPOCH + 3600 * n
        kind = "update" if n % 3 != 2 else "refresh"
        info = {
            "kind": kind,
            "startTime": start,
            "message": f"change #{n + 1}",
            "environment": {"exec.kind": "cli"},
            "config": {
                f"{spec.project}:region": "eu-west-1",
                f"{spec.project}:dbPassword": config[f"{spec.project}:dbPassword"],
            },
            "result": "failed" if n == 1 else "succeeded",
            "endTime": start + 42,
            "resourceChanges": {"create": spec.resources} if n == 0 else {"same": spec.resources, "update": n},
        }
        stamp = start * 1_000_000_000
        (history / f"{spec.stack}-{stamp}.history.json").write_text(json.dumps(info, indent=4))
        (history / f"{spec.stack}-{stamp}.checkpoint.json").write_bytes(data)


READ_FIXTURE = [
    StackSpec("webapp", "dev", 250, history=5),
    StackSpec("webapp", "staging", 120, history=3),
    StackSpec("webapp", "prod", 400, history=6),
    StackSpec("network", "dev", 60, history=2, gzip=True),
    StackSpec("network", "sandbox", 0, history=0, empty=True),
]


def write_read_fixture(root: Path, projects_dir: Path) -> None:
    for spec in READ_FIXTURE:
        write_stack(root, projects_dir, spec, pending_delete=spec.stack == "dev" and spec.project == "webapp")
