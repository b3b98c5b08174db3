"""float32 functions and backward passes whose rounding cancellation amplifies (a batch norm at a large mean, a
BCE's softplus(13) - 13): differenced on float64 copies when their float64 value is within their own measured
rounding, and their gradients' rounding measured (native_jitter) rather than called another computation."""

import numpy as np
import pytest

import backcheck
from backcheck.outputs import within_spread


def bn_forward(x, g, b, eps=1e-5):
    xc = x - x.mean(0)
    return xc / np.sqrt((xc**2).mean(0) + eps) * g + b


def bn_backward(dout, x, g, b, eps=1e-5, bug=None):
    xc = x - x.mean(0)
    r = 1 / np.sqrt((xc**2).mean(0) + eps)
    xh, dxh = xc * r, dout * g
    dx = r * (dxh - dxh.mean(0) - xh * (dxh * xh).mean(0))
    if bug == "mean":
        dx = dx + r * dxh.mean(0)  # the -mean(dxh) term dropped
    elif bug == "element":
        dx = dx.copy()
        dx[0, 0] *= 1.003
    return dx, (dout * xh).sum(0), dout.sum(0)


def _bn_inputs(shape, mean, sd, seed=0):
    rng = np.random.default_rng(seed)
    x = (mean + sd * rng.normal(size=shape)).astype(np.float32)
    g = (1 + 0.1 * rng.normal(size=shape[1])).astype(np.float32)
    return x, g, rng.normal(size=shape[1]).astype(np.float32)


def test_a_float32_batch_norm_at_a_large_mean_passes_and_its_bugs_fail():
    inputs = _bn_inputs((4, 6), 1e3, 0.3)  # its float32 gradient is 1.7% off at one element: rounding
    assert backcheck.check_layer(bn_forward, bn_backward, inputs).status == "pass"
    missing = backcheck.check_layer(bn_forward, lambda *a: bn_backward(*a, bug="mean"), inputs)
    assert missing.leaf("x").status == "fail"
    one = backcheck.check_layer(bn_forward, lambda *a: bn_backward(*a, bug="element"), inputs)
    assert [e.name for e in one.leaf("x").worst if e.status == "mismatch"] == ["x[0, 0]"]


def test_a_wide_float32_batch_norm_is_differenced_in_float64():
    x, _, _ = _bn_inputs((500, 16), 1e3, 1.0, seed=1)
    g, b = np.ones(16, np.float32), np.zeros(16, np.float32)  # an output is exactly 0 where x - mean is, in float32
    dout = np.random.default_rng(12345).normal(size=x.shape).astype(np.float32)
    r = backcheck.check_layer(bn_forward, bn_backward, (x, g, b), dout=dout)
    assert r.status == "pass", r
    assert any("evaluated in float64" in n for n in r.notes), r.notes


@pytest.mark.parametrize("factor, status", [((1.0, 1.0), "pass"), ((0.5, 1.0), "fail"), ((1.0, -1.0), "fail")])
def test_a_float32_bce_at_confident_logits_is_differenced_in_float64(factor, status):
    z, t = np.array([13.0, -13.0], np.float32), np.array([1.0, 0.0], np.float32)

    def f(z):
        return np.sum(np.logaddexp(0, z) - t * z)  # softplus(13) - 13 cancels to a few units of 13 in float32

    def grad(z):
        return (1 / (1 + np.exp(-z)) - t) * np.asarray(factor, dtype=z.dtype)

    assert backcheck.check(f, z, grad).status == status


def test_an_exact_zero_from_cancellation_is_no_underflow_but_a_float32_underflow_is():
    wide = np.array([1e-5, 0.5])
    assert within_spread(wide, np.array([0.0, 0.5], np.float32), np.array([2e-5, 0.5], np.float32))
    # exp(-100): 3.7e-44 in float64, 0 in float32, below its smallest normal
    assert not within_spread(np.array([3.7e-44, 0.5]), np.array([0.0, 0.5], np.float32), np.array([0.0, 0.5]))
