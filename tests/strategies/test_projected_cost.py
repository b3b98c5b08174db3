"""Random directions never cost more than checking every element: beyond as many directions as elements,
each element is checked one by one (exact, 2 evaluations each)."""

import numpy as np
import pytest

import backcheck


def _counted(c):
    calls = {"n": 0}

    def f(x):
        calls["n"] += 1
        return float(np.sum(np.sin(x) * c))

    return f, calls


@pytest.mark.parametrize("strategy", ["projected", "auto"])
def test_more_directions_than_elements_become_an_elementwise_check(strategy):
    rng = np.random.default_rng(0)
    n = 12
    x, c = rng.standard_normal(n), rng.standard_normal(n)
    f, calls = _counted(c)
    report = backcheck.check(f, x, lambda x: np.cos(x) * c, strategy=strategy, samples=10**6)
    assert report.status == "pass"
    assert report.leaves[0].n_checked == n  # every element judged, none left to chance
    assert calls["n"] <= 2 * n + 8
    assert any("one by one" in note for note in report.notes)
    def wrong(x):
        return np.cos(x) * c * (1 + 1e-3 * (np.arange(n) == 5))

    bad = backcheck.check(f, x, wrong, strategy=strategy, samples=10**6)
    assert bad.status == "fail" and [e.index for e in bad.leaves[0].worst if e.status == "mismatch"] == [(5,)]


def test_a_detection_size_that_needs_more_directions_than_elements_checks_each_element():
    rng = np.random.default_rng(1)
    n = 20
    x, c = rng.standard_normal(n), rng.standard_normal(n)
    f, calls = _counted(c)
    report = backcheck.check(f, x, lambda x: np.cos(x) * c, strategy="projected", detect=1e-13)
    assert report.status == "pass" and report.leaves[0].n_checked == n
    assert calls["n"] <= 2 * n + 2 + 2 + 2  # baseline, the one direction that told, the elements
    wide = backcheck.check(f, x, lambda x: np.cos(x) * c, strategy="projected")  # the default: three directions
    assert wide.leaves[0].n_checked == 0 and wide.n_evals <= 8


def test_fixed_directions_fewer_than_elements_stay_directions():
    rng = np.random.default_rng(2)
    n = 50
    x, c = rng.standard_normal(n), rng.standard_normal(n)
    f, calls = _counted(c)
    report = backcheck.check(f, x, lambda x: np.cos(x) * c, strategy="projected", samples=5)
    assert report.status == "pass" and report.leaves[0].n_checked == 0
    assert calls["n"] == 2 + 2 * 5
