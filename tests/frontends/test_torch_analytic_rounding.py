"""Where no wider run of a backward exists (torch has no dtype wider than float64), its own rounding is measured
along a line through the point: a float64 BCE at confident logits (sigmoid(z) - 1 keeps only the rounding of
sigmoid(z)) passes, and a wrong element still fails (backcheck.extended.excuse_measured)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
bt = pytest.importorskip("backcheck.torch")

Z = np.random.default_rng(0).normal(size=8) * 3 + 25  # a batch of 8: the mean keeps the rounding's grid


def _bce(z):
    return torch.nn.functional.binary_cross_entropy_with_logits(z, torch.ones_like(z))


class WrongBCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z):
        ctx.save_for_backward(z)
        return _bce(z)

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        out = g * (torch.sigmoid(z) - 1) / z.numel()
        return out * torch.where(torch.arange(z.numel()) == 3, 1.001, 1.0).to(out.dtype)


def test_torch_bce_at_confident_logits_passes_with_its_rounding_measured():
    r = bt.check(_bce, torch.tensor(Z))
    assert r.status == "pass", r
    assert any("measured along a line" in n for n in r.notes), r.notes


def test_a_wrong_element_of_a_torch_bce_backward_still_fails():
    r = bt.check(lambda z: WrongBCE.apply(z), torch.tensor(Z))
    assert r.status == "fail"
    assert [e.name for e in r.leaf("z").worst if e.status == "mismatch"] == ["z[3]"]
