"""A gradient off by one constant at every element of an array (a gradient fixed only up to an added constant,
as of marginals on a simplex or Sinkhorn potentials; a mean's term left out) fails, and says so; an error that
is no constant, or an array whose derivative is itself constant (a factor says it), gets no such note."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck

X = np.linspace(0.1, 1.0, 12)
W = np.cos(np.arange(12.0))
SAID = "by one constant"


def _entropy_like(a):
    return float(np.sum(W * np.log(a)))


def _projected(a):  # the gradient on the simplex's tangent space: the derivative less its mean
    g = W / a
    return g - g.mean()


def _notes(report):
    return [n for n in report.notes if SAID in n]


def test_a_gradient_fixed_up_to_a_constant_is_named():
    report = backcheck.check(_entropy_like, X, _projected)
    assert report.status == "fail", report
    (said,) = _notes(report)
    shift = -float(np.mean(W / X))
    assert f"{shift:.3g}" in said and "simplex" in said, said


def test_a_missing_mean_term_is_named_per_array():
    def f(p):
        return float(np.sum(np.sin(p["x"])) + 3 * np.mean(p["x"]) + np.sum(p["y"] ** 2))

    def g(p):
        return {"x": np.cos(p["x"]), "y": 2 * p["y"]}  # the mean's 3 / 12 left out of x

    report = backcheck.check(f, {"x": X, "y": X[:5].copy()}, g)
    assert report.status == "fail", report
    (said,) = _notes(report)
    assert said.startswith("p['x']'s gradient") and "0.25" in said, said


@pytest.mark.parametrize(
    "wrong",
    [lambda a: W / a * 1.1, lambda a: W / a + 0.1 * a, lambda a: W / a + np.where(a > 0.5, 0.2, 0.0)],
    ids=["factor", "varying", "two-constants"],
)
def test_other_errors_are_not_called_a_constant(wrong):
    report = backcheck.check(_entropy_like, X, wrong)
    assert report.status == "fail", report
    assert not _notes(report), report.notes


def test_a_constant_derivative_off_by_a_constant_is_left_to_the_factor():
    report = backcheck.check(lambda x: float(3 * np.sum(x)), X, lambda x: np.full_like(x, 6.0))
    assert report.status == "fail" and not _notes(report), report.notes
    assert any("is 2 times" in n for n in report.notes), report.notes
