"""Explore figure of the bug zoo: every layer's correct and wrong backward passes searched from its input space
alone (backcheck.zoo.spaces: shapes with free dimensions, hyper-parameters, value domains; no hand-picked
values), against one check at the zoo's convenient point (make_inputs).

    python benchmarks/bugzoo/explore.py                    # every layer, seed 0; writes EXPLORE.md, explore.json
    python benchmarks/bugzoo/explore.py --layers rnn_seq conv2d_pad --seeds 0 1 2 --no-write

For each bug: found by explore (and after how many points), found by one check at make_inputs, the shrunk
failing case's dimensions and hyper-parameters. For each correct backward: points checked, passed, with kinks,
inconclusive, outside the domain, and any false alarm with its case. Budgets are in points (reproducible).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


def _one_point(layer: Any, backward: Any) -> str:
    """The verdict of one check_layer call at the layer's make_inputs (what a hand-written test does)."""
    import backcheck

    inputs = tuple(layer.make_inputs(np.random.default_rng(0), np.float64).values())
    try:
        return backcheck.check_layer(layer.forward, backward, inputs).status
    except backcheck.BackcheckError as exc:
        return f"error: {type(exc).__name__}"


def _case(result: Any) -> str:
    c = result.case
    if c is None:
        return ""
    dims = " ".join(f"{k}={v}" for k, v in c.dims.items())
    hyper = " ".join(f"{k}={v!r}" for k, v in c.hyper.items())
    return "; ".join(p for p in (dims, hyper) if p)


def run(layers: list[Any], seeds: list[int], correct_points: int, bug_points: int, quiet: bool) -> dict[str, Any]:
    from backcheck.zoo import EDGE_LAYERS
    from backcheck.zoo.spaces import explore_layer

    edge = {layer.name for layer in EDGE_LAYERS}
    rows: list[dict[str, Any]] = []
    for layer in layers:
        for seed in seeds:
            for bug in (None, *layer.bugs):
                started = time.perf_counter()
                result = explore_layer(layer.name, bug.name if bug else None, seed=seed, progress=False,
                                       max_points=bug_points if bug else correct_points)
                rows.append({
                    "layer": layer.name, "edge": layer.name in edge, "bug": bug.name if bug else None,
                    "seed": seed, "status": result.status, "points": result.points, "passed": result.passed,
                    "passed_before": result.passed_before, "kinks": result.kinks,
                    "inconclusive": result.inconclusive, "invalid": result.invalid, "shrinks": result.shrinks,
                    "case": _case(result), "seconds": time.perf_counter() - started,
                    "one_point": _one_point(layer, bug.backward if bug else layer.backward),
                    "text": str(result) if (result.status == "fail") != (bug is not None) else "",
                })
                if not quiet:
                    r = rows[-1]
                    print(f"{layer.name:22s} {r['bug'] or 'correct':38s} seed {seed}: {r['status']:12s} "
                          f"{r['points']:3d} points  one point: {r['one_point']}", file=sys.stderr)
    return {"seeds": seeds, "correct_points": correct_points, "bug_points": bug_points, "rows": rows}


def summary(results: dict[str, Any]) -> list[list[str]]:
    """Rows of the figure: ordinary and edge layers, bugs found by explore and by one point, false alarms."""
    out = []
    for edge in (False, True):
        rows = [r for r in results["rows"] if r["edge"] == edge]
        bugs = [r for r in rows if r["bug"]]
        correct = [r for r in rows if not r["bug"]]
        found = [r for r in bugs if r["status"] == "fail"]
        one = [r for r in bugs if r["one_point"] != "pass"]
        before = [r["passed_before"] + 1 for r in found]
        out.append([
            "edge (wrong only at some inputs)" if edge else "ordinary",
            f"{len(found)}/{len(bugs)}", f"{len(one)}/{len(bugs)}",
            f"{np.median(before):.0f} / {max(before)}" if before else "-",
            f"{sum(r['status'] == 'fail' for r in correct)}/{len(correct)}",
            f"{sum(r['status'] == 'inconclusive' for r in correct)}/{len(correct)}",
            f"{sum(r['points'] for r in correct)}", f"{sum(r['seconds'] for r in rows):.1f}",
        ])
    return out


HEADER = ["layers", "bugs found by explore", "bugs found at make_inputs", "points to find (median / max)",
          "false alarms (correct)", "inconclusive (correct)", "points on correct", "seconds"]


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Explore figure",
        "",
        f"`python benchmarks/bugzoo/explore.py` (seeds {results['seeds']}; at most {results['correct_points']} "
        f"points per correct backward, {results['bug_points']} per bug, then shrinking). Every layer of "
        "`backcheck.zoo` is explored from its input space in `backcheck.zoo.spaces` alone; 'at make_inputs' is "
        "one `check_layer` call at the zoo's convenient point.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *["| " + " | ".join(row) + " |" for row in summary(results)],
        "",
        "Edge bugs and their shrunk failing cases:",
        "",
        "| layer | bug | explore | points before | shrunk case | at make_inputs |",
        "|---|---|---|---:|---|---|",
    ]
    for r in results["rows"]:
        if r["edge"] and r["bug"]:
            lines.append(f"| {r['layer']} | {r['bug']} | {r['status']} | {r['passed_before']} | {r['case']} | "
                         f"{r['one_point']} |")
    wrong = [r for r in results["rows"] if r["text"]]
    if wrong:
        lines += ["", "Where explore's verdict is wrong (each a verdict of `check_layer` at that point):", ""]
        for r in wrong:
            lines += [f"- {r['layer']} / {r['bug'] or 'correct'} (seed {r['seed']}): {r['status']}"
                      + (f", at {r['case']}" if r["case"] else "")]
    return "\n".join(lines) + "\n"


def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", nargs="+", metavar="LAYER", help="zoo layer names (default: every layer)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--correct-points", type=int, default=40)
    p.add_argument("--bug-points", type=int, default=60)
    p.add_argument("--out-dir", type=Path, default=HERE)
    p.add_argument("--no-write", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    return p.parse_args(None if argv is None else list(argv))


def main(argv: Iterable[str] | None = None) -> int:
    from backcheck.zoo import EDGE_LAYERS, LAYERS, get

    args = parse_args(argv)
    layers = [get(n) for n in args.layers] if args.layers else [*LAYERS, *EDGE_LAYERS]
    results = run(layers, args.seeds, args.correct_points, args.bug_points, args.quiet)
    text = markdown(results)
    print(text)
    if not args.no_write:
        (args.out_dir / "EXPLORE.md").write_text(text)
        (args.out_dir / "explore.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
