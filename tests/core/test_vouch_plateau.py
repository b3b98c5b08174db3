"""A locally constant function (hard ranks, a sort's plateau) whose value carries rounding from the way it is
computed: its numeric derivative is that rounding over the step, within its own bound of 0, and no gradient
size to weigh the bound against. A right zero gradient passes (judged against the function's own size, as a
constant's), in float64 as in float32; a claim that the ranks move fails."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck


def _ranks(x: np.ndarray) -> float:
    r = (np.argsort(np.argsort(x, axis=-1), axis=-1) + 1).astype(x.dtype)
    wiggle = (r * 0.1 + x) - r * 0.1 - x  # rounding-level, as an iterative solver's averages leave
    return float(np.sum((r + wiggle) * np.arange(1, x.shape[-1] + 1, dtype=x.dtype)))


X = np.random.default_rng(0).normal(size=(3, 5))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_right_zero_gradient_of_a_plateau_passes(dtype):
    x = X.astype(dtype)
    r = backcheck.check(_ranks, x, lambda x: np.zeros_like(x))
    assert r.status == "pass", r


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_plateau_claimed_to_move_fails(dtype):
    x = X.astype(dtype)

    def moving(x):
        g = np.zeros_like(x)
        g[1, 2] = 0.01 * abs(_ranks(x)) / x.size  # small beside the function's own size, far beyond rounding
        return g

    r = backcheck.check(_ranks, x, moving)
    assert r.status == "fail", r
    assert [e.name for e in r.mismatches] == ["x[1, 2]"], r


def test_the_torch_frontend_passes_the_same_plateau():
    # (a vector output: the check's random cotangent mixes the wiggle into a numeric derivative of 1e-14, which
    # was taken for the gradient's size, and every bound of 1e-7 read as blind to it)
    torch = pytest.importorskip("torch")
    import backcheck.torch as bt

    class HardRank(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            r = (x.argsort(-1).argsort(-1) + 1).to(x.dtype)
            return r + (r * 0.1 + x) - r * 0.1 - x

        @staticmethod
        def backward(ctx, g):
            return torch.zeros_like(g)

    x = torch.from_numpy(X.copy())
    assert bt.check_function(HardRank, x).status == "pass"


@pytest.mark.parametrize(("dtype", "offset", "c"), [(np.float64, 1e3, 1e-6), (np.float32, 1.0, 1e-9)])
def test_a_forgotten_gradient_the_differences_cannot_resolve_is_not_vouched_for(dtype, offset, c):
    # (a guard, inconclusive before too: the derivative moves f by tens of units of its last place, which the
    # differences cannot tell from 0 within their bound, but it is a gradient: a zero claim is not passed)
    x = np.random.default_rng(0).normal(size=6).astype(dtype)
    r = backcheck.check(lambda t: float(offset + c * np.sum(np.sin(t))), x, lambda t: np.zeros_like(t))
    assert r.status == "inconclusive", r
