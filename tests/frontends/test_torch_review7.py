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
