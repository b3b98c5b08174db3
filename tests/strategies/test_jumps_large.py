"""f jumps at the point along two elements of a large array (floor at integers): where a direction's weights on
them have opposite signs, the two jumps cancel in its central difference and the first screen cleared it, so the
check passed at a jump (and with a wrong element elsewhere). A direction whose forward and backward slopes differ
by far more than the slope's own terms is measured again at half the move, where a jump's gap doubles."""

from __future__ import annotations

import numpy as np
import pytest
from agreeing import directions

import backcheck

N = 100_000


def _case(seed: int, wrong: bool):
    x = np.random.default_rng(1700 + seed).normal(size=N)
    x[0], x[1] = 1.0, -2.0  # floor jumps there

    def f(x):
        return float(np.sum(np.sin(x)) + np.floor(x[0]) + np.floor(x[1]))

    def grad(x):
        d = np.cos(x)
        if wrong:
            d[54321] = -d[54321]
        return d

    return f, x, grad


@pytest.mark.parametrize("seed", [1, 3, 5, 6])
def test_a_jump_at_the_point_is_never_a_pass(seed):
    f, x, grad = _case(seed, wrong=False)
    report = backcheck.check(f, x, grad, seed=seed)
    assert report.status == "inconclusive", report


@pytest.mark.parametrize("seed", [1, 5, 6])
def test_a_wrong_element_beside_the_jumps_fails(seed):
    f, x, grad = _case(seed, wrong=True)
    report = backcheck.check(f, x, grad, seed=seed)
    assert report.status == "fail", report
    assert "x[54321]" in [e.name for e in report.leaves[0].worst if e.status == "mismatch"], report


def test_a_smooth_function_still_costs_seven_evaluations_at_most():
    x = np.random.default_rng(0).normal(size=N)
    report = backcheck.check(lambda x: float(np.sum(np.sin(x) * x)), x, lambda x: np.cos(x) * x + np.sin(x))
    assert report.status == "pass" and report.n_evals == 1 + 2 * directions(report) <= 7, report
