"""Custom backward passes from public code that the torch frontend misread: a rule linear only up to its solver's
tolerance (not a clipping backward), a forward that raises while the backward is run again, a backward that
reads ``ctx.needs_input_grad`` for the wrong input, and a rule off by a small uniform error."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backcheck.errors import UserFunctionError
from backcheck.report import Report

torch = pytest.importorskip("torch")
bt = pytest.importorskip("backcheck.torch")
torch.set_num_threads(1)


def _r(seed: int, *shape: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def _kinds(report: Report) -> list[str]:
    return [f.kind for f in report.findings]


# -- a rule linear in its cotangent up to a tolerance far below the check's resolution ------------------------

#: the small tensor's gradient is this fraction of the large one's
SMALL = 1e-3
#: its rule's relative error per factor e of the cotangent's size (an adaptive solver's step control)
DRIFT = 1e-4


class Tolerant(torch.autograd.Function):
    """``sum(sin(y)) + SMALL * sum(a ** 2)``, whose rule for ``a`` is exact for a unit cotangent and off by
    ``DRIFT * log|g|`` of itself for another: the error of an adjoint solved to a tolerance relative to the
    cotangent's size, far below what the check resolves against the large gradient of ``y``."""

    @staticmethod
    def forward(ctx, y, a):
        ctx.save_for_backward(y, a)
        return torch.sin(y).sum() + SMALL * (a * a).sum()

    @staticmethod
    def backward(ctx, g):
        y, a = ctx.saved_tensors
        drift = 1.0 + DRIFT * math.log(abs(float(g)))
        return g * torch.cos(y), g * 2 * SMALL * a * drift


def test_a_rule_linear_up_to_a_tolerance_far_below_the_largest_gradient_is_not_called_nonlinear() -> None:
    y, a = _r(1, 5), _r(2, 4)
    report = bt.check_function(Tolerant, y, a)
    assert "nonlinear backward" not in _kinds(report), str(report)
    assert report.ok, str(report)
    # the drift is well above the cube root of epsilon relative to a's own gradient: judged on a's scale alone,
    # it would be called nonlinear
    assert DRIFT * math.log(4.0) > 10 * np.finfo(np.float64).eps ** (1 / 3)


class ClipSmall(torch.autograd.Function):
    """Like :class:`Tolerant`, but the rule clips the cotangent before it reaches every input: a clipping
    backward moves the gradient by a good part of itself, and still fails."""

    @staticmethod
    def forward(ctx, y, a):
        ctx.save_for_backward(y, a)
        return torch.sin(y).sum() + SMALL * (a * a).sum()

    @staticmethod
    def backward(ctx, g):
        y, a = ctx.saved_tensors
        g = g.clamp(-2.0, 2.0)
        return g * torch.cos(y), g * 2 * SMALL * a


def test_a_clipping_rule_beside_a_small_gradient_still_fails() -> None:
    report = bt.check_function(ClipSmall, _r(1, 5), _r(2, 4))
    assert report.status == "fail" and "nonlinear backward" in _kinds(report), str(report)


# -- a forward that raises on one call only ---------------------------------------------------------------------


class Scale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x * w

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g * w, (g * x).sum(0)


def _raising_on(call: int):
    """``Scale(x, w)`` that raises on its ``call``-th call, at whatever point of the check that is."""
    calls = [0]

    def f(x, w):
        calls[0] += 1
        if calls[0] == call:
            raise RuntimeError(f"boom on call {call}")
        return Scale.apply(x, w)

    return f


class Flaky(torch.nn.Module):
    """``Scale(x, self.w)`` that raises on its ``call``-th call (a module: no graph is kept between passes, so the
    backward is run again on fresh forward passes)."""

    def __init__(self, call: int) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(_r(4, 4))
        self.f = _raising_on(call)

    def forward(self, x):
        return self.f(x, self.w)


@pytest.mark.parametrize("call", range(1, 13))
@pytest.mark.parametrize("how", ["function", "module"])
def test_a_forward_raising_on_any_call_is_named_with_its_error(call: int, how: str) -> None:
    x = _r(3, 5, 4)
    try:
        if how == "module":
            report = bt.check_module(Flaky(call), x)
        else:
            report = bt.check(_raising_on(call), x, _r(4, 4))
    except UserFunctionError as exc:
        assert f"boom on call {call}" in str(exc) and " raised RuntimeError" in str(exc)
        return
    # where the check falls back (a batch of vmap failing), a note names the function and its error
    said = [n for n in report.notes if f"boom on call {call}" in n]
    assert said and report.title in said[0], report.notes


