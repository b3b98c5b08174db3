"""A function whose values at the steps are unrelated to a derivative is inconclusive, never a fail.

``sin`` at 1e20: the finite-difference step (about 6e14) spans 1e14 periods, and one unit in the last place of the
input (16384) 2600 of them, so no difference of the input can see ``cos``; ``phi`` changes by O(1) at every step,
as much as its measured noise, and the central differences (near 0) agree with each other only because they
measure nothing. Such an element is a jump (inconclusive), right rule or wrong; a function that is smooth on the
scale of its step, with a wrong rule, still fails, at large inputs, with noise, in float32.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import backcheck


def check(f: Any, x: np.ndarray, g: Any, **kw: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return backcheck.check(f, x, g, **kw)


def sin_sum(p: np.ndarray) -> Any:
    return np.sum(np.sin(p))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("scale", [1e17, 1e20, 1e25])
@pytest.mark.parametrize("rule", ["cos", "2 cos"])
def test_sin_far_beyond_its_period_is_inconclusive_whatever_the_rule(seed: int, scale: float, rule: str) -> None:
    rng = np.random.default_rng(seed)
    x = np.array([scale * (1 + rng.random()), 0.5, -1.25])
    factor = 1.0 if rule == "cos" else 2.0
    report = check(sin_sum, x, lambda p: factor * np.cos(p))
    assert report.status == "inconclusive", report
    status = report.element_status
    assert status[0] == "jump", report
    # the others share the scalar loss, and so the noise its oscillation shows: passes, or inconclusive
    assert set(status[1:]) <= {"ok", "noisy"}, report


def test_a_wrong_rule_elsewhere_is_never_a_pass_beside_an_unresolvable_element() -> None:
    x = np.array([1e20, 0.5, -1.25])

    def wrong(p: np.ndarray) -> np.ndarray:
        g = np.cos(p)
        g[2] *= 1.5
        return g

    report = check(sin_sum, x, wrong)
    assert report.status != "pass", report
    assert report.element_status[0] == "jump" and report.element_status[2] in ("mismatch", "noisy"), report


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_function_smooth_on_the_scale_of_its_step_still_fails_at_large_inputs(dtype: Any) -> None:
    # log(x) at 1e20 varies on the scale of x itself: the step resolves it, and a rule 10% off is a mismatch
    x = np.array([1e20, 3e19, 7e18], dtype=dtype)
    report = check(lambda p: np.sum(np.log(p)), x, lambda p: 1.1 / p)
    assert report.status == "fail", report
    assert set(report.element_status) == {"mismatch"}, report


def test_a_noisy_float32_function_with_a_wrong_rule_still_fails() -> None:
    # float32 rounding of a sum of 200 terms is noise, far above float64's but no oscillation: the rule's error
    # (5%) is far above it
    rng = np.random.default_rng(0)
    x = rng.normal(size=200).astype(np.float32)
    report = check(lambda p: np.sum(np.tanh(p) * p), x, lambda p: 1.05 * (np.tanh(p) + p * (1 - np.tanh(p) ** 2)))
    assert report.status == "fail", report
    assert report.leaves[0].n_mismatch > 150, report


@pytest.mark.parametrize("seed", range(4))
def test_an_oscillation_faster_than_the_step_is_never_a_false_fail(seed: int) -> None:
    # sin(1e10 x) at x ~ 1: the step (6e-6) spans 1e4 periods; finer steps resolve the oscillation, but the noise
    # measured at the point stays that of the coarse scale: inconclusive, or a pass, never a fail
    w = 1e10
    x = 1 + np.random.default_rng(seed).random(2)
    report = check(lambda p: np.sum(np.sin(w * p)), x, lambda p: w * np.cos(w * p))
    assert report.status != "fail", report


def test_check_layer_with_an_unresolvable_input_element_is_inconclusive() -> None:
    x = np.array([[1e20, 0.3], [-0.7, 2.0]])
    report = backcheck.check_layer(np.sin, lambda d, x: (d * np.cos(x),), (x,))
    assert report.status == "inconclusive", report
    assert report.element_status["x"][0, 0] == "jump", report


@pytest.mark.parametrize(
    "x0",
    # points where halving steps alias the oscillation to small, smooth-looking changes, or to slopes that look like
    # a kink's: the noise along the element itself tells them apart
    [1.0654967481704363e17, 1.1966392397721237e17, 1.448544100760376e17, 1.4084732054199986e20],
)
def test_aliased_oscillations_are_inconclusive(x0: float) -> None:
    x = np.array([x0, 1.0])
    report = check(sin_sum, x, np.cos)
    assert report.status == "inconclusive", report
    assert report.element_status[0] == "jump", report


def test_an_element_quiet_along_itself_keeps_its_mismatch_beside_a_loud_one() -> None:
    # the oscillation at 1e20 makes the scalar loss noisy for every element; a rule off by far more than that noise
    # allows, on an element along which phi is smooth, is still a mismatch
    x = np.array([1e20, 0.5])
    report = check(sin_sum, x, lambda p: np.cos(p) + np.array([0.0, 1e8]))
    assert report.status == "fail", report
    assert list(report.element_status) == ["jump", "mismatch"], report
