"""A backward pass that clips the gradients it returns (min-char-rnn's np.clip(dparam, -5, 5, out=dparam)) is
right below the clip and not beyond it: a nonlinear backward that fails, whose message names the clip and says the
gradients compared were right."""

import numpy as np
import pytest

import backcheck

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


def test_a_clip_of_the_returned_gradients_not_reached_fails_naming_the_clip():
    dout = _dout(4.0)  # the -4 dout run reaches the clip at 5, dout itself does not
    r = backcheck.check_layer(forward, backward, (X.copy(), W.copy()), dout=dout)
    assert r.status == "fail", r
    assert all(lf.status == "pass" for lf in r.leaves)  # the gradients compared are right
    (found,) = [f for f in r.findings if f.kind == "nonlinear backward"]
    assert "clips the gradients it returns (x at +-5, w at +-5)" in found.message
    assert "the gradients compared there are right" in found.message


def test_a_clip_reached_at_the_checked_dout_fails_its_elements():
    r = backcheck.check_layer(forward, backward, (X.copy(), W.copy()), dout=_dout(8.0))
    assert r.status == "fail"
    assert any(lf.status == "fail" for lf in r.leaves)
    assert all("clips the gradients it returns" not in f.message for f in r.findings)


def test_a_clip_of_the_incoming_gradient_is_nonlinear_without_naming_a_clip_of_results():
    def bw(dout, x, w):
        return backward(dout, x, w, clip=0.3, where="dout")

    dout = _dout(1.0)
    dout *= 0.25 / np.abs(dout).max()  # within the clip of dout, -4 dout beyond it
    r = backcheck.check_layer(forward, bw, (X.copy(), W.copy()), dout=dout)
    assert r.status == "fail", r
    (found,) = [f for f in r.findings if f.kind == "nonlinear backward"]
    assert "clips the gradients it returns" not in found.message


def _clipped_tanh() -> type:
    """The zoo's tanh Function with its returned gradient clamped to [-1, 1]."""
    pytest.importorskip("torch")
    from backcheck.zoo.torch_functions import Tanh

    class ClippedTanh(Tanh):
        @staticmethod
        def backward(ctx, g):
            return Tanh.backward(ctx, g).clamp(-1.0, 1.0)

    return ClippedTanh


def test_a_torch_function_that_clamps_its_returned_gradient_below_the_clamp_fails_naming_it():
    torch = pytest.importorskip("torch")
    bt = pytest.importorskip("backcheck.torch")
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)
    c = torch.linspace(0.6, 0.9, 9, dtype=torch.float64)  # 2 c reaches the clamp at 1, c does not
    clipped = _clipped_tanh()
    r = bt.check(lambda x: (clipped.apply(x) * c).sum(), x)
    assert r.status == "fail", r
    (found,) = [f for f in r.findings if f.kind == "nonlinear backward"]
    assert "clips the gradients it returns (x at +-1)" in found.message
