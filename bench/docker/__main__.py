"""bench/docker: the Docker server against a private, real dockerd started here (stopped by PID at the end).

1. Listing 50 containers, calls interleaved so all three see the same machine load: the bare SDK's
   `APIClient.containers`; the server's request path called directly (`SophiaServer.call_tool`:
   validation, role, engine call, projection, serialisation, audit); and the same tool through the
   in-memory MCP client, which also validates the structured result against the output schema
   (jsonschema, on the client's side). p50/p99 of each and the overheads against the bare SDK.
2. Logs of a container that wrote 100 MB: `docker_container_logs` with the whole log requested
   (tail=null), returned capped to the newest 64 KB (served from growing engine-side tails); the
   same with `until` set, which makes all 100 MB stream through the cap; the default tail of 200
   lines. Wall time, bytes read and this process's peak RSS before and after. The bare SDK reading
   the same log into memory runs last, for contrast (it raises the peak, so nothing after it is
   measured).

No timing is asserted anywhere; the numbers go to bench/results/docker.json.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from sophia_docker.settings import DockerSettings
from sophia_docker.tools import build_server
from sophia_shared.server import Principal, Role
from sophia_shared.testing import connect, structured

from bench.common import peak_rss_mb, percentiles, write_result

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS = int(os.environ.get("BENCH_DOCKER_CONTAINERS", "50"))
CALLS = int(os.environ.get("BENCH_CALLS", "300"))
LOG_MB = int(os.environ.get("BENCH_DOCKER_LOG_MB", "100"))
WARMUP = 20
LINE = "sophia-bench " + "x" * 86  # 100 bytes with the newline


def _current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _make_containers(api: Any, image: str) -> list[str]:
    ids = []
    for i in range(CONTAINERS):
        created = api.create_container(
            image,
            ["sleep", "3600"],
            name=f"bench-{i:03d}",
            labels={"bench": "list"},
            host_config=api.create_host_config(network_mode="none"),
            stop_signal="SIGKILL",
        )
        api.start(created["Id"])
        ids.append(created["Id"])
    return ids


def _make_logger(api: Any, image: str) -> str:
    created = api.create_container(
        image,
        ["sh", "-c", f"yes '{LINE}' | head -c {LOG_MB * 1024 * 1024}"],
        name="bench-logger",
        host_config=api.create_host_config(network_mode="none"),
    )
    api.start(created["Id"])
    api.wait(created["Id"], timeout=600)
    return str(created["Id"])


async def _bench(api: Any, settings: DockerSettings) -> dict[str, Any]:
    server = build_server(settings)
    # Direct calls run as the local stdio principal; make it able to list.
    server.local_principal = Principal("bench", Role.DEVOPS, kind="local")
    who = Principal("bench", Role.DEVOPS)
    bare: list[float] = []
    direct: list[float] = []
    tool: list[float] = []
    async with connect(server, principal=who) as client:
        arguments = {"all": True, "limit": 50}
        outputs: dict[str, Any] = {}

        async def bare_call() -> float:
            started = time.perf_counter()
            outputs["raw"] = await anyio.to_thread.run_sync(lambda: api.containers(all=True))
            return time.perf_counter() - started

        async def direct_call() -> float:
            started = time.perf_counter()
            outputs["served"] = await server.call_tool("docker_list_containers", arguments)
            return time.perf_counter() - started

        async def client_call() -> float:
            started = time.perf_counter()
            outputs["result"] = await client.call("docker_list_containers", arguments)
            return time.perf_counter() - started

        for i in range(CALLS + WARMUP):
            # Alternate the order, so neither variant always runs first in a round.
            if i % 2:
                tool_s, direct_s, bare_s = await client_call(), await direct_call(), await bare_call()
            else:
                bare_s, direct_s, tool_s = await bare_call(), await direct_call(), await client_call()
            if i >= WARMUP:  # warm-up: connections, imports, first audit writes
                bare.append(bare_s)
                direct.append(direct_s)
                tool.append(tool_s)
        listed = structured(outputs["result"])
        assert len(outputs["raw"]) >= CONTAINERS and len(listed["containers"]) == 50, listed["total"]
        assert not outputs["served"].is_error

        rss_before_logs = _current_rss_mb()
        peak_before_logs = peak_rss_mb()
        started = time.perf_counter()
        logs = await client.call("docker_container_logs", {"container": "bench-logger", "tail": None})
        logs_s = time.perf_counter() - started
        body = structured(logs)
        peak_after_logs = peak_rss_mb()
        started = time.perf_counter()
        tail = structured(await client.call("docker_container_logs", {"container": "bench-logger"}))
        tail_s = time.perf_counter() - started
        # With `until`, the engine cannot serve a tail, so all 100 MB stream through the cap.
        until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        started = time.perf_counter()
        streamed = structured(
            await client.call("docker_container_logs", {"container": "bench-logger", "tail": None, "until": until})
        )
        streamed_s = time.perf_counter() - started
        peak_after_streamed = peak_rss_mb()

    started = time.perf_counter()
    sdk_bytes = len(await anyio.to_thread.run_sync(lambda: api.logs("bench-logger")))
    sdk_logs_s = time.perf_counter() - started
    peak_after_sdk = peak_rss_mb()

    bare_p, direct_p, tool_p = percentiles(bare), percentiles(direct), percentiles(tool)
    return {
        "list_containers": {
            "containers": CONTAINERS,
            "calls": CALLS,
            "bare_sdk": bare_p,
            "server_request_path": direct_p,
            "tool_via_in_memory_client": tool_p,
            # Paired per-iteration differences cancel most of the machine's load swings.
            "server_overhead_paired_median_ms": round(
                statistics.median(d - b for d, b in zip(direct, bare, strict=True)) * 1000, 3
            ),
            "client_overhead_paired_median_ms": round(
                statistics.median(t - b for t, b in zip(tool, bare, strict=True)) * 1000, 3
            ),
            "server_overhead_p50_ms": round(direct_p["p50_ms"] - bare_p["p50_ms"], 3),
            "server_overhead_p99_ms": round(direct_p["p99_ms"] - bare_p["p99_ms"], 3),
            "client_overhead_p50_ms": round(tool_p["p50_ms"] - bare_p["p50_ms"], 3),
            "client_overhead_p99_ms": round(tool_p["p99_ms"] - bare_p["p99_ms"], 3),
        },
        "logs_100mb": {
            "log_written_mb": LOG_MB,
            "tool_whole_log": {
                "wall_s": round(logs_s, 3),
                "bytes_read": body["bytes_read"],
                "returned_chars": len(body["logs"]),
                "returned_lines": body["lines"],
                "truncated": body["truncated"],
            },
            "tool_default_tail_200": {"wall_ms": round(tail_s * 1000, 2), "lines": tail["lines"]},
            "tool_whole_log_streamed_through_cap": {
                "wall_s": round(streamed_s, 3),
                "bytes_read": streamed["bytes_read"],
                "returned_chars": len(streamed["logs"]),
                "truncated": streamed["truncated"],
                "same_text_as_tail_path": streamed["logs"] == body["logs"],
                "peak_rss_mb_after": peak_after_streamed,
            },
            "rss_mb_before": rss_before_logs,
            "peak_rss_mb_before": peak_before_logs,
            "peak_rss_mb_after_tool": peak_after_logs,
            "peak_rss_growth_mb_tool": round(peak_after_streamed - peak_before_logs, 1),
            "bare_sdk_read_all": {
                "wall_s": round(sdk_logs_s, 3),
                "bytes": sdk_bytes,
                "peak_rss_mb_after": peak_after_sdk,
            },
        },
    }


def main() -> None:
    """Start a private dockerd, run both measurements, stop it, write the result."""
    sys.path.insert(0, str(ROOT / "tests"))
    import docker
    from servers.docker.engine import TEST_IMAGE, import_image, start_engine

    workdir = Path(tempfile.mkdtemp(prefix="sophia-bench-docker-"))
    engine = start_engine(workdir)
    try:
        api = docker.APIClient(base_url=engine.url, version="auto", timeout=600)
        import_image(api, TEST_IMAGE)
        setup_started = time.perf_counter()
        _make_containers(api, TEST_IMAGE)
        _make_logger(api, TEST_IMAGE)
        setup_s = time.perf_counter() - setup_started
        settings = DockerSettings(host=engine.url, timeout_s=600)
        result = anyio.run(_bench, api, settings)
        result["setup_s"] = round(setup_s, 1)
        result["engine"] = api.version().get("Version")
        api.close()
    finally:
        engine.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    listing, logs = result["list_containers"], result["logs_100mb"]
    summary = (
        f"list {CONTAINERS} containers p50: bare SDK {listing['bare_sdk']['p50_ms']:.2f} ms, server path "
        f"{listing['server_request_path']['p50_ms']:.2f} ms (paired median overhead "
        f"{listing['server_overhead_paired_median_ms']:.2f} ms; p99 {listing['server_request_path']['p99_ms']:.2f} vs "
        f"{listing['bare_sdk']['p99_ms']:.2f} ms), via in-memory client "
        f"{listing['tool_via_in_memory_client']['p50_ms']:.2f} ms; {LOG_MB} MB log, newest "
        f"{logs['tool_whole_log']['returned_chars']} chars in {logs['tool_whole_log']['wall_s']:.2f} s "
        f"(all {LOG_MB} MB streamed through the cap: "
        f"{logs['tool_whole_log_streamed_through_cap']['wall_s']:.1f} s), peak RSS growth "
        f"+{logs['peak_rss_growth_mb_tool']} MB to {logs['tool_whole_log_streamed_through_cap']['peak_rss_mb_after']}"
        f" MB; bare SDK read-all peaks at {logs['bare_sdk_read_all']['peak_rss_mb_after']} MB"
    )
    write_result("docker", result, summary)


if __name__ == "__main__":
    main()
