"""A float32 gradient wrong at one value only (0 at x = 1, the derivative a few units in the last place away) is
not excused as the backward pass's own rounding: rounding scatters the gradient about the truth, a rule broken at
the point lands on the truth beside it."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck


def _loss(x):
    return float(np.sum(-1.5 * x.astype(np.float32)))


def _broken_at_one(nan_above: bool):
    def grad(x):
        g = np.full(x.shape, -1.5, dtype=np.float32)
        g[x == 1] = 0.0
        if nan_above:
            g[(x > 1) & (x < 1.0000005)] = np.nan
        return g

    return grad


@pytest.mark.parametrize("nan_above", [False, True])
def test_a_gradient_broken_at_one_value_fails_there(nan_above):
    x = np.array([1.0, 2.0, 3.0, 0.5], dtype=np.float32)
    report = backcheck.check(_loss, x, _broken_at_one(nan_above))
    assert report.status == "fail", report
    assert report.leaves[0].worst[0].name == "x[0]"


def test_the_right_rule_at_the_same_point_passes():
    x = np.array([1.0, 2.0, 3.0, 0.5], dtype=np.float32)
    assert backcheck.check(_loss, x, lambda x: np.full(x.shape, -1.5, dtype=np.float32)).status == "pass"


def test_a_nan_gradient_is_said_in_the_arrays_note():
    """The table's error columns read NaN (or a relative difference of 0) where the gradient is NaN: the array's
    note names the elements."""
    x = np.array([0.5, 1.0, 2.0])

    def grad(x):
        g = 2 * x
        g[1] = np.nan
        return g

    report = backcheck.check(lambda x: float(np.sum(x**2)), x, grad)
    assert report.status == "fail"
    assert "gradient is NaN at 1 element(s) (x[1])" in report.leaf("x").note
