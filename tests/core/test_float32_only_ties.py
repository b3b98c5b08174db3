"""A tie that exists only in float32: ``max(3a, c)`` with ``c = 3a`` rounded to float32. The numeric side runs on
float64 copies of the inputs, where ``3a`` and ``c`` lie a fraction of a float32 unit apart: a kink off the point
to a float64 step, at the point for every input the user's float32 function can be given. Any share of the
gradient at the tie between its two sides is a valid subgradient there (``d/da = 3t``, ``d/dc = 1 - t``, ``t`` in
[0, 1]); a rule outside that is wrong. Steps finer than a float32 unit of the element judged the rules against
the float64 function's slope beside its kink: the right rules failed and the wrong ones were inconclusive
(tests/frontends/test_torch_float32_only_ties.py: through torch, the wrong ones passed)."""

import numpy as np
import pytest

import backcheck

A = np.array([0.1, 0.7, 0.2, 2.9], dtype=np.float32)


def _point(values=A):
    a = values.copy()
    c = np.float32(3) * a
    assert np.all(np.float32(3) * a == c) and not np.any(3 * a.astype(np.float64) == c.astype(np.float64))
    return a, c


def _layer(t):
    """The forward pass and a backward that gives the tie's share ``t`` to ``3a`` (``1 - t`` to ``c``)."""

    def forward(a, c):
        return np.maximum(np.float32(3) * a, c)

    def backward(d, a, c):
        z = np.float32(3) * a
        tie = (z == c).astype(d.dtype)
        return d * 3 * ((z > c) + t * tie), d * ((c > z) + (1 - t) * tie)

    return forward, backward


@pytest.mark.parametrize(("t", "right"), [(0.5, True), (0.0, True), (1.0, True), (3.0, False), (-2.0, False)])
def test_a_float32_layer_at_a_tie_of_its_own_rounding_is_judged_by_its_subgradients(t, right):
    a, c = _point()
    forward, backward = _layer(t)
    report = backcheck.check_layer(forward, backward, (a, c))
    assert report.status == ("pass" if right else "fail"), report
    assert np.array_equal(a, A)