class NarrowBackward(torch.autograd.Function):
    """sin, whose backward refuses float64 (a kernel written for float32 only)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sin(x)

    @staticmethod
    def backward(ctx, g):
        if g.dtype == torch.float64:
            raise TypeError("kernel compiled for float32 only")
        (x,) = ctx.saved_tensors
        return g * torch.cos(x)


def test_a_backward_refusing_float64_is_judged_at_its_own_dtype_with_a_note_naming_its_error() -> None:
    report = bt.check_function(NarrowBackward, _r(5, 6, dtype=torch.float32))
    assert report.ok, str(report)
    said = [n for n in report.notes if "kernel compiled for float32 only" in n]
    assert said and "NarrowBackward" in said[0] and "own dtype" in said[0], report.notes


# -- a backward that reads ctx.needs_input_grad for the wrong input ----------------------------------------------


def _product(slip: bool) -> type:
    """``x * w`` whose backward computes each gradient under its own ``ctx.needs_input_grad`` entry, or (``slip``)
    x's under w's: right when both require grad, missing for a user whose w is fixed."""

    class Product(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(x, w)
            return x * w

        @staticmethod
        def backward(ctx, g):
            x, w = ctx.saved_tensors
            gx = g * w if ctx.needs_input_grad[1 if slip else 0] else None
            gw = (g * x).sum(0) if ctx.needs_input_grad[1] else None
            return gx, gw

    return Product


def test_a_gradient_computed_under_another_inputs_needs_input_grad_fails_naming_the_input() -> None:
    x, w = _r(6, 3, 4), _r(7, 4)
    report = bt.check_function(_product(slip=True), x, w)
    assert report.status == "fail", str(report)
    (found,) = [f for f in report.findings if "require grad" in f.message]
    assert found.where == "x" and "ctx.needs_input_grad" in found.message and "only x requiring grad" in found.message
    # every element is right with both requiring grad: only the finding fails the check
    assert all(lf.status == "pass" for lf in report.leaves), str(report)
    right = bt.check_function(_product(slip=False), x, w)
    assert right.ok and not right.findings, str(right)


class Scaled(torch.nn.Module):
    """``Product(x, y) * w``: two inputs and a parameter."""

    def __init__(self, slip: bool) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(_r(8, 4))
        self.fn = _product(slip)

    def forward(self, x, y):
        return self.fn.apply(x, y) * self.w


def test_an_input_alone_is_differentiated_beside_the_parameters_and_their_flags_stay() -> None:
    m = Scaled(slip=True)
    report = bt.check_module(m, _r(9, 3, 4), _r(10, 4))
    assert [f.where for f in report.findings if "require grad" in f.message] == ["x"], str(report)
    assert m.w.requires_grad and m.w.grad is None
    assert bt.check_module(Scaled(slip=False), _r(9, 3, 4), _r(10, 4)).ok


# -- a rule off by a small error spread over the gradient (solved to a tolerance) --------------------------------


def _sine(error: float, drift: float = 0.0) -> type:
    """``sum(sin(x))`` whose backward is off by ``error`` of the gradient in every element, and (``drift``) by that
    much more per factor e of the cotangent's size: a rule solved to a tolerance, or an approximate formula."""

    class Sine(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.sin(x).sum()

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * torch.cos(x) * (1.0 + error + drift * math.log(abs(float(g))))

    return Sine


def _uniform(seed: int, n: int) -> torch.Tensor:
    return torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1


def test_a_rule_off_by_a_small_uniform_error_fails_with_a_note_on_solver_tolerance() -> None:
    x = _uniform(3, 8)
    report = bt.check_function(_sine(2e-5), x)
    assert report.status == "fail", str(report)
    (said,) = [n for n in report.notes if "small error spread over it" in n]
    assert "8 of the 8 elements" in said and "tolerance" in said and "atol=1e-04" in said
    # a wrong term (off by a good part of the gradient) is not called small; nor is a check with its own atol
    assert not [n for n in bt.check_function(_sine(0.3), x).notes if "small error" in n]
    assert not [n for n in bt.check_function(_sine(2e-5), x, atol=1e-9).notes if "small error" in n]


def test_a_rule_whose_cotangent_dependence_is_within_its_own_error_is_not_called_nonlinear() -> None:
    x = _uniform(3, 8)
    report = bt.check_function(_sine(1e-3, drift=1e-4), x)
    assert report.status == "fail" and not report.findings, str(report)
    assert [n for n in report.notes if "linear in its cotangent only up to" in n], report.notes
    assert [n for n in report.notes if "small error spread over it" in n], report.notes
    right = bt.check_function(_sine(0.0, drift=1e-4), x)
    assert "nonlinear backward" in _kinds(right), str(right)
