"""Functions whose outputs are narrower than their inputs (autocast's bfloat16, ``x.bfloat16()`` inside): their
value rounds as bfloat16 does, and so does their backward pass, whatever dtype it hands back."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import backcheck.torch as bt  # noqa: E402


def _autocast(fn):
    def under_autocast(*args):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return fn(*args)

    return under_autocast


def _inputs(seed, shapes, dtype=torch.float32, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(s, generator=gen, dtype=dtype) * scale).requires_grad_() for s in shapes]


class LinearReLU(torch.autograd.Function):
    """A custom autocast-aware layer whose backward's sign is set per test."""

    sign = 1.0

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu")
    def forward(ctx, x, w):
        z = F.linear(x, w)
        ctx.save_for_backward(x, w, z)
        return F.relu(z)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, g):
        x, w, z = ctx.saved_tensors
        gz = g * (z > 0)
        return LinearReLU.sign * (gz @ w), LinearReLU.sign * (gz.T @ x)


@pytest.mark.parametrize("seed", range(6))
def test_autocast_gradients_are_judged_at_bfloat16s_resolution_and_never_fail_when_right(seed):
    # autocast leaves float64 alone: the numeric side differences the exact function in float64 (or float32),
    # while autograd's gradient went through bfloat16 matmuls; errors of bfloat16's rounding are no bug
    report = bt.check(_autocast(lambda x, w: F.relu(F.linear(x, w)).sum()), *_inputs(seed, [(4, 6), (3, 6)]))
    assert report.status != "fail", str(report)


@pytest.mark.parametrize("seed", range(3))
def test_a_wrong_sign_through_autocast_fails(seed):
    LinearReLU.sign = -1.0
    try:
        report = bt.check(_autocast(lambda x, w: LinearReLU.apply(x, w).sum()), *_inputs(seed, [(4, 6), (3, 6)]))
    finally:
        LinearReLU.sign = 1.0
    assert report.status == "fail", str(report)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("seed", range(5))
def test_a_bfloat16_value_is_bounded_by_bfloat16s_rounding_not_float16s(dtype, seed):
    # numpy has no bfloat16: the outputs enter as float16, which holds their values, but round 8 times coarser
    x = _inputs(seed, [(3, 4)], dtype, scale=3.0)[0]
    report = bt.check(lambda x: torch.sigmoid(x.bfloat16() @ x.bfloat16().T), x)
    assert report.status != "fail", str(report)
    said = " ".join(report.notes)
    assert "returns bfloat16 for" in said and "bfloat16's rounding of |phi| (0.0078 relative)" in said


def test_a_bfloat16_output_that_float16_holds_says_so():
    x = _inputs(0, [(6,)], torch.float64)[0]
    report = bt.check(lambda x: x.bfloat16().tanh(), x)
    assert "enter the numeric side as float16" in " ".join(report.notes)
    assert "the bounds take bfloat16's rounding" in " ".join(report.notes)
