"""Random torch functions (dropout, sampling, a generator passed in) are checked with their random stream replayed
at every call, as backcheck.check does for numpy: a right backward passes, a wrong one fails, and
``random='error'`` still refuses them."""

from __future__ import annotations

import random

import numpy as np
import pytest

import backcheck
from backcheck.errors import NondeterministicError

torch = pytest.importorskip("torch")
bt = pytest.importorskip("backcheck.torch")

REPLAYED = "replayed the same random stream"


def _x(seed: int, *shape: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(size=shape))


def _replayed(report: backcheck.Report) -> bool:
    return any(REPLAYED in n for n in report.notes)


class ScaledDropout(torch.autograd.Function):
    """Inverted dropout with its own mask draw; ``wrong`` forgets the 1 / (1 - p) scale in backward."""

    wrong = False

    @staticmethod
    def forward(ctx, x):
        mask = (torch.rand(x.shape, dtype=x.dtype) > 0.5).to(x.dtype)
        ctx.save_for_backward(mask)
        return x * mask * 2.0

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        return g * mask * (1.0 if ScaledDropout.wrong else 2.0)


@pytest.mark.parametrize("wrong", [False, True])
def test_a_custom_dropout_function_is_judged_with_one_mask(wrong: bool) -> None:
    ScaledDropout.wrong = wrong
    try:
        report = bt.check(lambda x: ScaledDropout.apply(x).tanh(), _x(0, 4, 6))
    finally:
        ScaledDropout.wrong = False
    assert _replayed(report), str(report)
    assert report.status == ("fail" if wrong else "pass"), str(report)
    if wrong:  # the elements the mask keeps are wrong, the dropped ones are not
        (leaf,) = report.leaves
        assert 0 < leaf.n_mismatch < 24 and leaf.counts.get("ok", 0) > 0


def test_functional_dropout_and_a_module_in_training_mode_pass() -> None:
    torch.manual_seed(0)
    report = bt.check(lambda x: torch.nn.functional.dropout(x.sin(), 0.4, True), _x(1, 3, 5))
    assert report.ok and _replayed(report), str(report)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Dropout(0.3), torch.nn.Tanh(), torch.nn.Linear(6, 2))
    model = model.double().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = bt.check_module(model, _x(2, 5, 4))
    assert report.ok and _replayed(report), str(report)
    assert {lf.name.split(":")[-1] for lf in report.leaves} >= {"0.weight", "3.bias"}
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_generator_passed_as_an_argument_is_replayed_and_error_still_refuses() -> None:
    def noisy(x, gen):
        return x.sin() * torch.rand(x.shape, generator=gen, dtype=x.dtype)

    gen = torch.Generator().manual_seed(3)
    x = _x(3, 10)
    x0 = x.clone()
    report = bt.check(noisy, x, gen)
    assert report.ok and _replayed(report) and "Generator" in report.notes[-1], str(report)
    assert torch.equal(x, x0)
    with pytest.raises(NondeterministicError):
        bt.check(noisy, x, gen, random="error")
    frozen = bt.check(noisy, x, gen, random="freeze")  # replayed from the first call
    assert frozen.ok and _replayed(frozen)
    assert frozen.n_evals <= report.n_evals


def test_a_wrong_gradient_of_a_random_function_fails_under_auto_at_scale() -> None:
    def noisy(x):
        return (torch.nn.functional.dropout(x, 0.5, True) * x).sum()

    class Wrong(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return noisy(x.detach())

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 2 * x  # as if nothing were dropped

    x = _x(4, 5000)
    assert bt.check(noisy, x).ok
    report = bt.check(Wrong.apply, x)
    assert report.status == "fail" and _replayed(report), str(report)


def test_vectorized_true_says_a_replayed_function_is_evaluated_point_by_point() -> None:
    report = bt.check(lambda x: torch.nn.functional.dropout(x.tanh(), 0.5, True), _x(5, 6), vectorized=True)
    assert report.ok and _replayed(report)
    assert any("one point at a time" in n for n in report.notes), report.notes


def test_fresh_entropy_cannot_be_replayed() -> None:
    sys_random = random.SystemRandom()
    with pytest.raises(NondeterministicError):
        bt.check(lambda x: x * sys_random.random(), _x(6, 4))
    with pytest.raises(NondeterministicError):
        backcheck.check(lambda x: float(np.sum(x * sys_random.random())), np.ones(3), lambda x: np.ones(3))


@pytest.mark.parametrize("wrong", [False, True])
def test_the_random_module_is_replayed_for_numpy_functions(wrong: bool) -> None:
    gen = random.Random(7)

    def loss(x):  # a student's dropout: one coin per element from the random module
        keep = np.array([random.random() > 0.3 for _ in range(x.size)]) * np.array([gen.random() for _ in x])
        return float(np.sum(np.tanh(x) * keep))

    def grad(x):
        keep = np.array([random.random() > 0.3 for _ in range(x.size)]) * np.array([gen.random() for _ in x])
        return (1 - np.tanh(x) ** 2) * (keep if not wrong else keep > 0)

    report = backcheck.check(loss, np.random.default_rng(8).normal(size=12), grad)
    assert _replayed(report) and "the random module's" in report.notes[-1], str(report)
    assert report.status == ("fail" if wrong else "pass"), str(report)


def test_the_users_generators_are_as_they_were_after_the_check() -> None:
    def noisy(x, gen):
        return (x * torch.rand(x.shape, generator=gen, dtype=x.dtype)).sin()

    gen = torch.Generator().manual_seed(3)
    before = gen.get_state().clone()
    torch.manual_seed(0)
    global_before = torch.get_rng_state().clone()
    assert bt.check(noisy, _x(7, 6), gen).ok
    assert bt.check(lambda x: torch.nn.functional.dropout(x.sin(), 0.5, True), _x(8, 6)).ok
    assert torch.equal(gen.get_state(), before) and torch.equal(torch.get_rng_state(), global_before)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_draws_in_the_inputs_dtype_are_another_function_in_float64_and_no_false_alarm(dtype) -> None:
    # float64 copies draw other numbers than the inputs' dtype: the numeric side stays in that dtype
    gen = torch.Generator().manual_seed(1)
    x = _x(9, 8).to(dtype)
    report = bt.check(lambda x, g: x.sin() * torch.rand(x.shape, generator=g, dtype=x.dtype), x, gen)
    assert report.status != "fail", str(report)
