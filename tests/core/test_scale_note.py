"""A gradient that is one constant factor times the derivative everywhere (a gradient reversal's -0.7, a missing
1/N, a sign) fails, and now says so: "f's gradient is -0.7 times the numeric derivative at every element that
shows it" (helper B's 5a: the report named the elements only). An error that is no constant factor gets no such
note."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck

X = np.linspace(-1.0, 1.0, 12)


def _f(x):
    return float(np.sum(np.sin(x)))


@pytest.mark.parametrize("factor", [-0.7, -1.0, 2.0, 0.5])
def test_a_constant_factor_is_named(factor):
    report = backcheck.check(_f, X, lambda x: factor * np.cos(x))
    assert report.status == "fail", report
    said = [n for n in report.notes if "times the numeric derivative" in n]
    assert said and f"is {factor:.3g} times" in said[0], report.notes


@pytest.mark.parametrize("wrong", [lambda x: np.cos(x) + 0.1, lambda x: np.cos(x) * (1 + x)], ids=["offset", "varying"])
def test_other_errors_are_not_called_a_factor(wrong):
    report = backcheck.check(_f, X, wrong)
    assert report.status == "fail", report
    assert not any("times the numeric derivative" in n for n in report.notes), report.notes


def test_torch_gradient_reversal_is_named():
    torch = pytest.importorskip("torch")
    bt = pytest.importorskip("backcheck.torch")

    class Reverse(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.view_as(x)

        @staticmethod
        def backward(ctx, g):
            return -0.5 * g

    t = torch.linspace(-1, 1, 6, dtype=torch.float64).requires_grad_()
    report = bt.check(lambda t: (Reverse.apply(t) ** 2).sum(), t)
    assert report.status == "fail" and any("is -0.5 times" in n for n in report.notes), report.notes


def test_a_factor_in_some_arrays_is_named_by_array():
    """A course's linear_backward: dW and db for the batch's mean, dx for its sum (dW = dZ A.T / m)."""

    def forward(z, w, b):
        return z @ w + b

    def backward(g, z, w, b):
        n = z.shape[0]
        return g @ w.T, z.T @ g / n, g.sum(0) / n

    rng = np.random.default_rng(0)
    z, w, b = rng.normal(size=(3, 4)), rng.normal(size=(4, 5)), rng.normal(size=5)
    report = backcheck.check_layer(forward, backward, (z, w, b))
    assert [lf.status for lf in report.leaves] == ["pass", "fail", "fail"], report
    (said,) = [n for n in report.notes if "times the numeric derivative" in n]
    assert said.startswith("w's gradient is 0.333 times and b's 0.333 times the numeric"), said
