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


SMALL = {
    "cube": (lambda w: np.sum(w**3) / 3, lambda w: w**2),
    "tanh": (lambda w: np.sum(np.tanh(w)), lambda w: 1 - np.tanh(w) ** 2),
    "softplus": (lambda w: np.sum(np.logaddexp(0, w)), lambda w: 1 / (1 + np.exp(-w))),
}


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("x", [[0.3, 0.7], [-0.2, 0.7], [3.0], [0.5, -1.1, 0.2, 0.9]])
def test_the_stated_floor_covers_what_a_wider_step_may_take_for_rounding(name, x):
    """An error below 1e-6 of the tensor's typical gradient and below what an intermediate's rounding puts a
    difference off by is judged at a wider step, where it passes: the floor a pass states is at least that
    window, so an error 1.2 times the floor, in any element, fails."""
    f, g = SMALL[name]
    x = np.array(x)
    passed = backcheck.check(f, x, g, strategy="full")
    assert passed.status == "pass", passed
    floor = passed.leaves[0].floor
    for k in range(x.size):
        for sign in (1.0, -1.0):
            off = lambda w, k=k, sign=sign: g(w) + sign * 1.2 * floor * (np.arange(w.size) == k)  # noqa: E731
            r = backcheck.check(f, x, off, strategy="full")
            assert r.status == "fail", (k, sign, str(r))
