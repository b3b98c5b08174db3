"""The floor a pass states is what its bounds could see: an element judged on a Richardson table states the table's
bound, not the looser one a refinement at half its first step would have given."""

import numpy as np
import pytest

import backcheck
from backcheck.strategies.sharp import LOW_PRECISION_FLOOR


@pytest.mark.parametrize("n", [50, 400])
def test_a_float32_kernel_refined_on_tables_states_their_floor(n):
    x = np.random.default_rng(n).normal(size=n)

    def f(p):  # a float64 loss around a float32 kernel
        return float(np.sum(np.sin(p.astype(np.float32)), dtype=np.float64))

    report = backcheck.check(f, x, np.cos, strategy="full")
    assert report.status == "pass", report
    leaf = report.leaves[0]
    # every element was refined until an error of LOW_PRECISION_FLOOR of the gradient fails: the floor says so
    assert leaf.floor_rel <= 4 * LOW_PRECISION_FLOOR, report
    wrong = backcheck.check(f, x, lambda p: np.cos(p) * (1 + 4 * LOW_PRECISION_FLOOR), strategy="full")
    assert wrong.status == "fail", wrong
