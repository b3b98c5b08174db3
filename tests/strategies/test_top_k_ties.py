"""A top-k sum with ties at the k-th value: any split of the boundary tie that sums to its share is a valid
subgradient (torch.topk routes it to the first). The tie's joint move is judged against the rounding of phi and of
the outputs phi weighs (a layer's phi rounds each output before its cotangent scales it): in float64 a correct rule
failed by 1.3 times a bound of phi's rounding alone, at integer data."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck


def top2(x):
    return -np.sort(-x, axis=1, kind="stable")[:, :2].sum(1)


def routed(x, mode):
    g = np.zeros(x.shape)
    for r in range(x.shape[0]):
        kth = np.sort(x[r])[::-1][1]
        above, tied = x[r] > kth, np.flatnonzero(x[r] == kth)
        need = 2 - int(above.sum())
        g[r, above] = 1.0
        if mode == "first":
            g[r, tied[:need]] = 1.0
        elif mode == "split":
            g[r, tied] = need / tied.size
        elif mode == "all":
            g[r, tied] = 1.0
    return g


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", range(6))
def test_a_top_k_at_integer_data_passes_every_valid_split_of_its_ties_and_fails_the_others(dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=(3, 5)).astype(dtype)
    dout = rng.normal(size=3).astype(dtype)
    x0 = x.copy()
    boundary_tie = any(
        (x[r] == np.sort(x[r])[::-1][1]).sum() > 2 - (x[r] > np.sort(x[r])[::-1][1]).sum() for r in range(3)
    )
    for mode in ("first", "split", "all", "none"):
        report = backcheck.check_layer(top2, lambda d, x, m=mode: routed(x, m) * d[:, None], (x,), dout=dout)
        valid = mode in ("first", "split") or (mode == "all" and not boundary_tie)
        assert (report.status == "pass") if valid else (report.status == "fail"), (mode, report)
    assert np.array_equal(x, x0)


def test_the_tie_of_two_at_the_second_value_passes_in_float64():
    x = np.array([[2.0, 1.0, 1.0, 0.0]])
    for d in (0.7, -1.3, 0.1):
        for mode in ("first", "split"):
            report = backcheck.check_layer(
                top2, lambda dd, x, m=mode: routed(x, m) * dd[:, None], (x,), dout=np.array([d])
            )
            assert report.status == "pass", report
