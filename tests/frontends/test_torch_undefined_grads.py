"""A custom Function that takes undefined output gradients (ctx.set_materialize_grads(False)) and uses them
anyway: its backward raises when one output alone reaches the loss, which is a failing verdict, not an error."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import backcheck.torch as bt  # noqa: E402


class _SinCos(torch.autograd.Function):
    careful = True

    @staticmethod
    def forward(ctx, x):
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x)
        return x.sin(), x.cos()

    @staticmethod
    def backward(ctx, ga, gb):
        (x,) = ctx.saved_tensors
        if not _SinCos.careful:  # the bug: both gradients assumed defined
            return ga * x.cos() - gb * x.sin()
        g = None if ga is None else ga * x.cos()
        if gb is not None:
            g = -gb * x.sin() if g is None else g - gb * x.sin()
        return g


@pytest.fixture
def careless():
    _SinCos.careful = False
    yield
    _SinCos.careful = True


def test_a_backward_that_handles_undefined_gradients_passes_with_each_output_alone():
    x = torch.randn(5, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    report = bt.check(_SinCos.apply, x)
    assert report.status == "pass"
    assert {lf.name for lf in report.leaves} == {"x", "out[0] alone:x", "out[1] alone:x"}  # (forward's names)


def test_a_backward_that_uses_an_undefined_gradient_fails_and_says_why(careless):
    x = torch.randn(5, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    before = x.detach().clone()
    report = bt.check(_SinCos.apply, x)
    assert report.status == "fail"
    assert report.leaves[0].status == "pass"  # the gradient with every output reaching the loss is right
    (found,) = [f for f in report.findings if f.kind == "undefined gradient"]
    assert "TypeError" in found.message and "None" in found.message
    assert torch.equal(x.detach(), before) and x.grad is None
    assert report.to_dict()["findings"][0]["kind"] == "undefined gradient"


def test_one_output_of_such_a_function_alone_is_an_error_that_says_why(careless):
    from backcheck.errors import UserFunctionError

    x = torch.randn(5, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    with pytest.raises(UserFunctionError, match="set_materialize_grads") as info:
        bt.check(lambda t: _SinCos.apply(t)[0], x)
    assert isinstance(info.value.__cause__, TypeError)
