"""Pulumi server benchmark: reading a 5,000-resource stack from file-backend state, and cold start.

1. A file backend with one stack of 5,000 custom resources (plus providers and components) in
   checkpoint v3 JSON, secret outputs included. Through `pulumi_list_resources` via the in-memory
   MCP client: the first page, an exact-type filter, a wildcard filter, a name filter, and a
   full walk of all pages (p50/p99). The checkpoint is parsed once and cached by (mtime, size);
   the cost of a re-parse after the file changes is measured separately.
2. Cold start: `python -m sophia_pulumi` spawned over stdio with the SDK client, spawn ->
   initialize -> tools/list (p50 over runs); and, in a fresh interpreter, which of the Pulumi
   SDK's heavy modules (pulumi, grpc, google.protobuf, semver) are loaded after tools/list.

No Pulumi CLI is involved: reads from a file backend never need it.

Run: uv run --frozen python -m bench.pulumi [--resources N] [--iterations N] [--cold-runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from sophia_pulumi.settings import PulumiSettings
from sophia_pulumi.tools import build_server
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect, structured

from bench.common import peak_rss_mb, percentiles, write_result

SIG = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}
TYPES = [
    "aws:s3/bucket:Bucket",
    "aws:ec2/instance:Instance",
    "aws:iam/role:Role",
    "aws:lambda/function:Function",
    "random:index/randomPassword:RandomPassword",
]
HEAVY = """
import json, sys, time, anyio
t0 = time.perf_counter()
from sophia_pulumi.settings import PulumiSettings
from sophia_pulumi.tools import build_server
from sophia_shared.testing import connect

async def main():
    async with connect(build_server(PulumiSettings())) as client:
        names = [t.name for t in await client.list_tools()]
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("pulumi", "grpc", "semver")
                   or m.startswith("google.protobuf"))
    print(json.dumps({"tools": len(names), "heavy": heavy, "s": time.perf_counter() - t0}))

