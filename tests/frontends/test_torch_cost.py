"""What a torch check costs in calls of the user's code: forward calls counted as evaluations, two backward
passes over one graph, and the long way (a fresh graph) only where those passes disagree.

The counts are deterministic; no test here measures time.
"""

from __future__ import annotations

import pytest

from backcheck.errors import NondeterministicError, UserFunctionError
from backcheck.report import Report

torch = pytest.importorskip("torch")
bt = pytest.importorskip("backcheck.torch")
torch.set_num_threads(1)


def _r(seed: int, *shape: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def _state(report: Report) -> list[str]:
    return [f.message for f in report.findings if f.kind == "saved state"]


class Counted(torch.autograd.Function):
    """``sum(sin(x) * c)``, counting its forward and backward calls in ``Counted.calls``."""

    calls = {"forward": 0, "backward": 0}

    @staticmethod
    def forward(ctx, x, c):
        Counted.calls["forward"] += 1
        ctx.save_for_backward(x, c)
        return (torch.sin(x) * c).sum()

    @staticmethod
    def backward(ctx, g):
        Counted.calls["backward"] += 1
        x, c = ctx.saved_tensors
        return g * torch.cos(x) * c, None


@pytest.mark.parametrize("n", [10, 1000, 100_000])
def test_correct_float64_gradient_calls_fn_once_per_evaluation_and_backward_twice(n: int) -> None:
    x, c = _r(1, n).requires_grad_(), _r(2, n)
    Counted.calls.update(forward=0, backward=0)
    report = bt.check(lambda x: Counted.apply(x, c), x, strategy="auto")
    assert report.ok and not report.findings, str(report)
    assert report.n_evals <= 8, report.n_evals
    # the native call at the point is the baseline's first evaluation, and its graph the analytic side's
    assert Counted.calls == {"forward": report.n_evals, "backward": 2}


def test_float32_inputs_add_the_float64_test_call_and_nothing_else() -> None:
    x, c = _r(1, 1000, dtype=torch.float32).requires_grad_(), _r(2, 1000, dtype=torch.float32)
    Counted.calls.update(forward=0, backward=0)
    report = bt.check(lambda x: Counted.apply(x, c), x, strategy="auto")
    assert report.ok, str(report)
    # forward: the native call (its graph gives the two backward passes), the float64 test call, the
    # counted evaluations (none served by the native call: it ran in float32), then the float64 run of the
    # backward and four runs one unit in the last place away (the native gradient's rounding spread)
    assert Counted.calls == {"forward": 1 + 1 + report.n_evals + 1 + 4, "backward": 2 + 1 + 4}


class Accumulating(torch.autograd.Function):
    """sin(x), whose backward scales a tensor kept on ctx (no version counter sees it): right the first time."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        ctx.k = torch.ones((), dtype=x.dtype)
        return torch.sin(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        out = g * torch.cos(x) * ctx.k
        ctx.k.add_(1.0)
        return out


def test_backward_passes_that_disagree_without_raising_take_the_long_way() -> None:
    report = bt.check(lambda x: Accumulating.apply(x).sum(), _r(3, 6).requires_grad_())
    (message,) = _state(report)
    assert report.status == "fail" and "for x " in message
    assert all(lf.status == "pass" for lf in report.leaves), str(report)


def test_backward_that_rounds_a_doubled_cotangent_differently_is_no_saved_state() -> None:
    # logcumsumexp's backward works in log space: twice the cotangent is not exactly twice the gradient
    report = bt.check(lambda x: torch.logcumsumexp(x, 0), _r(4, 50).requires_grad_())
    assert report.ok and not _state(report), str(report)


def test_random_float64_function_is_told_with_the_native_call_as_first_baseline() -> None:
    gen = torch.Generator().manual_seed(5)

    def noisy(x: torch.Tensor) -> torch.Tensor:
        return (x * torch.rand(x.shape, generator=gen, dtype=x.dtype)).sum()

    with pytest.raises(NondeterministicError):
        bt.check(noisy, _r(6, 20).requires_grad_(), random="error")
    report = bt.check(noisy, _r(6, 20).requires_grad_())  # replayed: the same draw at every call
    assert report.ok and any("replayed the same random stream" in n for n in report.notes), str(report)


def test_float64_forward_that_writes_into_its_input_is_reported() -> None:
    def scale_(x: torch.Tensor) -> torch.Tensor:
        y = (x * 2.0).sum()
        x.data.mul_(2.0)  # behind autograd's back
        return y

    x = _r(7, 5)
    before = x.clone()
    report = bt.check(scale_, x, vectorized=False)
    assert report.status == "fail" and any(f.kind == "mutation" for f in report.findings), str(report)
    assert torch.equal(x, before)


class RaisingBackward(torch.autograd.Function):
    """sin(x) whose backward raises: the first pass over the kept graph fails, so the check runs it again on a
    fresh graph, whose error is the user's."""

    calls = {"backward": 0}

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sin(x)

    @staticmethod
    def backward(ctx, g):
        RaisingBackward.calls["backward"] += 1
        raise ValueError("no backward today")


def test_backward_that_raises_is_a_typed_error_naming_autograd() -> None:
    x = _r(8, 7)
    before = x.clone()
    RaisingBackward.calls["backward"] = 0
    with pytest.raises(UserFunctionError, match="torch.autograd.grad through .* raised ValueError: no backward today"):
        bt.check(lambda x: RaisingBackward.apply(x).sum(), x)
    assert RaisingBackward.calls["backward"] == 2  # the kept graph's pass, then the fresh graph's
    assert torch.equal(x, before)
