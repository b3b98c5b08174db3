"""Kinks a step cannot see past, and kinks that only a joint move tells.

A point 1e-10 from a kink (a ReLU input, two maxima apart by that much) is differentiable, but a step of 6e-6
crosses the kink: its central difference is the mean of the slopes on the two sides, and a rule claiming that mean
matched it, with a bound that could not see the difference. Such an element is judged below the kink. Hinges of
unequal jumps that share an element (a multiclass SVM's margins at 0 at integer scores) are each within their
one-sided slopes under a wrong rule; moved together they leave f unchanged, and the rule's sum shows there.
"""

from __future__ import annotations

import numpy as np
import pytest

import backcheck

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def pair_max(x):
    return np.sum(x.reshape(-1, 2).max(-1))


def pair_max_rule(x):
    pairs = x.reshape(-1, 2)
    first = pairs[:, 0] >= pairs[:, 1]
    return np.stack([first, ~first], axis=1).astype(float).reshape(-1)


def the_mean(x):
    return np.full(x.size, 0.5)


def near_ties(gap, seed):
    base = np.random.default_rng(seed).normal(size=4)
    signs = np.where(np.arange(4) % 2 == 0, 1.0, -1.0)
    return np.stack([base, base + signs * gap], axis=1).reshape(-1)


@pytest.mark.parametrize("strategy", ["full", "auto"])
@pytest.mark.parametrize("gap", [1e-9, 1e-10, 1e-11])
@pytest.mark.parametrize("seed", [0, 1])
def test_maxima_a_hair_apart_given_the_mean_fail_and_the_derivative_passes(strategy, gap, seed):
    x = near_ties(gap, seed)
    wrong = backcheck.check(pair_max, x, the_mean, strategy=strategy)
    assert wrong.status == "fail", wrong
    assert backcheck.check(pair_max, x, pair_max_rule, strategy=strategy).status == "pass"
    assert np.array_equal(x, near_ties(gap, seed))


@pytest.mark.parametrize("rule", ["half", "zero", "one"])
def test_a_relu_input_a_hair_from_its_kink_is_judged_below_it(rule):
    x = np.random.default_rng(3).normal(size=8)
    x[1], x[4] = 1e-10, -3e-10
    weights = np.arange(1.0, 9.0)

    def f(x):
        return np.sum(np.maximum(x, 0) * weights)

    def right(x):
        return (x > 0) * weights

    def near_zero(x):  # a "safe" slope near 0: wrong at 1e-10, where f has slope 0 or 1
        value = {"half": 0.5, "zero": 0.0, "one": 1.0}[rule]
        return np.where(np.abs(x) < 1e-8, value, x > 0) * weights

    assert backcheck.check(f, x, right).status == "pass"
    wrong = backcheck.check(f, x, near_zero)
    assert wrong.status == "fail"
    named = {e.name for e in wrong.mismatches}
    assert named == {"x[1]"} if rule == "zero" else {"x[4]"} if rule == "one" else {"x[1]", "x[4]"}


@pytest.mark.parametrize("claim", ["mean", "first"])
def test_exact_ties_and_kinks_at_the_point_keep_every_subgradient(claim):
    # at the kink itself every value between the slopes is a valid subgradient: the straddle test must not fail it
    x = np.array([1.0, 1.0, 2.0, 2.0, -1.0, -1.0, 0.5, 0.5])
    rule = the_mean if claim == "mean" else (lambda x: np.tile([1.0, 0.0], 4))
    assert backcheck.check(pair_max, x, rule, strategy="full").status == "pass"
    y = np.random.default_rng(0).normal(size=8)
    y[1] = y[4] = 0.0
    weights = np.arange(1.0, 9.0)
    slope = 0.5 if claim == "mean" else 1.0
    report = backcheck.check(
        lambda y: np.sum(np.maximum(y, 0) * weights), y, lambda y: np.where(y == 0, slope, y > 0) * weights
    )
    assert report.status == "pass"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_curved_smooth_elements_are_no_kinks(dtype, scale):
    # slopes that differ by their curvature over the step (tanh at 1e-3's scale, squares near 0) still pass
    z = (np.array([1e-4, -2e-4, 3e-3, 0.5, -0.7]) * scale).astype(dtype)
    for f, g in (
        (lambda z: np.sum(np.tanh(z / 1e-3)), lambda z: (1 - np.tanh(z / 1e-3) ** 2) / 1e-3),
        (lambda z: np.sum(z**2), lambda z: 2 * z),
        (lambda z: np.sum(np.sin(40 * z)), lambda z: 40 * np.cos(40 * z)),
    ):
        assert backcheck.check(f, z, g).status == "pass"


Y = np.array([2])


def svm_loss(x):
    n = x.shape[0]
    margins = np.maximum(0, x - x[np.arange(n), Y][:, None] + 1.0)
    margins[np.arange(n), Y] = 0
    return margins.sum() / n


def svm_grad(x, counted=True):
    n = x.shape[0]
    margins = np.maximum(0, x - x[np.arange(n), Y][:, None] + 1.0)
    margins[np.arange(n), Y] = 0
    dx = (margins > 0).astype(x.dtype)
    dx[np.arange(n), Y] -= (margins > 0).sum(1) if counted else 1  # the bug: one, not the count
    return dx / n


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_svm_at_integer_scores_with_margins_at_zero_fails_a_correct_class_gradient_of_one(dtype, seed):
    x = np.array([[-2.0, 1.0, 2.0, 1.0]], dtype=dtype)  # two margins exactly 0, sharing the correct class
    wrong = backcheck.check(svm_loss, x, lambda x: svm_grad(x, counted=False), seed=seed)
    assert wrong.status == "fail"
    assert backcheck.check(svm_loss, x, svm_grad, seed=seed).status == "pass"


def test_hinges_of_unequal_jumps_sharing_an_element_are_moved_together():
    def f(x):
        return max(0.0, x[1] - x[0] + 1) + max(0.0, x[2] - x[0] + 1)

    x = np.array([2.0, 1.0, 1.0])
    assert backcheck.check(f, x, lambda x: np.array([-1.0, 0.0, 0.0])).status == "fail"  # within each axis's slopes
    for valid in ([0.0, 0.0, 0.0], [-1.0, 1.0, 0.0], [-2.0, 1.0, 1.0], [-1.0, 0.5, 0.5]):
        assert backcheck.check(f, x, lambda x, v=valid: np.array(v)).status == "pass", valid
