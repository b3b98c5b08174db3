"""Masked inputs (+-inf entries), NaN in the analytic gradient, late mutation and unread inputs, through check."""

import numpy as np
import pytest

import backcheck


def logsumexp(x):
    m = x.max()
    return float(m + np.log(np.exp(x - m).sum()))


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


@pytest.mark.parametrize("strategy", ["full", "auto", "projected", "sparse"])
def test_masked_logits_are_left_out_and_the_rest_checked(strategy, recwarn):
    x = np.random.default_rng(0).normal(size=200)
    x[::7] = -np.inf
    before = x.copy()
    r = backcheck.check(logsumexp, x, softmax, strategy=strategy)
    assert r.ok, r
    assert any("not coordinates to differentiate" in n for n in r.notes)
    assert r.leaves[0].n_checked <= 200 - 29
    np.testing.assert_array_equal(x, before)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]

    def wrong(x):
        g = softmax(x)
        g[3] *= 1.5
        return g

    bad = backcheck.check(logsumexp, x, wrong, strategy=strategy, samples=None if strategy != "sparse" else 171)
    assert bad.status == "fail", bad


def test_nan_in_the_analytic_gradient_is_a_named_failing_element():
    x = np.array([0.3, -np.inf, 1.2, 0.1])

    def with_nan(x):
        g = softmax(x)
        g[2] = np.nan
        return g

    r = backcheck.check(logsumexp, x, with_nan)
    assert r.status == "fail"
    assert [e.name for e in r.leaves[0].worst if e.status == "mismatch"] == ["x[2]"]


def test_a_forward_that_starts_writing_into_its_input_later_is_reported():
    calls = {"n": 0}

    def sneaky(x):
        calls["n"] += 1
        if calls["n"] > 6:
            x[0] += 1.0  # from the seventh call on
        return float(np.sum(x**2))

    x = np.linspace(0.1, 1.0, 8)
    before = x.copy()
    r = backcheck.check(sneaky, x, lambda x: 2 * x)
    assert r.status == "fail" and any(f.kind == "mutation" for f in r.findings), r
    np.testing.assert_array_equal(x, before)


def test_a_loss_reading_a_copy_is_named():
    W = np.ones((3, 2))
    frozen = W.copy()
    r = backcheck.check(lambda W: float(np.sum(frozen**2)), W, lambda W: 2 * W)
    assert r.status == "fail"
    assert any(f.kind == "unread input" for f in r.findings), r
