"""A float32 vector output with one large entry: the other elements are held to the rounding of the outputs they
move, not of the large one (mixing.py). An identity, a relu, a sort or a flip of [0, 1, -2, 1e4] was inconclusive
(every element granted the rounding of 1e4 over its own size); a wrong element, or a backward that mixes the large
output's term into every element, still fails, and a confident softmax (whose largest probability no element's own
step moves) keeps the floor of every output, and is bounded by every output's rounding where its largest
probability's change rounds away (the outputs of a move are read from a call made for it, not remembered)."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
torch = pytest.importorskip("torch")
bj = pytest.importorskip("backcheck.jax")
bt = pytest.importorskip("backcheck.torch")

LARGE = (1e4, 1e6)


def _x(big: float):
    return torch.tensor([0.0, 1.0, -2.0, big], requires_grad=True)


@pytest.mark.parametrize("big", LARGE)
@pytest.mark.parametrize(
    "fn",
    [lambda x: 2 * x, torch.relu, lambda x: x.sort().values, lambda x: x.flip(0)],
    ids=["twice", "relu", "sort", "flip"],
)
def test_torch_outputs_of_their_own_pass(fn, big):
    report = bt.check(fn, _x(big))
    assert report.status == "pass", report


def test_jax_linear_vector_output_passes():
    report = bj.check(lambda x: 2.0 * x, jnp.array([0.0, 1.0, 1e4], jnp.float32))
    assert report.status == "pass", report


def test_numpy_layer_passes():
    x = np.array([0.0, 1.0, -2.0, 1e4], dtype=np.float32)
    report = backcheck.check_layer(lambda x: 2 * x, lambda dout, x: 2 * dout, x)
    assert report.status == "pass", report


class _OneOff(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, g):
        out = 2 * g
        out[0] = out[0] * 1.01
        return out


class _MixesLarge(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return 2 * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * g + 1e-4 * (g * x).abs().max()  # a term of the large output in every element


@pytest.mark.parametrize("big", LARGE)
@pytest.mark.parametrize("bad", [_OneOff, _MixesLarge], ids=["one-element", "mixes-large"])
def test_wrong_elements_still_fail(bad, big):
    report = bt.check(bad.apply, _x(big))
    assert report.status == "fail", report
    wrong = {e.name for e in report.leaves[0].worst if e.status == "mismatch"}
    assert any(n.endswith("[0]") for n in wrong), report


@pytest.mark.parametrize("shift", [20.0, 30.0, 40.0, 80.0])
def test_confident_softmax_keeps_every_outputs_rounding(shift):
    # at 30 the largest probability's change rounded away at a tiny logit's step; whether a wider move moves it
    # was read from another call's outputs (the evaluator served the step from memory): a false fail
    z = torch.tensor([0.0, 0.5, shift, -shift, 1.0], requires_grad=True)
    report = bt.check(lambda z: torch.softmax(z, 0), z)
    assert report.status != "fail", report
