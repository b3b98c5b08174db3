"""Under projected and auto, the elements of an array that sit at kinks (zeros, ties: integer data) are judged one
by one, by a sample where there are more than 256 of them. A few dozen left beyond the sample (299 of 300 at kinks)
went unjudged, and a gradient 1.5 times its slope at one of them passed: they are judged too, where no more than
another sample's worth is left."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck


def _case(seed: int):
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=300) * 1.5)
    c = rng.normal(size=300)
    i = int(np.flatnonzero(x == 2)[0])

    def f(t):
        return float(np.sum(np.maximum(t - 1, 0) * c))

    def wrong(t):
        g = ((t > 1) * c).copy()
        g[i] *= 1.5
        return g

    return x, f, (lambda t: (t > 1) * c), wrong, i


@pytest.mark.parametrize("strategy", ["projected", "auto"])
@pytest.mark.parametrize("seed", [6, 11])
def test_one_wrong_element_among_a_few_hundred_at_kinks_fails(strategy, seed):
    x, f, right, wrong, i = _case(seed)
    assert backcheck.check(f, x, right, strategy=strategy).status == "pass"
    r = backcheck.check(f, x, wrong, strategy=strategy)
    assert r.status == "fail" and [e.index[0] for e in r.mismatches] == [i], r
