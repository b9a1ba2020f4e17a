"""Run every benchmark in bench/ in turn (`make bench`); each writes bench/results/<name>.json.

Each runs as its own `python -m bench.<name>` process with its default arguments, one after another
(they measure timings: running them side by side would skew each other's numbers). Names given on
the command line run only those. Exits non-zero if any benchmark failed, after running the rest.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).parent


def benchmarks() -> list[str]:
    """Every package under bench/ that runs as `python -m bench.<name>`, in name order."""
    return sorted(path.parent.name for path in BENCH.glob("*/__main__.py"))


def main(argv: list[str]) -> int:
    known = benchmarks()
    wanted = argv or known
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    failed: list[str] = []
    for name in wanted:
        started = time.monotonic()
        print(f"== bench.{name}", flush=True)
        done = subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=BENCH.parent, check=False)
        print(f"== bench.{name}: exit {done.returncode} after {time.monotonic() - started:.0f} s", flush=True)
        if done.returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
