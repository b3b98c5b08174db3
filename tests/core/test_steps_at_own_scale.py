"""An element far smaller than its step, where f bends on the element's own scale (``sin(x / s)`` at ``x ~ s``,
s = 1e-100): its steps, scaled from max(|x|, 1), and their finer fractions down to 2**-20 cross many of f's
periods, and the element was called a jump (inconclusive) although f is smooth there. Finer steps at a fraction of
the element's own size come last: a correct rule passes there, and a wrong one fails."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck


@pytest.mark.parametrize(
    "s, dtype", [(1e-20, np.float64), (1e-100, np.float64), (1e-300, np.float64), (1e-20, np.float32)]
)
def test_a_function_bending_on_its_elements_own_tiny_scale_is_judged_there(s: float, dtype: type) -> None:
    x = (np.array([0.3, 1.1, -0.7, 2.0, 0.05]) * s).astype(dtype)

    def f(x):
        return float(np.sum(np.sin(x.astype(np.float64) / s)))

    def grad(x):
        return np.cos(x.astype(np.float64) / s) / s

    def wrong(x):
        g = grad(x)
        g[1] *= 1.3
        return g

    r = backcheck.check(f, x, grad)
    assert r.status == "pass", r
    bad = backcheck.check(f, x, wrong)
    assert bad.status == "fail", bad
    assert [e.name for e in bad.leaves[0].worst if e.status == "mismatch"] == ["x[1]"], bad
