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


def _dense(factor: float):
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(5, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)

    def forward(x, w, b):
        return np.tanh(x @ w + b)

    def backward(d, x, w, b):
        dz = d * (1 - forward(x, w, b) ** 2)
        return dz @ w.T * factor, x.T @ dz, dz.sum(0)

    return forward, backward, (x, w, b)


@pytest.mark.parametrize("factor", [128 / 127, 1.02, 0.99])
def test_a_factor_within_a_few_percent_of_one_is_named_not_called_a_tolerance(factor):
    # dx off by 1/(N-1) for 1/N: it was called a small error spread over the gradient, a solver's tolerance, with
    # a hint of atol=1e-02 that made the bug pass (128/127), or nothing at all (1.02)
    forward, backward, inputs = _dense(factor)
    report = backcheck.check_layer(forward, backward, inputs)
    assert report.status == "fail", report
    (said,) = [n for n in report.notes if "times the numeric derivative" in n]
    assert said.startswith(f"x's gradient is {factor:.6g} (1 {'+' if factor > 1 else '-'} ") and "1/N" in said
    assert not [n for n in report.notes if "atol=" in n or "tolerance" in n], report.notes


def test_a_factor_within_a_solvers_tolerance_of_one_is_not_named():
    forward, backward, inputs = _dense(1 + 1e-3)
    report = backcheck.check_layer(forward, backward, inputs)
    assert report.status == "fail" and not [n for n in report.notes if "times the numeric derivative" in n], report
