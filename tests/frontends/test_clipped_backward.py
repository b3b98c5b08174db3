"""A backward pass that clips the gradients it returns (min-char-rnn's np.clip(dparam, -5, 5, out=dparam)) is
correct wherever the clip is not reached: a 'clipped backward' finding, not a failure; other nonlinear backward
passes still fail."""

import numpy as np
import torch

import backcheck
import backcheck.torch as bt

RNG = np.random.default_rng(1)
X, W = RNG.normal(size=(6, 4)), RNG.normal(size=(4, 3)) * 0.5


def forward(x, w):
    return np.tanh(x @ w)


def backward(dout, x, w, clip=5.0, where="grads"):
    if where == "dout":
        dout = np.clip(dout, -clip, clip)
    da = dout * (1 - np.tanh(x @ w) ** 2)
    dx, dw = da @ w.T, x.T @ da
    if where == "grads":
        for g in (dx, dw):
            np.clip(g, -clip, clip, out=g)
    return dx, dw


def _dout(largest_grad):
    """A dout whose largest gradient element is ``largest_grad``."""
    d = np.random.default_rng(2).normal(size=(6, 3))
    gx, gw = backward(d, X, W, clip=np.inf)
    return d * (largest_grad / max(np.abs(gx).max(), np.abs(gw).max()))


def test_a_clip_of_the_returned_gradients_not_reached_passes_with_a_finding():
    dout = _dout(4.0)  # the -4 dout run reaches the clip at 5, dout itself does not
    r = backcheck.check_layer(forward, backward, (X.copy(), W.copy()), dout=dout)
    assert r.status == "pass", r
    kinds = [f.kind for f in r.findings]
    assert kinds == ["clipped backward"], r
    assert "+-5" in r.findings[0].message and r.findings[0].elements == ["x", "w"]


def test_a_clip_reached_at_the_checked_dout_fails():
    r = backcheck.check_layer(forward, backward, (X.copy(), W.copy()), dout=_dout(8.0))
    assert r.status == "fail"
    assert "clipped backward" not in [f.kind for f in r.findings]


def test_a_clip_of_the_incoming_gradient_is_still_nonlinear():
    def bw(dout, x, w):
        return backward(dout, x, w, clip=0.3, where="dout")

    dout = _dout(1.0)
    dout *= 0.25 / np.abs(dout).max()  # within the clip of dout, -4 dout beyond it
    r = backcheck.check_layer(forward, bw, (X.copy(), W.copy()), dout=dout)
    assert r.status == "fail", r
    assert "nonlinear backward" in [f.kind for f in r.findings]


class ClippedTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return (g * (1 - y * y)).clamp(-1.0, 1.0)


def test_a_torch_function_that_clamps_its_returned_gradient_below_the_clamp_passes():
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)
    c = torch.linspace(0.6, 0.9, 9, dtype=torch.float64)  # 2 c reaches the clamp at 1, c does not
    r = bt.check(lambda x: (ClippedTanh.apply(x) * c).sum(), x)
    assert r.status == "pass", r
    assert "clipped backward" in [f.kind for f in r.findings], r
