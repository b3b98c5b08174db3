"""An element whose step moves f by a few rounding units only (a saturated sigmoid's derivative of 1e-11 in a loss
of size 10; a softplus computed as log(1 + e^x), which moves in quanta of 1e-16) is judged again at a wider step,
where its change stands above f's rounding: a vouched pass or a mismatch there, instead of inconclusive. A
function that changes in quanta of a coarser dtype (rounded to float16 inside) moves by far more than its
dtype's rounding and keeps its verdict; a wrong formula beside a backward's own rounding still fails
(tests/core/test_extended.py)."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _saturated(seed: int, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Logits near +-``level`` and the weights of a weighted sum of their sigmoids."""
    rng = np.random.default_rng(seed)
    z = level + rng.standard_normal(10)
    z[::2] *= -1
    return z, rng.uniform(0.5, 2.0, 10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_saturated_sigmoid_passes_and_its_doubled_rule_does_not(seed: int) -> None:
    z, w = _saturated(seed, 25.0)

    def f(z: np.ndarray) -> float:
        return float(np.sum(_sigmoid(z) * w))

    def g(z: np.ndarray) -> np.ndarray:
        s = _sigmoid(z)
        return s * (1 - s) * w

    right = backcheck.check(f, z, g)
    assert right.status == "pass", right
    # its bound sees errors of 5% of each element or of the array's typical one, where the default step saw errors
    # of several times their size; and the floor the pass states is that bound's, not the first step's
    a = np.abs(g(z))
    assert np.all(right.bound <= 0.05 * np.maximum(a, np.sqrt(np.mean(a**2))) * (1 + 1e-9))
    assert right.leaves[0].floor_rel <= 0.1
    # a mismatch seen at the wider step alone is no evidence (f may bend between the steps): not a pass, though
    assert backcheck.check(f, z, lambda z: 2 * g(z)).status != "pass"


def test_a_wider_step_alone_does_not_fail_a_function_bending_between_the_steps() -> None:
    """1000 + 1e-12 sin(1e4 x): its derivative of 1e-8 is lost in the rounding of 1000 at the first step, and the
    wider differences span periods and average to 0; the right rule stays inconclusive, not a failure."""
    x = np.random.default_rng(0).standard_normal(5)
    r = backcheck.check_layer(
        lambda x: 1000 + 1e-12 * np.sin(1e4 * x), lambda d, x: (d * 1e-8 * np.cos(1e4 * x),), (x,)
    )
    assert r.status == "inconclusive", r


def test_a_sigmoid_standing_still_at_its_step_stays_inconclusive() -> None:
    # at |z| ~ 30 the loss does not move at all at the default step: nothing says it reads the element there
    z, w = _saturated(0, 30.0)
    r = backcheck.check(lambda z: float(np.sum(_sigmoid(z) * w)), z, lambda z: _sigmoid(z) * (1 - _sigmoid(z)) * w)
    assert r.status == "inconclusive", r


def test_a_function_rounded_to_float16_inside_keeps_its_verdict_at_wider_steps() -> None:
    x = np.linspace(0.3, 1.2, 8)
    r = backcheck.check(lambda x: float(np.sum(np.sin(x.astype(np.float16)))), x, np.cos)
    assert r.status != "pass", r


def _confident_bce(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits near +-25 with the labels they predict (a trained classifier's confident, right predictions)."""
    rng = np.random.default_rng(seed)
    z = (25.0 + rng.standard_normal(n)) * rng.choice([-1.0, 1.0], n)
    return z, (z > 0).astype(np.float64)


def _bce(z: np.ndarray, y: np.ndarray) -> float:
    """The usual stable form, whose log(1 + e^-|z|) is a sum with 1: it moves in quanta of 1e-16."""
    return float(np.mean(np.maximum(z, 0) - z * y + np.log(1 + np.exp(-np.abs(z)))))


def _bce_grad(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (1 / (1 + np.exp(-z)) - y) / z.size


@pytest.mark.parametrize("n", [10, 64])
def test_a_confident_bce_in_numpy_passes_and_its_bugs_fail(n: int) -> None:
    for seed in range(3):
        z, y = _confident_bce(seed, n)
        assert backcheck.check(lambda z, y=y: _bce(z, y), z, lambda z, y=y: _bce_grad(z, y)).status == "pass"
        for k in (2.0, -1.0, float(n)):
            wrong = backcheck.check(lambda z, y=y: _bce(z, y), z, lambda z, y=y, k=k: k * _bce_grad(z, y))
            assert wrong.status == "fail", (k, wrong)


def _sigmoid_of(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("level", [25.0, 28.0])
def test_a_softplus_written_as_log_of_one_plus_exp_passes_and_its_bug_does_not(level: float) -> None:
    """``log(1 + e^x)`` at x of -25 is a sum with 1: the loss of 1e-10 moves in quanta of 1e-16, ten of them at
    the default step, and the right rule was inconclusive; a rule 1.5 times too large never passes."""
    x = -level + np.random.default_rng(0).standard_normal(8)

    def f(x: np.ndarray) -> float:
        return float(np.sum(np.log(1 + np.exp(x))))

    if level < 26:
        assert backcheck.check(f, x, _sigmoid_of).status == "pass"
    assert backcheck.check(f, x, lambda x: 1.5 * _sigmoid_of(x)).status != "pass"


def test_the_same_softplus_in_torch_passes_and_a_custom_rule_too_large_fails() -> None:
    torch = pytest.importorskip("torch")
    bt = pytest.importorskip("backcheck.torch")

    class TooLarge(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.log(1 + torch.exp(x)).sum()

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 1.5 * g * torch.sigmoid(x)

    x = -25.0 + np.random.default_rng(0).standard_normal(8)
    right = bt.check(lambda x: torch.log(1 + torch.exp(x)).sum(), torch.tensor(x, requires_grad=True))
    assert right.status == "pass", right
    assert bt.check(TooLarge.apply, torch.tensor(x, requires_grad=True)).status == "fail"
