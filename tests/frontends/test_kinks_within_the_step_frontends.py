"""Custom rules that claim the mean of the slopes a hair from a kink (a ReLU input at 1e-10, maxima 1e-10 apart),
where the function is differentiable with one of them: a step of 6e-6 crosses the kink and its central difference is
that mean, so such rules passed. They fail; the rules that give the derivative pass (torch and jax alike)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
bt = pytest.importorskip("backcheck.torch")
bj = pytest.importorskip("backcheck.jax")


def relu_function(near_zero: float | None):
    class Relu(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.clamp(min=0)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            slope = (x > 0).to(x.dtype)
            if near_zero is not None:  # a "safe" slope near 0
                slope = torch.where(x.abs() < 1e-8, torch.full_like(x, near_zero), slope)
            return g * slope

    return Relu


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_torch_relu_rule_of_one_half_near_zero_fails_a_hair_from_the_kink(seed: int) -> None:
    x = torch.randn(8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x[1], x[4] = 1e-10, -3e-10
    before = x.clone()
    wrong = bt.check_function(relu_function(0.5), x)
    assert wrong.status == "fail", wrong
    assert {e.name for e in wrong.mismatches} == {"x[1]", "x[4]"}, wrong
    assert bt.check_function(relu_function(None), x).status == "pass"
    assert torch.equal(x, before)


def pairs(gap: float) -> np.ndarray:
    return np.array([1.0, 1.0 + gap, 2.0 + gap, 2.0, -1.0, -1.0 + gap, 0.5 + gap, 0.5])


@pytest.mark.parametrize("gap", [1e-9, 1e-11])
def test_a_jax_max_rule_splitting_near_ties_fails(gap: float) -> None:
    with jax.enable_x64(True):

        @jax.custom_vjp
        def maxpair(x):
            return x.reshape(-1, 2).max(-1)

        def fwd(x):
            return maxpair(x), x

        def bwd(x, g):
            pairs_ = x.reshape(-1, 2)
            near = jnp.isclose(pairs_, pairs_.max(-1, keepdims=True)).astype(x.dtype)
            return ((near / near.sum(-1, keepdims=True) * g[:, None]).reshape(-1),)

        maxpair.defvjp(fwd, bwd)
        x = jnp.asarray(pairs(gap))
        assert bj.check(maxpair, x).status == "fail"
        assert bj.check(lambda x: x.reshape(-1, 2).max(-1), x).status == "pass"  # jax's own rule
