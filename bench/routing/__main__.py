"""`python -m bench.routing [--limit N]`: the offline router against keyword-only and embedding-only ranking.

Sets: BFCL v4 live_multiple and multiple (pooled over each category's distinct functions),
irrelevance + live_irrelevance (each query with its own functions: abstention), live_multiple with
its own functions (the same small catalogues, where a question has an answer), LiveMCPBench's
526-tool catalogue (recall@5 of the annotated tools), and Sophia's own commands over its 79 tools
(held out: never used to tune). Odd-numbered BFCL rows are held out from the calibration fit.
"""

from __future__ import annotations

import argparse
from typing import Any, TypeVar

from bench.common import percentiles, write_result

from . import data
from .evaluate import MODES, decision_times, make_router, own_catalogues, pooled, quick_embedder, recall_at, top_k_rates

T = TypeVar("T")


def held_out(row: int) -> bool:
    return row % 2 == 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N cases of each set (a smoke run)")
    args = parser.parse_args(argv)
    def cut(cases: list[T]) -> list[T]:
        return cases[: args.limit] if args.limit else cases

    embedder = quick_embedder()
    live, live_pool = data.bfcl_category("live_multiple")
    multiple, multiple_pool = data.bfcl_category("multiple")
    irrelevant = data.bfcl_category("irrelevance")[0] + data.bfcl_category("live_irrelevance")[0]
    tasks, mcp_pool = data.livemcpbench()
    sophia_tools, commands = data.sophia_catalogue(), data.sophia_commands()
    result: dict[str, Any] = {"sets": {"live_multiple": len(live), "live_multiple_pool": len(live_pool),
                                       "multiple": len(multiple), "multiple_pool": len(multiple_pool),
                                       "irrelevance": len(irrelevant), "livemcpbench_tasks": len(tasks),
                                       "livemcpbench_pool": len(mcp_pool), "sophia_commands": len(commands),
                                       "sophia_tools": len(sophia_tools)}, "modes": {}}
    for mode in MODES:
        result["modes"][mode] = {
            "live_multiple_pooled": pooled(make_router(mode, live_pool, embedder), cut(live), held_out),
            "multiple_pooled": pooled(make_router(mode, multiple_pool, embedder), cut(multiple), held_out),
            "irrelevance_own_catalogue": own_catalogues(mode, cut(irrelevant), embedder, held_out),
            "live_multiple_own_catalogue": own_catalogues(mode, cut(live), embedder, held_out),
            "livemcpbench_recall_at_5": recall_at(make_router(mode, mcp_pool, embedder), cut(tasks), 5),
            "sophia_commands": top_k_rates(make_router(mode, sophia_tools, embedder), cut(commands), (1, 3, 5)),
        }
        print(mode, "done", flush=True)
    sentences = [c.sentence for c in cut(commands)] + [c.sentence for c in cut(live)[:300]]
    result["time_per_decision"] = percentiles(decision_times(sophia_tools, sentences))
    return _summarise(result)


def _summarise(result: dict[str, Any]) -> int:
    r = result["modes"]["router"]
    live, mult = r["live_multiple_pooled"]["all"], r["multiple_pooled"]["all"]
    keyword, embedding = (result["modes"][m]["live_multiple_pooled"]["all"]["top1"] for m in ("keyword", "embedding"))
    abstained = r["irrelevance_own_catalogue"]["all"]["abstained"]
    parts = [
        f"live_multiple top1 {live['top1']}% top5 {live['top5']}% (keyword {keyword}%, embedding {embedding}%)",
        f"multiple top1 {mult['top1']}% top5 {mult['top5']}%",
        f"irrelevance abstain {abstained}% (live_multiple loss {live['abstention_loss']} pts)",
        f"LiveMCPBench R@5 {r['livemcpbench_recall_at_5']}%",
        f"Sophia top1 {r['sophia_commands']['top1']}% top3 {r['sophia_commands']['top3']}%",
        f"p95 {result['time_per_decision']['p95_ms']} ms",
    ]
    write_result("routing", result, "; ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
