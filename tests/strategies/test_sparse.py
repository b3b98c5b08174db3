"""'sparse' samples every array: one element of each first, the rest in proportion to the arrays' sizes; an
array left out of the sample is inconclusive, never a pass."""

import numpy as np
import pytest

import backcheck
from backcheck.strategies import choose

SIZES = {"a": 2000, "b": 3, "c": 5}


def loss(p):
    return float(np.sum(p["a"] ** 2) + np.sum(p["b"] ** 2) + np.sum(p["c"] ** 3))


def grad(p):
    return {"a": 2 * p["a"], "b": 2 * p["b"], "c": 3 * p["c"] ** 2}


def point(seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(n) for k, n in SIZES.items()}


@pytest.mark.parametrize("samples", [3, 10, 100, 2008])
def test_every_array_is_in_the_sample(samples):
    report = backcheck.check(loss, point(), grad, strategy="sparse", samples=samples)
    assert report.status == "pass"
    checked = {lf.name: lf.n_checked for lf in report.leaves}
    assert all(n >= 1 for n in checked.values()) and sum(checked.values()) == samples


def test_a_wrong_small_array_is_found_by_a_small_sample():
    def wrong(p):
        g = grad(p)
        g["b"] = g["b"] * 1.01
        return g

    report = backcheck.check(loss, point(1), wrong, strategy="sparse", samples=3)
    assert report.status == "fail" and report.leaf("p['b']").status == "fail"


def test_fewer_samples_than_arrays_leave_some_inconclusive():
    report = backcheck.check(loss, point(), grad, strategy="sparse", samples=2)
    assert report.status == "inconclusive"
    unsampled = [lf for lf in report.leaves if lf.n_checked == 0]
    assert unsampled and all(lf.status == "inconclusive" and "none was in the sample" in lf.note for lf in unsampled)


def test_the_sample_is_proportional_beyond_one_per_array():
    pools = [np.arange(0, 1000), np.arange(1000, 1010), np.arange(1010, 1110)]
    idx = choose("sparse", pools, 111, np.random.default_rng(0))
    counts = [int(np.sum((idx >= p[0]) & (idx <= p[-1]))) for p in pools]
    # one each, then 108 by size (97.5, 0.9, 9.7), rounded by largest remainder
    assert idx.size == 111 and len(np.unique(idx)) == 111 and counts == [98, 2, 11]
    assert np.array_equal(choose("full", pools, None, np.random.default_rng(0)), np.arange(1110))
