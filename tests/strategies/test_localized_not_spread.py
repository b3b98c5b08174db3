"""One element 1% off among 1e5, found by group testing, was told it was 'a small error spread over' the gradient
and to accept it with atol=1e-02 (1 of the 1 elements checked was wrong). Group testing went through all of the
array's elements: the note counts them, and a confined error gets no such advice; a scale error over the whole
array still does."""

from __future__ import annotations

import numpy as np

import backcheck

X = np.random.default_rng(0).normal(size=100_000)


def _f(x):
    return float(np.sum(np.sin(x)))


def test_one_wrong_element_is_not_called_a_spread_error():
    def grad(x):
        d = np.cos(x)
        d[12345] *= 1.01
        return d

    report = backcheck.check(_f, X, grad)
    assert report.status == "fail", report
    assert not any("spread over it" in n for n in report.notes), report.notes


def test_a_scale_error_over_the_array_still_is():
    report = backcheck.check(_f, X, lambda x: np.cos(x) * 1.001)
    assert report.status == "fail", report
    assert any("spread over it" in n for n in report.notes), report.notes
