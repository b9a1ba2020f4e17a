"""bench/tools_list: tools/list bytes per server and through the host, for a developer-role caller,
before (a baseline commit) and after (this checkout), in one run (issue 15, point 8).

The baseline is BENCH_TOOLS_LIST_BASE (default: main when issue 15's work began) unpacked by `git archive`
into bench/.tools-list-base (gitignored, reused) with its own `uv sync`. Both checkouts are measured
by bench/tools_list/measure.py with their own Python: each server in process (what it lists to a
developer, and everything it offers), and `sophia up --transport stdio` as a developer (the six servers
composed, on embedded defaults: unconfigured Gong and Retool list only what works without accounts).
Target: the host's developer listing at least a third smaller.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import write_result

ROOT = Path(__file__).resolve().parents[2]
MEASURE = Path(__file__).with_name("measure.py")
BASE_REV = os.environ.get("BENCH_TOOLS_LIST_BASE", "277a09d")
BASE_DIR = ROOT / "bench" / ".tools-list-base"


def _baseline() -> Path:
    """A synced worktree of BASE_REV; its python."""
    if not (BASE_DIR / ".venv" / "bin" / "python").exists():
        BASE_DIR.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASE_REV], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(BASE_DIR)], input=archive.stdout, check=True)
        env = {**os.environ, "UV_LINK_MODE": "copy"}
        subprocess.run(["uv", "sync", "--all-packages", "--frozen", "--compile-bytecode", "-q"], cwd=BASE_DIR,
                       check=True, env=env)
    return BASE_DIR / ".venv" / "bin" / "python"


def _measure(python: Path, cwd: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-tools-list-") as home:
        env = {**os.environ, "SOPHIA_HOME": home}
        env.pop("SOPHIA_LIST_ALL_TOOLS", None)
        done = subprocess.run([str(python), str(MEASURE), str(Path(home) / "host")], cwd=cwd, env=env,
                              capture_output=True, text=True, check=True, timeout=300)
    parsed: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return parsed


def _ratio(after: int, before: int) -> float:
    return round(after / before, 3) if before else 0.0


def _same_tools(before: dict[str, int], after: dict[str, int]) -> dict[str, Any]:
    """The host's listing over the tools both checkouts list, and the tools only this one lists (new features,
    e.g. sophia_ask): the size of what was already there, apart from what was added since."""
    same = sorted(set(before) & set(after))
    old, new = sum(before[n] for n in same), sum(after[n] for n in same)
    return {"same_tools": len(same), "same_tools_bytes": {"before": old, "after": new},
            "same_tools_ratio": _ratio(new, old), "new_tools": {n: after[n] for n in sorted(set(after) - set(before))},
            "gone_tools": sorted(set(before) - set(after))}


def main() -> None:
    before = _measure(_baseline(), BASE_DIR)
    after = _measure(Path(sys.executable), ROOT)
    per_server = {
        name: {"before": before["servers"][name], "after": after["servers"][name],
               "developer_ratio": _ratio(after["servers"][name]["developer_bytes"],
                                         before["servers"][name]["developer_bytes"]),
               "all_ratio": _ratio(after["servers"][name]["all_bytes"], before["servers"][name]["all_bytes"])}
        for name in after["servers"]
    }
    host = {"before": before["host"], "after": after["host"],
            "developer_ratio": _ratio(after["host"]["developer_bytes"], before["host"]["developer_bytes"]),
            **_same_tools(before["host"]["tool_bytes"], after["host"]["tool_bytes"])}
    result = {
        "baseline": BASE_REV, "servers": per_server, "host": host,
        "servers_developer_bytes": {"before": before["servers_developer_bytes"],
                                    "after": after["servers_developer_bytes"]},
        "servers_all_bytes": {"before": before["servers_all_bytes"], "after": after["servers_all_bytes"]},
        "target": "host developer listing <= 2/3 of the baseline",
        "met": host["developer_ratio"] <= 2 / 3,
        "met_over_the_same_tools": host["same_tools_ratio"] <= 2 / 3,
    }
    hb, ha = before["host"]["developer_bytes"], after["host"]["developer_bytes"]
    summary = (
        f"host tools/list for a developer {hb:,} -> {ha:,} "
        f"bytes (x{host['developer_ratio']}; the {host['same_tools']} tools both list x{host['same_tools_ratio']}, "
        f"new: {', '.join(host['new_tools']) or 'none'}); six servers, every tool: {before['servers_all_bytes']:,} -> "
        f"{after['servers_all_bytes']:,} (x{_ratio(after['servers_all_bytes'], before['servers_all_bytes'])})"
    )
    write_result("tools_list", result, summary)


if __name__ == "__main__":
    main()
