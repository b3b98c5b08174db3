"""A short tour of the checker on layers shipped in backcheck.zoo: ``backcheck demo`` / ``make demo``."""

from __future__ import annotations

import sys
from typing import TextIO

import numpy as np

from backcheck.frontends.layers import check_layer
from backcheck.report import Report
from backcheck.zoo import get


def _show(title: str, report: Report, out: TextIO) -> None:
    out.write(f"\n== {title}\n")
    try:
        from backcheck.render.terminal import print_report
    except ImportError:
        out.write(str(report) + "\n")
    else:
        print_report(report, file=out)


def checker_tour(out: TextIO = sys.stdout) -> list[Report]:
    """Check a correct layer, a buggy one and one at a ReLU kink; print and return the three reports."""
    rng = np.random.default_rng(0)
    bn = get("batchnorm_train")
    x = tuple(bn.make_inputs(rng, np.float64).values())
    good = check_layer(bn.forward, bn.backward, x)
    _show("1. batch normalization (train mode), correct backward: every element passes", good, out)

    bug = next(b for b in bn.bugs if b.name == "missing_mean_term")
    bad = check_layer(bn.forward, bug.backward, x)
    _show(
        f"2. the same layer, a classic bug: {bug.description} The report points at the wrong elements",
        bad,
        out,
    )

    mlp = get("mlp_relu")
    assert mlp.kinks is not None
    kinked = tuple(mlp.kinks(np.random.default_rng(0), np.float32).values())
    kink = check_layer(mlp.forward, mlp.backward, kinked)
    _show(
        "3. a two-layer ReLU network in float32 with hidden units exactly at the ReLU kink: "
        "the kinks are recognized, not reported as bugs",
        kink,
        out,
    )
    return [good, bad, kink]


def main() -> int:
    reports = checker_tour()
    expected = ["pass", "fail", "pass"]
    got = [r.status for r in reports]
    if got != expected:
        print(f"\nunexpected verdicts {got} (expected {expected})", file=sys.stderr)
        return 1
    print("\nThe tour ran as expected: pass, fail (with the culprits named), pass at the kinks.")
    return 0
