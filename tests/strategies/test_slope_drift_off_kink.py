"""An element off a kink by far less than its step, where f's slope has no finite limit at the kink: ``p log p``
(taken as 0 below 0) at p = 1e-30 has the derivative log p + 1 = -68 there, which no difference resolves (its
change at the element's own scale is below f's rounding; wider steps cross 0), and its one-sided slopes drift
as log h does (-6.9, -9.7, -12.5 ... at steps from 1e-3). It is inconclusive, not a failing 'not a valid
subgradient' (the gradients a few dozen steps around it never reach -68). A wrong rule elsewhere still fails by
name, and a ReLU just off its kink claimed outside its slopes (whose slopes stay put) still fails."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck


def entropy_terms(tiny: float = 1e-30, seed: int = 0):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.1, 1.0, 20)
    p[3] = tiny

    def f(p):
        with np.errstate(all="ignore"):
            return float(np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)))

    def grad(p):
        with np.errstate(all="ignore"):
            return np.log(p) + 1.0

    return f, grad, p


@pytest.mark.parametrize("strategy", ["full", "auto"])
@pytest.mark.parametrize("tiny", [1e-30, 1e-200])
def test_p_log_p_just_off_0_is_not_failed(strategy: str, tiny: float) -> None:
    f, grad, p = entropy_terms(tiny)
    before = p.copy()
    r = backcheck.check(f, p, grad, strategy=strategy)
    assert r.status == "inconclusive", r
    worst = {e.name: e.status for e in r.leaves[0].worst}
    assert worst["p[3]"] == "noisy", r
    assert sum(leaf.n_mismatch for leaf in r.leaves) == 0, r
    np.testing.assert_array_equal(p, before)


@pytest.mark.parametrize("strategy", ["full", "auto"])
def test_a_wrong_element_beside_it_still_fails_by_name(strategy: str) -> None:
    f, grad, p = entropy_terms()

    def bad(p):
        g = grad(p)
        g[5] *= 1.5
        return g

    r = backcheck.check(f, p, bad, strategy=strategy)
    assert r.status == "fail", r
    assert [e.name for e in r.leaves[0].worst if e.status == "mismatch"] == ["p[5]"], r


def test_a_relu_just_off_its_kink_claimed_outside_its_slopes_still_fails() -> None:
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=12), rng.normal(size=12)
    x[4] = 1e-30

    def f(x):
        return float(np.sum(np.maximum(x, 0.0) * w))

    def bad(x):
        g = (x > 0) * w
        g[4] = 2.8 * w[4]  # outside the slopes 0 and w[4]
        return g

    r = backcheck.check(f, x, bad)
    assert r.status == "fail", r
    assert [e.name for e in r.leaves[0].worst if e.status == "mismatch"] == ["x[4]"], r
