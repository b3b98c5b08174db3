"""Straight-through estimators whose step function returns another dtype ((x > 0).float() for float64 inputs): f
is piecewise constant, its differences at small steps are exactly 0, and its steps (a threshold crossed
elsewhere) looked like a grid hiding a slope, so the surrogate gradient was inconclusive. f standing exactly
still on both sides of an element, over a span its claimed slope would have moved it by several of those steps,
refutes the claim (flat.py); a function rounded to a grid (whose real slope moves it across the grid over such a
span) stays unrefuted."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck

torch = pytest.importorskip("torch")
bt = pytest.importorskip("backcheck.torch")


class ClampSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return (x > 0).float()

    @staticmethod
    def backward(ctx, g):
        return g.clamp(-1, 1)


class BinarizeSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x > 0.5).float()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        g = g.clone()
        g[(x < 0) | (x > 1)] = 0
        return g


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ste", [ClampSTE, BinarizeSTE], ids=["clamp", "binarize"])
def test_a_surrogate_gradient_of_a_float32_step_fails(ste, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 5, generator=g, dtype=torch.float64).requires_grad_()
    report = bt.check(ste.apply, x)
    assert report.status == "fail", report
    assert any("stands exactly still" in n for n in report.notes), report.notes


def test_the_step_with_its_true_derivative_passes():
    class Step(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return (x > 0).float()

        @staticmethod
        def backward(ctx, g):
            return torch.zeros_like(g, dtype=torch.float64)

    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64).requires_grad_()
    assert bt.check(Step.apply, x).status != "fail"


@pytest.mark.parametrize("quantum", [1e-2, 1e-3])
def test_a_rounded_function_is_not_refuted(quantum):
    w = np.linspace(0.5, 1.5, 6)

    def f(x):
        return float(np.sum(np.round(x / quantum) * quantum * w))

    x = np.random.default_rng(0).normal(size=6)
    report = backcheck.check(f, x, lambda x: w)
    assert report.status != "fail", report
    assert not any("stands exactly still" in n for n in report.notes), report.notes
