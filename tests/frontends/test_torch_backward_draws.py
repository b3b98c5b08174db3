"""A torch backward that draws its random mask again (from a Generator argument or torch's default generator)
instead of using the forward's fails, and says that it draws anew, not that it writes into saved tensors; a
backward that writes into a saved tensor is still told so."""

import pytest

torch = pytest.importorskip("torch")
bt = pytest.importorskip("backcheck.torch")
Function = torch.autograd.Function


class RedrawnDropout(Function):
    @staticmethod
    def forward(ctx, x, p, generator):
        mask = (torch.rand(x.shape, generator=generator) >= p).to(x.dtype)
        ctx.save_for_backward(mask)
        ctx.p, ctx.gen = p, generator
        return x * mask / (1 - p)

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        mask = (torch.rand(mask.shape, generator=ctx.gen) >= ctx.p).to(g.dtype)  # a new mask: the bug
        return g * mask / (1 - ctx.p), None, None


class WritesSaved(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x.clone())
        return x**2

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        out = 2 * x * g
        x.mul_(1.5)  # the saved tensor written: a second pass sees another x
        return out


@pytest.mark.parametrize("generator", [True, False])
def test_a_backward_drawing_its_mask_again_fails_saying_so(generator):
    x = torch.randn(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    gen = torch.Generator().manual_seed(0) if generator else None
    report = bt.check_function(RedrawnDropout, x, 0.3, gen)
    assert report.status == "fail", report
    found = [f for f in report.findings if f.kind == "saved state"]
    assert found and "draws anew" in found[0].message and "save what the forward drew" in found[0].message
    assert "writes into a tensor it saved" not in found[0].message


def test_a_backward_writing_into_a_saved_tensor_is_still_told_so():
    x = torch.randn(4, dtype=torch.float64, generator=torch.Generator().manual_seed(2), requires_grad=True)
    report = bt.check_function(WritesSaved, x)
    found = [f for f in report.findings if f.kind == "saved state"]
    assert found and "writes into a tensor it saved" in found[0].message, report.findings


class CumProd(Function):  # the division backward: NaN where the input is exactly 0 (a real bug)
    @staticmethod
    def forward(ctx, x):
        y = x.cumprod(-1)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return (g * y).flip(-1).cumsum(-1).flip(-1) / x


def test_a_gradient_nan_at_every_pass_fails_where_it_is_nan_not_as_saved_state():
    x = torch.tensor([[1.5, 0.0, 2.0, 0.7], [0.9, 1.1, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    report = bt.check_function(CumProd, x)
    assert report.status == "fail", report
    assert not [f for f in report.findings if f.kind == "saved state"], report.findings
    assert {e.index for e in report.mismatches} == {(0, 1), (1, 2), (1, 3)}, report
