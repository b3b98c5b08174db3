"""A float32 torch function whose float64 value differs from its float32 one by more than the modelled rounding,
but within its own measured rounding (a batch norm of values near 1e4), is differenced in float64."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
bt = pytest.importorskip("backcheck.torch")


def _inputs():
    rng = np.random.default_rng(0)
    x = torch.tensor((1e4 + rng.normal(size=(4, 6))).astype(np.float32))
    g = torch.tensor((1 + 0.1 * rng.normal(size=6)).astype(np.float32))
    return x, g, torch.tensor(rng.normal(size=6).astype(np.float32))


def batch_norm(x, g, b):
    return torch.nn.functional.batch_norm(x, None, None, g, b, training=True, eps=1e-5)


class NormNoMean(torch.autograd.Function):
    """x - mean over the batch, over its standard deviation; a backward that forgets the mean's own gradient."""

    @staticmethod
    def forward(ctx, x):
        xc = x - x.mean(0)
        r = 1 / torch.sqrt((xc * xc).mean(0) + 1e-5)
        ctx.save_for_backward(xc * r, r)
        return xc * r

    @staticmethod
    def backward(ctx, d):
        xh, r = ctx.saved_tensors
        return r * (d - xh * (d * xh).mean(0))  # the - mean(d) term is missing


def test_a_float32_batch_norm_near_1e4_is_differenced_in_float64_and_passes():
    r = bt.check(batch_norm, *_inputs())
    assert r.status == "pass", r
    assert any("evaluated in float64" in n for n in r.notes), r.notes


def test_a_wrong_float32_normalization_near_1e4_fails():
    x = _inputs()[0]
    r = bt.check(NormNoMean.apply, x)
    assert r.status == "fail" and sum(lf.n_mismatch for lf in r.leaves) > 0, r
