"""`make bench` runs bench/run_all.py: it finds every benchmark package and refuses names it does not know."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import run_all

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_every_benchmark_package_is_found() -> None:
    found = run_all.benchmarks()
    assert found == sorted(p.parent.name for p in BENCH.glob("*/__main__.py"))
    assert {"host", "memory", "request_path", "scale"} <= set(found)
    assert "results" not in found


def test_an_unknown_name_runs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_all.main(["no_such_bench"]) == 2
    assert "no_such_bench" in capsys.readouterr().err
