"""A function whose every output is exactly 0 at the point, with a gradient of exactly 0 everywhere (torch.prod
over a vector with several zeros, one of PyTorch's own operator samples): each element moved alone, however far,
leaves it at 0, so its elements keep the bound of 0's rounding (rounding.still_at_zero held them to a rounding
unit of 1 over the step, because moving them all at once moves f: some vectors were inconclusive, others
passed). A wrong rule still fails."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
bt = pytest.importorskip("backcheck.torch")

A = [0.0, 0.0, -0.0672, -0.1712, -0.2191, 0.0, 0.0, 0.0, 0.0, 0.0, 0.6196, -0.9240, 0.4642, 0.2275, -0.4529,
     -0.3404, -0.3714, -0.6044, 0.4978, 0.2983, -0.4270, -0.3373, -0.2385, -0.2969, -0.8581, -0.9551, -0.0582,
     -0.3613, 0.7608, -0.0679]  # fmt: skip


class WrongProd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.prod(x)

    @staticmethod
    def backward(ctx, d):
        return d * torch.full((len(A),), 1e-3, dtype=torch.float64)


def test_a_product_with_several_zeros_passes() -> None:
    x = torch.tensor(A, dtype=torch.float64, requires_grad=True)
    r = bt.check(torch.prod, x)
    assert r.status == "pass", r
    assert bt.check(WrongProd.apply, x).status == "fail"
