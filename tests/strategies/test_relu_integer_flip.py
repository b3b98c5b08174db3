"""A ReLU over integer data (every element tied, a seventh at the kink at 0), float32, 10,000 elements, one element's
gradient sign-flipped: a random direction disagreed (it crosses the kinks), group testing pinned it on no element,
and a sample of 256 elements holding kinks decided: a pass that missed the element, where strategy='projected'
failed. Directions that leave the elements at kinks still now judge the others: the element fails, named; the right
gradient passes, vouched for by directions rather than a sample."""

from __future__ import annotations

import numpy as np

import backcheck


def _relu(seed: int, n: int = 10_000):
    rng = np.random.default_rng(1000 + seed)
    x = rng.integers(-3, 4, size=n).astype(np.float32)
    w = rng.normal(size=n).astype(np.float32)

    def f(x):
        return np.sum(w * np.maximum(x, 0)) + np.float32(0.05) * np.sum(x * x)

    def g(x):
        return w * (x > 0) + 0.1 * x

    return f, g, x


def test_a_flipped_element_among_integer_relu_inputs_fails_named():
    f, g, x = _relu(1)
    i = 5076  # x = -3: no kink of its own, tied with a seventh of the array

    def flipped(x):
        out = np.array(g(x))
        out[i] = -out[i]
        return out

    report = backcheck.check(f, x, flipped, seed=1)
    assert report.status == "fail" and [e.name for e in report.mismatches] == [f"x[{i}]"], report


def test_the_right_gradient_passes_vouched_by_directions():
    f, g, x = _relu(1)
    report = backcheck.check(f, x, g, seed=1)
    assert report.status == "pass" and report.leaves[0].floor_kind == "rms", report
