"""A function that rounds to float16 inside (an input cast to a coarser dtype, autocast's pattern) stands still
at a float64 step and moves by quanta: its first differences say nothing, a wrong sign included. An element
left unvouched there is judged at a step wide enough to span many quanta: a rule wrong by a share that
matters fails, a right one is never failed, and a straight-through rule over a grid as coarse as the element
itself is not judged there."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck


def tanh16(a: np.ndarray) -> np.ndarray:
    return np.tanh(a.astype(np.float16)).astype(a.dtype)


def tanh16_backward(factor: float):
    return lambda dout, a: (factor * dout * (1 - np.tanh(a) ** 2),)


def _x(seed: int, dtype: type) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((4, 6)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_wrong_sign_through_a_float16_kernel_fails(dtype: type) -> None:
    statuses = [backcheck.check_layer(tanh16, tanh16_backward(-1.0), (_x(s, dtype),)).status for s in range(5)]
    assert statuses.count("fail") >= 3 and "pass" not in statuses, statuses


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_right_rule_through_a_float16_kernel_is_never_failed(dtype: type) -> None:
    for seed in range(5):
        r = backcheck.check_layer(tanh16, tanh16_backward(1.0), (_x(seed, dtype),))
        assert r.status != "fail", r


def test_the_wider_step_is_named_and_bounds_the_mismatch() -> None:
    r = backcheck.check_layer(tanh16, tanh16_backward(-1.0), (_x(0, np.float32),))
    assert r.status == "fail", r
    assert any("judged at a wider step" in n for n in r.notes), r.notes
    worst = r.leaves[0].worst[0]
    # the numeric value is the derivative, to within the bound stated, not 0 (f stood still at its own step)
    assert abs(worst.numeric + worst.analytic) <= worst.bound, worst


def test_a_straight_through_rule_over_a_coarse_grid_is_not_judged_across_it() -> None:
    x = np.array([0.7, -1.2, 2.3])
    r = backcheck.check(lambda x: float(np.sum(np.round(x / 0.25) * 0.25)), x, lambda x: np.ones_like(x))
    assert r.status == "fail", r
    assert not any("judged at a wider step" in n for n in r.notes), r.notes
