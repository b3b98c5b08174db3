"""An element the own-axis check finds wrong, at a point with kinks, is re-checked at a nearby point a few dozen
steps away in a random direction, where the backward pass must be right. A rule whose own mask turns at the point
(a ReLU rule written ``x >= -1`` on integer data: wrong at ``x = -1``, where the ReLU is flat on both sides; a
hardtanh rule ``|x| <= 2`` at ``x = 2``) is right on one side of its threshold, so the random move excused it half
the time, whatever the strategy: the gradients 'around the point' are the same wrong rule's. It is now re-checked
on the opposite side too, where such a rule is wrong whatever the direction; a correct one is right on both."""

import numpy as np
import pytest

import backcheck

STRATEGIES = ["full", "sparse", "auto", "projected"]
SEEDS = range(8)  # (each wrong rule below passed at 2 to 13 of 20 seeds under every strategy)


def _relu():
    x = np.array([-2.0, -1.0, 0.0, 0.0, 1.0, 2.0, 0.0, 3.0])
    w = np.random.default_rng(15).normal(size=8)
    return x, w, lambda x: float(np.sum(w * np.maximum(x, 0)))


def _leaky():
    x, w, _ = _relu()
    return x, w, lambda x: float(np.sum(w * np.where(x > 0, x, 0.1 * x)))


def _hardtanh():
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0, 1.0, -1.0, 0.5])
    w = np.random.default_rng(18).normal(size=8)
    return x, w, lambda x: float(np.sum(w * np.clip(x, -1, 1)))


def _abs():
    x = np.array([0.0, 1.5, -1.0, 0.0, 2.0])
    w = np.random.default_rng(3).normal(size=5)
    return x, w, lambda x: float(np.sum(w * np.abs(x)))


WRONG = {
    # lone mismatches at a flat element (excused as 'kinks cancelling along the axis')
    "relu x >= -1": (_relu, lambda w: lambda x: w * (x >= -1)),
    "leaky x >= -1": (_leaky, lambda w: lambda x: w * np.where(x >= -1, 1.0, 0.1)),
    "hardtanh |x| <= 2": (_hardtanh, lambda w: lambda x: w * (np.abs(x) <= 2)),
    "hardtanh -2 <= x <= 1": (_hardtanh, lambda w: lambda x: w * ((x >= -2) & (x <= 1))),
    # a value outside the one-sided slopes at a kink, right only on its left (3 on [0, 1) for |x|)
    "abs 3 on [0, 1)": (_abs, lambda w: lambda x: w * np.where(x < 0, -1.0, np.where(x < 1, 3.0, 1.0))),
}


def _cone():
    # x[1] = -1 and x[2] = -2, each flat under the ReLU: a rule whose two masks turn at the point is wrong only
    # in the quadrant where both hold, and right at both nearby points along half of all directions
    x = np.array([-3.0, -1.0, -2.0, 0.0, 1.0, 2.0, 0.0, 3.0])
    w = np.random.default_rng(15).normal(size=8)
    return x, w, lambda x: float(np.sum(w * np.maximum(x, 0)))


def _cone_rule(w):
    def rule(x):
        both = (x[1] >= -1) & (x[2] >= -2)
        out = w * (x > 0)
        out[1:3] += w[1:3] * both
        return out

    return rule


WRONG["relu, two masks at x[1] and x[2]"] = (_cone, _cone_rule)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("name", sorted(WRONG))
def test_a_rule_whose_threshold_sits_on_the_point_fails_at_every_seed(name, strategy):
    make, rule = WRONG[name]
    x, w, f = make()
    for seed in SEEDS:
        report = backcheck.check(f, x, rule(w), strategy=strategy, seed=seed)
        assert report.status == "fail", (seed, report)


