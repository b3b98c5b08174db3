"""A float32 backward at inputs of a large magnitude rounds intermediates of that size: torch's logcumsumexp
backward computes exp(log|g| - result) with result near 1e4, on a grid of 1e-3 in float32. Its float64 run stands
in for the formula; a float32 path wrong beyond that rounding still fails."""

import pytest

torch = pytest.importorskip("torch")
import backcheck.torch as bt  # noqa: E402


def _large():
    return torch.tensor([[1e4, 5.1, 4.8, 5.1, -2.5]] * 3, dtype=torch.float32).T.contiguous()


def test_a_log_space_backward_at_large_inputs_passes_in_float32():
    x = _large().requires_grad_()
    assert bt.check(lambda t: torch.logcumsumexp(t, 0), x).status == "pass"


class _Scaled(torch.autograd.Function):
    """logcumsumexp whose float32 backward is 10% off (right in float64)."""

    @staticmethod
    def forward(ctx, x):
        y = torch.logcumsumexp(x, 0)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, y = ctx.saved_tensors
        with torch.enable_grad():
            xx = x.detach().requires_grad_()
            (g,) = torch.autograd.grad(torch.logcumsumexp(xx, 0), xx, gy)
        return g * 1.1 if g.dtype == torch.float32 else g


def test_a_float32_path_wrong_beyond_that_rounding_still_fails():
    x = _large().requires_grad_()
    assert bt.check(_Scaled.apply, x).status == "fail"


def test_a_bfloat16_output_is_named_bfloat16_in_the_notes():
    x = torch.randn(4, dtype=torch.float64, requires_grad=True)
    r = bt.check(lambda t: t.bfloat16(), x)
    assert any("returns bfloat16 for float64 inputs" in n for n in r.notes), r.notes


def test_a_locally_constant_op_whose_backward_returns_rounding_is_not_called_a_straight_through_rule():
    # normalize over a dimension of size 1 with p = 0.5 is x / |x| = sign(x): its gradient is 0, and torch's
    # float32 backward returns rounding (2e-7, its float64 run 4e-16): no finding, and a note that says 0
    torch.manual_seed(0)
    x = torch.randn(1, 2, 4, 5, requires_grad=True)
    r = bt.check(lambda t: torch.nn.functional.normalize(t, p=0.5, dim=0), x)
    assert r.status != "fail" and not r.findings, r
    assert any("0 up to rounding" in n for n in r.notes) and not any("ill-conditioned" in n for n in r.notes)
