"""Mixed precision inside a torch function: ``(x.bfloat16() @ w.bfloat16()).float()`` and the same under
torch.autocast are staircases along each input element at the scale of a float32 step (see
tests/core/test_casts_inside.py). torch's own gradients through the casts are never failed; a custom rule of the
wrong sign is."""

import pytest

torch = pytest.importorskip("torch")
bt = pytest.importorskip("backcheck.torch")


def _cast_matmul(x, w):
    return (x.bfloat16() @ w.bfloat16()).float()


def _autocast_matmul(x, w):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return (x @ w).float()


def _wrong(factor):
    """The bfloat16 matmul as a custom Function whose backward scales x's gradient by ``factor``."""

    class Scaled(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(x, w)
            return _cast_matmul(x, w)

        @staticmethod
        def backward(ctx, g):
            x, w = ctx.saved_tensors
            return factor * (g @ w.T), x.T @ g

    return Scaled


def _point(seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(6, 5, generator=gen), torch.randn(5, 4, generator=gen)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("fn", [_cast_matmul, _autocast_matmul])
def test_torch_gradients_through_bfloat16_casts_are_never_failed(fn, seed):
    x, w = _point(seed)
    kept = (x.clone(), w.clone())
    report = bt.check(fn, x, w)
    assert report.status in ("pass", "inconclusive"), str(report)
    assert torch.equal(x, kept[0]) and torch.equal(w, kept[1])


@pytest.mark.parametrize("seed", range(4))
def test_a_wrong_sign_through_a_bfloat16_matmul_fails_and_a_doubled_rule_never_passes(seed):
    """A sign error shows across stairs as wide as the step; a factor of 2 does at some points only (the stairs
    of a bfloat16 input at 0.3 are 0.4 of a float32 step wide), and is never vouched for where it does not."""
    x, w = _point(seed)
    assert bt.check_function(_wrong(-1.0), x, w).status == "fail"
    assert bt.check_function(_wrong(2.0), x, w).status != "pass"
