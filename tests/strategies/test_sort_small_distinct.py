"""A sort of many distinct values of 1e-4, whose neighbours lie about 1e-6 apart, below the default step (6e-6):
the check's noise, measured over moves that cross the neighbours' kinks, reads as a function computing in float32,
and its bound over steps below those kinks (where the differences agree with the rule to 1e-10) held nothing, so
the right gradient failed (torch's own sort gradient too). Below the kinks, the noise is measured along the
element; a wrong rule still fails."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck
from backcheck.zoo.pooling import sort_backward, sort_forward

N = 256
W = np.linspace(-1, 1, N)


def _f(x):
    return float(np.dot(np.sort(x, kind="stable"), W))


def _right(x):
    g = np.zeros_like(x)
    g[np.argsort(x, kind="stable")] = W
    return g


@pytest.mark.parametrize("seed", [0, 1])
def test_a_right_sort_of_small_distinct_values_passes(seed):
    x = np.random.default_rng(seed).normal(size=N) * 1e-4
    assert backcheck.check(_f, x, _right).status == "pass"
    assert backcheck.check_layer(sort_forward, sort_backward, (x.copy(),), dout=W).status == "pass"


def test_a_wrong_rank_still_fails():
    x = np.random.default_rng(0).normal(size=N) * 1e-4

    def wrong(x):
        g = _right(x)
        g[np.argsort(x, kind="stable")[100]] *= 1.05
        return g

    r = backcheck.check(_f, x, wrong)
    assert r.status == "fail" and [e.index[0] for e in r.mismatches] == [int(np.argsort(x, kind="stable")[100])], r


def test_torchs_own_sort_gradient_passes():
    torch = pytest.importorskip("torch")
    import backcheck.torch as bt

    x = torch.from_numpy(np.random.default_rng(0).normal(size=N) * 1e-4)
    w = torch.from_numpy(W)
    assert bt.check(lambda t: (torch.sort(t).values * w).sum(), x).status == "pass"
