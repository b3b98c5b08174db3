"""``backcheck.torch.check(MyFunction.apply, a, b)``: the inputs are named as ``MyFunction.forward`` names them
(after ``ctx``, or without it where the Function sets its context in ``setup_context``), and the check after the
Function, not ``args[0]`` and 'apply'."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import backcheck.torch as bt  # noqa: E402


class _MatMul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return g @ b.t(), 1.1 * (a.t() @ g)  # the bug: b's gradient 10% off


class _Scale(torch.autograd.Function):
    @staticmethod
    def forward(x, w):
        return x * w

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g * w, g * x


def _t(*shape: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=torch.float64, generator=gen, requires_grad=True)


def test_a_functions_apply_names_its_inputs_as_its_forward_does():
    report = bt.check(_MatMul.apply, _t(3, 4, seed=0), _t(4, 5, seed=1))
    assert report.status == "fail"
    assert [lf.name for lf in report.leaves] == ["a", "b"]
    assert [lf.status for lf in report.leaves] == ["pass", "fail"]
    assert str(report).splitlines()[0].startswith("backcheck FAIL: _MatMul.apply ")


def test_a_forward_without_ctx_names_its_inputs_too():
    report = bt.check(_Scale.apply, _t(6, seed=2), _t(6, seed=3))
    assert report.status == "pass"
    assert [lf.name for lf in report.leaves] == ["x", "w"]


def test_a_plain_function_keeps_its_own_names():
    report = bt.check(lambda u, v: _Scale.apply(u, v), _t(6, seed=2), _t(6, seed=3))
    assert [lf.name for lf in report.leaves] == ["u", "v"]
