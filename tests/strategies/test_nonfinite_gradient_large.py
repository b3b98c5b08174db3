"""A NaN or infinite element in the gradient of a large array: every random direction through it had no finite
bound, the array fell to a sample of 256 elements, which passed without it. Such elements are judged one by one
and left out of the directions: the element fails, named, in a few dozen evaluations."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck

N = 100_000
BAD = 999


def _x():
    return np.random.default_rng(800).normal(size=N)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_one_non_finite_element_fails_named(value):
    def grad(x):
        d = np.cos(x)
        d[BAD] = value
        return d

    report = backcheck.check(lambda x: float(np.sum(np.sin(x))), _x(), grad)
    assert report.status == "fail", report
    assert [e.name for e in report.leaves[0].worst if e.status == "mismatch"] == [f"x[{BAD}]"], report
    assert report.n_evals <= 64


def test_a_right_gradient_beside_it_still_projects():
    report = backcheck.check(lambda x: float(np.sum(np.sin(x))), _x(), np.cos)
    assert report.status == "pass" and report.n_evals <= 8, report


def test_torch_function_with_a_nan_gradient_element_fails():
    torch = pytest.importorskip("torch")
    bt = pytest.importorskip("backcheck.torch")

    class Sin(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.sin()

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            d = g * x.cos()
            d[BAD] = float("nan")
            return d

    x = torch.from_numpy(_x()).requires_grad_()
    report = bt.check(lambda x: Sin.apply(x).sum(), x)
    assert report.status == "fail", report
    assert any(e.name.endswith(f"[{BAD}]") for e in report.leaves[0].worst if e.status == "mismatch"), report