anyio.run(main)
"""


def write_stack(root: Path, n: int) -> Path:
    """Checkpoint v3 of project `bench`, stack `big`, with `n` custom resources."""
    prefix = "urn:pulumi:big::bench::"
    stack_urn = f"{prefix}pulumi:pulumi:Stack::bench-big"
    resources: list[dict[str, Any]] = [
        {
            "urn": stack_urn,
            "custom": False,
            "type": "pulumi:pulumi:Stack",
            "outputs": {"url": "https://bench.example.test", "token": {**SIG, "ciphertext": "v1:AAAA:BBBB"}},
        }
    ]
    providers = {}
    for pkg in ("aws", "random"):
        urn = f"{prefix}pulumi:providers:{pkg}::default"
        providers[pkg] = f"{urn}::{pkg}-provider-id"
        resources.append(
            {
                "urn": urn,
                "custom": True,
                "id": f"{pkg}-provider-id",
                "type": f"pulumi:providers:{pkg}",
                "parent": stack_urn,
            }
        )
    component = stack_urn
    for i in range(n):
        if i % 10 == 0:
            component = f"{prefix}my:app:Service::svc-{i // 10}"
            resources.append({"urn": component, "custom": False, "type": "my:app:Service", "parent": stack_urn})
        rtype = TYPES[i % len(TYPES)]
        name = f"{rtype.rsplit(':', 1)[-1].lower()}-{i}"
        resources.append(
            {
                "urn": f"{prefix}my:app:Service${rtype}::{name}",
                "custom": True,
                "id": f"{name}-id",
                "type": rtype,
                "parent": component,
                "provider": providers[rtype.split(":", 1)[0]],
                "inputs": {"name": name, "tags": {"team": "platform", "index": str(i)}},
                "outputs": {
                    "name": name,
                    "arn": f"arn:aws:bench:{i}",
                    "tags": {"team": "platform"},
                    "secret": {**SIG, "ciphertext": "v1:AAAA:BBBB"},
                },
                "dependencies": [],
                "created": "2026-11-21T00:00:00Z",
                "modified": "2026-11-21T00:00:00Z",
            }
        )
    latest = {
        "manifest": {"time": "2026-11-21T00:00:00Z", "magic": "", "version": "v3.200.0"},
        "secrets_providers": {"type": "passphrase", "state": {"salt": "v1:AAAA:v1:BBBB:CCCC"}},
        "resources": resources,
        "pending_operations": [],
    }
    path = root / ".pulumi" / "stacks" / "bench" / "big.json"
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps({"version": 3, "checkpoint": {"stack": "organization/bench/big", "latest": latest}}, indent=4)
    )
    return path


async def timed_calls(
    settings: PulumiSettings, cases: dict[str, dict[str, Any]], iterations: int, state_file: Path
) -> dict[str, Any]:
    server = build_server(settings)
    out: dict[str, Any] = {}
    async with connect(server, principal=Principal("bench", Role.VIEWER, kind="test")) as client:
        await client.call("pulumi_list_resources", {"project": "bench", "stack": "big", "limit": 1})  # parse once
        for name, args in cases.items():
            samples = []
            last: dict[str, Any] = {}
            for _ in range(iterations):
                t0 = time.perf_counter()
                result = await client.call("pulumi_list_resources", {"project": "bench", "stack": "big", **args})
                samples.append(time.perf_counter() - t0)
                last = structured(result)
            out[name] = {**percentiles(samples), "matched": last["total"], "returned": len(last["resources"])}
        walk = []
        for _ in range(max(3, iterations // 20)):
            t0 = time.perf_counter()
            cursor, seen = None, 0
            while True:
                args = {"project": "bench", "stack": "big", "limit": 1000, **({"cursor": cursor} if cursor else {})}
                page = structured(await client.call("pulumi_list_resources", args))
                seen += len(page["resources"])
                cursor = page["next_cursor"]
                if not cursor:
                    break
            walk.append(time.perf_counter() - t0)
        out["walk_all_pages_of_1000"] = {**percentiles(walk), "returned": seen}
        reparse = []
        for i in range(max(5, iterations // 10)):
            os.utime(state_file, ns=(time.time_ns(), time.time_ns() + i))  # new mtime: cache miss
            t0 = time.perf_counter()
            await client.call("pulumi_list_resources", {"project": "bench", "stack": "big", "limit": 10})
            reparse.append(time.perf_counter() - t0)
        out["first_page_after_state_changed"] = percentiles(reparse)
    # The same calls without the MCP client: the SDK client validates every structured result
    # against the tool's output schema (jsonschema), which costs more than the server's own work.
    server_side: dict[str, Any] = {}
    for name, args in cases.items():
        samples = []
        for _ in range(iterations):
            t0 = time.perf_counter()
            direct = await server.call_tool("pulumi_list_resources", {"project": "bench", "stack": "big", **args})
            samples.append(time.perf_counter() - t0)
            assert not getattr(direct, "is_error", False)
        server_side[name] = percentiles(samples)
    out["server_side_request_path"] = server_side
    return out


async def cold_start(runs: int, home: Path) -> dict[str, Any]:
    env = {**os.environ, "SOPHIA_HOME": str(home), "SOPHIA_PULUMI_CLI": str(home / "none" / "bin" / "pulumi")}
    samples = []
    for _ in range(runs):
        params = StdioServerParameters(command=sys.executable, args=["-m", "sophia_pulumi"], env=env)
        t0 = time.perf_counter()
        async with Client(params) as client:
            tools = (await client.list_tools()).tools
        samples.append(time.perf_counter() - t0)
        assert len(tools) == 10
    probe = subprocess.run(
        [sys.executable, "-c", HEAVY], env=env, capture_output=True, text=True, check=True, timeout=120
    )
    report = json.loads(probe.stdout.strip().splitlines()[-1])
    return {
        "stdio_spawn_to_tools_list": percentiles(samples),
        "in_process_import_to_tools_list_s": round(report["s"], 3),
        "heavy_modules_loaded_after_tools_list": report["heavy"],
    }


async def run(resources: int, iterations: int, cold_runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-pulumi-") as tmp:
        base = Path(tmp)
        os.environ["SOPHIA_HOME"] = str(base / "home")
        state_file = write_stack(base / "state", resources)
        settings = PulumiSettings(
            backend_url=(base / "state").as_uri(), projects_dir=base / "projects", cli=base / "none" / "bin" / "pulumi"
        )
        cases: dict[str, dict[str, Any]] = {
            "first_page_100": {"limit": 100},
            "type_exact_page_100": {"type": "aws:iam/role:Role", "limit": 100},
            "type_wildcard_page_100": {"type": "aws:*", "limit": 100},
            "name_contains_page_100": {"name_contains": "function-4", "limit": 100},
        }
        state_mb = round(state_file.stat().st_size / 1e6, 2)
        listing = await timed_calls(settings, cases, iterations, state_file)
        cold = await cold_start(cold_runs, base / "home")
    result = {
        "resources_in_stack": resources,
        "state_file_mb": state_mb,
        "listing": listing,
        "cold_start": cold,
        "peak_rss_mb": peak_rss_mb(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }
    summary = (
        f"{resources} resources: first page of 100 via MCP client p50 {listing['first_page_100']['p50_ms']} ms / "
        f"p99 {listing['first_page_100']['p99_ms']} ms (server side p50 "
        f"{listing['server_side_request_path']['first_page_100']['p50_ms']} ms), type filter p50 "
        f"{listing['type_exact_page_100']['p50_ms']} ms / p99 {listing['type_exact_page_100']['p99_ms']} ms, "
        f"re-parse after change p50 {listing['first_page_after_state_changed']['p50_ms']} ms; "
        f"cold start stdio->tools/list p50 {cold['stdio_spawn_to_tools_list']['p50_ms']} ms, heavy SDK modules "
        f"loaded: {len(cold['heavy_modules_loaded_after_tools_list'])}"
    )
    write_result("pulumi", result, summary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--resources", type=int, default=5000)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--cold-runs", type=int, default=5)
    args = parser.parse_args()
    anyio.run(run, args.resources, args.iterations, args.cold_runs)


if __name__ == "__main__":
    main()
