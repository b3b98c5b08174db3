"""An element whose step moves f by a few rounding units only (a saturated sigmoid's derivative of 1e-11 in a loss
of size 10) is judged again at a wider step, where its change stands above f's rounding: a vouched pass or a
mismatch there, instead of inconclusive. A function that changes in quanta (rounded to float16 inside) moves by
far more than its dtype's rounding and keeps its verdict."""

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
def test_a_saturated_sigmoid_passes_and_its_doubled_rule_fails(seed: int) -> None:
    z, w = _saturated(seed, 25.0)

    def f(z: np.ndarray) -> float:
        return float(np.sum(_sigmoid(z) * w))

    def g(z: np.ndarray) -> np.ndarray:
        s = _sigmoid(z)
        return s * (1 - s) * w

    right = backcheck.check(f, z, g)
    assert right.status == "pass", right
    # its bound sees errors of 5% of each element or of the array's typical one, where the default step saw errors
    # of several times their size
    a = np.abs(g(z))
    assert np.all(right.bound <= 0.05 * np.maximum(a, np.sqrt(np.mean(a**2))) * (1 + 1e-9))
    wrong = backcheck.check(f, z, lambda z: 2 * g(z))
    assert wrong.status == "fail" and wrong.leaves[0].n_mismatch == z.size, wrong


def test_a_sigmoid_standing_still_at_its_step_stays_inconclusive() -> None:
    # at |z| ~ 30 the loss does not move at all at the default step: nothing says it reads the element there
    z, w = _saturated(0, 30.0)
    r = backcheck.check(lambda z: float(np.sum(_sigmoid(z) * w)), z, lambda z: _sigmoid(z) * (1 - _sigmoid(z)) * w)
    assert r.status == "inconclusive", r


def test_a_function_rounded_to_float16_inside_keeps_its_verdict_at_wider_steps() -> None:
    x = np.linspace(0.3, 1.2, 8)
    r = backcheck.check(lambda x: float(np.sum(np.sin(x.astype(np.float16)))), x, np.cos)
    assert r.status != "pass", r
