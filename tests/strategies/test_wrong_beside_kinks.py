"""A wrong element among many kinks (a ReLU over integer data, or over inputs 30% exactly 0): group testing
followed the half where a kink disagreed, ended at it, and the check passed on 'kinks only' (or on a sample
that missed the element). The elements at zero are held still (judged one by one, a sample of them) and the
others projected again: the wrong element fails, named; the right rule passes."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck

N = 100_000


def _case(seed: int, zeros: bool):
    rng = np.random.default_rng(1000 + seed)
    if zeros:
        x = rng.normal(size=N)
        x[rng.random(N) < 0.3] = 0.0
    else:
        x = rng.integers(-3, 4, N).astype(np.float64)
    c = rng.normal(size=N)
    return x, c, (lambda x: float(np.sum(c * np.maximum(x, 0))))


@pytest.mark.parametrize("zeros", [False, True], ids=["integers", "zeros"])
@pytest.mark.parametrize("seed", [0, 1])
def test_one_wrong_element_beside_kinks_fails(seed, zeros):
    x, c, f = _case(seed, zeros)
    bad = int(np.flatnonzero(x > 0)[5])

    def grad(x):
        d = c * (x > 0)
        d[bad] *= -1
        return d

    report = backcheck.check(f, x, grad, seed=seed)
    assert report.status == "fail", report
    assert [e.name for e in report.leaves[0].worst if e.status == "mismatch"] == [f"x[{bad}]"], report


@pytest.mark.parametrize("zeros", [False, True], ids=["integers", "zeros"])
def test_the_right_rule_passes(zeros):
    x, c, f = _case(0, zeros)
    report = backcheck.check(f, x, lambda x: c * (x > 0), seed=0)
    assert report.status == "pass", report