RIGHT = {
    "relu'(0) = 0": (_relu, lambda w: lambda x: w * (x > 0)),
    "relu'(0) = 1/2": (_relu, lambda w: lambda x: w * ((x > 0) + 0.5 * (x == 0))),
    "relu'(0) = 1": (_relu, lambda w: lambda x: w * (x >= 0)),
    "leaky'(0) = 0.1": (_leaky, lambda w: lambda x: w * np.where(x > 0, 1.0, 0.1)),
    "hardtanh closed": (_hardtanh, lambda w: lambda x: w * (np.abs(x) <= 1)),
    "hardtanh open": (_hardtanh, lambda w: lambda x: w * (np.abs(x) < 1)),
    "abs sign": (_abs, lambda w: lambda x: w * np.sign(x)),
}


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("name", sorted(RIGHT))
def test_valid_subgradients_at_the_same_points_pass_at_every_seed(name, strategy):
    make, rule = RIGHT[name]
    x, w, f = make()
    for seed in SEEDS:
        report = backcheck.check(f, x, rule(w), strategy=strategy, seed=seed)
        assert report.status == "pass", (seed, report)


def _mlp():
    rng = np.random.default_rng(8)
    X = rng.integers(-2, 3, size=(6, 4)).astype(float)
    W = np.random.default_rng(9).integers(-1, 2, size=(4, 5)).astype(float)
    v = np.random.default_rng(10).normal(size=5)
    return X, v, (lambda W: float(np.sum(np.maximum(X @ W, 0) @ v))), W


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_relu_layer_on_integers_keeps_its_cancelling_kinks_and_fails_a_shifted_mask(strategy):
    # hidden units at 0 whose kinks cancel along single weights: relu'(0) = 0 is a valid chain-rule subgradient,
    # judged at nearby points on both sides; a mask written h >= -1 is wrong beside the units at -1
    X, v, f, W = _mlp()
    for seed in SEEDS:
        right = backcheck.check(f, W, lambda W: X.T @ ((X @ W > 0) * v), strategy=strategy, seed=seed)
        assert right.status == "pass", (seed, right)
        wrong = backcheck.check(f, W, lambda W: X.T @ ((X @ W >= -1) * v), strategy=strategy, seed=seed)
        assert wrong.status == "fail", (seed, wrong)


def _mlp2(x, w1, b1, w2, b2):
    return np.maximum(np.maximum(x @ w1 + b1, 0) @ w2 + b2, 0).sum(1)


def _mlp2_backward(bump=None):
    def backward(d, x, w1, b1, w2, b2):
        h1 = x @ w1 + b1
        a1 = np.maximum(h1, 0)
        h2 = a1 @ w2 + b2
        dh2 = d[:, None] * (h2 > 0)
        dh1 = (dh2 @ w2.T) * (h1 > 0)
        grads = [dh1 @ w1.T, x.T @ dh1, dh1.sum(0), a1.T @ dh2, dh2.sum(0)]
        if bump is not None:  # one element 0.3 off
            grads[bump[0]].flat[bump[1]] += 0.3
        return tuple(grads)

    return backward


def test_an_element_group_testing_judges_alone_is_rechecked_for_kinks_cancelling_along_it():
    # a two-layer ReLU network on integer data: x[9, 9] is differentiable along its own axis (kinks of both signs
    # cancel along it) and relu'(0) = 0 claims 0.26 against 0.65; 'full' judges it with the array's other kinks
    # and re-checks it nearby, but auto's group testing judged it alone, where no kink is in its own check, and
    # failed the right backward pass
    rng = np.random.default_rng(2)
    shapes = (((0, 2), (16, 12)), ((-1, 2), (12, 20)), ((-1, 2), (20,)), ((-1, 2), (20, 10)), ((-1, 2), (10,)))
    args = tuple(rng.integers(lo, hi, shape).astype(np.float64) for (lo, hi), shape in shapes)
    right = backcheck.check_layer(_mlp2, _mlp2_backward(), args, strategy="auto", seed=1)
    assert right.status != "fail", right
    wrong = backcheck.check_layer(_mlp2, _mlp2_backward(bump=(0, 17)), args, strategy="auto", seed=1)
    assert wrong.status == "fail" and any(e.name == "x[1, 5]" for e in wrong.mismatches), wrong
