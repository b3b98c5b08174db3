"""``backcheck demo`` / ``make demo``: the engine trains with its layers gradient-checked, then a tour of the
checker on layers shipped in backcheck.zoo."""

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


#: Test accuracies the demo must reach.
TARGETS = {"MLP": 0.97, "SmallCNN": 0.98}


def main(argv: list[str] | None = None) -> int:
    """The main job: train an MLP and a CNN with backcheck.nn, their layers gradient-checked on the first
    batch; then the checker on its own, on three layers of backcheck.zoo."""
    from backcheck.nn.demo import main as engine_demo

    print("backcheck demo, part 1: backcheck.nn trains on the digits data set; every layer's backward pass is")
    print("checked on the first batch (one row per layer, the first failing one marked with '>').\n", flush=True)
    results = engine_demo(argv or [])
    print("\nbackcheck demo, part 2: the checker on its own, on layers of backcheck.zoo", flush=True)
    reports = checker_tour()
    problems = []
    got = [r.status for r in reports]
    if got != ["pass", "fail", "pass"]:
        problems.append(f"checker tour verdicts {got}, expected ['pass', 'fail', 'pass']")
    for name, target in TARGETS.items():
        if results[name] < target:
            problems.append(f"{name} reached {results[name]:.2%}, below {target:.0%}")
        if not results[f"{name} layers pass"]:
            problems.append(f"a layer of the {name} failed its gradient check")
    if problems:
        print("\n" + "\n".join(problems), file=sys.stderr)
        return 1
    print(
        "\nAll as expected: every layer's gradient checked, both targets reached; the tour gave pass, fail "
        "(culprits named), pass at the kinks."
    )
    return 0
