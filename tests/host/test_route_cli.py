"""`sophia route` as a real process: the offline router's decision over the configured servers' tools.

The first run has no catalogue and starts the children to list them; the next reads the catalogue
files the first one left. Neither calls a tool: the audit log holds no call afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sophia_shared.audit import AuditLog

from .conftest import CHILD, START_S

pytestmark = pytest.mark.e2e

SOPHIA = str(Path(sys.executable).with_name("sophia"))


def route(config: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOPHIA_CONFIG": str(config), "SOPHIA_HOME": str(home)}
    return subprocess.run([SOPHIA, "route", *args], env=env, capture_output=True, text=True, timeout=START_S * 3,
                          check=False)


def test_route_prints_the_decision_and_runs_nothing(tmp_path: Path, sophia_home: Path, models_dir: Path) -> None:
    config = tmp_path / "sophia.toml"
    config.write_text("\n".join([
        "[host]", "installed_servers = false", "",
        "[servers.alpha]", f"command = {json.dumps([sys.executable, str(CHILD), 'alpha'])}", "",
    ]))
    first = route(config, sophia_home, "echo the text hello back to me", "--json")
    assert first.returncode == 0, first.stderr
    decision = json.loads(first.stdout)
    assert list(decision) == ["tool", "arguments", "missing", "confidence", "alternatives"]
    assert decision["tool"] == "alpha_echo"
    assert decision["arguments"] == {"text": "hello"} and decision["missing"] == []
    assert (sophia_home / "host" / "catalogue" / "alpha.json").exists()

    missing = json.loads(route(config, sophia_home, "report progress for each step", "--json", "--offline").stdout)
    assert missing["tool"] == "alpha_slow" and missing["missing"] == ["steps"]

    unrelated = route(config, sophia_home, "book me a flight to Paris")
    assert unrelated.returncode == 0, unrelated.stderr
    assert unrelated.stdout.startswith("no tool fits well enough") and "from the catalogue tools" in unrelated.stdout
    assert not [r for r in AuditLog().records() if r["tool"].startswith("alpha_")]


def test_route_reports_a_bad_setting_in_one_line(tmp_path: Path, sophia_home: Path) -> None:
    config = tmp_path / "sophia.toml"
    config.write_text("[host]\ninstalled_servers = false\n\n[router]\nabstain_below = 7\n")
    done = route(config, sophia_home, "anything", "--json")
    assert done.returncode == 2
    assert "abstain_below" in done.stderr.lower() and "Traceback" not in done.stderr
