"""``detect=`` under a projected strategy asks that errors of that RMS size fail. An array too small for random
directions is judged element by element: where its elements' bounds let a larger RMS error pass, the array is
inconclusive and says what they reach (as an array whose directions cannot reach it is), never a pass that ignores
the request."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck


def _w():
    return np.random.default_rng(1).normal(size=(3, 4))


def _sin(W):
    return float(np.sum(np.sin(W)))


@pytest.mark.parametrize("strategy", ["projected", "auto"])
def test_a_detection_size_below_the_elements_bounds_leaves_a_small_array_inconclusive(strategy):
    r = backcheck.check(_sin, _w(), np.cos, strategy=strategy, detect=1e-30)
    assert r.status == "inconclusive", r
    note = r.leaves[0].note
    assert "detect=1e-30" in note and "judged one by one" in note and "floor=" in note, note


def test_a_layer_too_small_for_directions_says_so_too():
    layer = backcheck.check_layer(
        np.tanh, lambda d, x: d * (1 - np.tanh(x) ** 2), (_w(),), strategy="projected", detect=1e-30
    )
    assert layer.status == "inconclusive" and "detect=1e-30" in layer.leaves[0].note, layer


def test_a_detection_size_the_elements_reach_passes_and_a_wrong_element_still_fails():
    # the elements' bounds are about 1e-8 of the gradient: an RMS error of 1e-4 is seen one by one, as asked
    reached = backcheck.check(_sin, _w(), np.cos, strategy="projected", detect=1e-4, samples=12)
    assert reached.status == "pass", reached
    wrong = backcheck.check(_sin, _w(), lambda W: np.cos(W) + (np.arange(12) == 5).reshape(3, 4) * 1e-3,
                            strategy="auto", detect=1e-30)  # fmt: skip
    assert wrong.status == "fail" and [e.index for e in wrong.mismatches] == [(1, 1)], wrong


def _relu_int(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, n).astype(float)  # zeros (ReLU kinks) and ties
    c = rng.normal(size=n)
    return (lambda x: float(np.sum(c * np.maximum(x, 0) + 0.1 * x * x))), (lambda x: c * (x > 0) + 0.2 * x), x


@pytest.mark.parametrize("strategy", ["projected", None])  # (None: full, the default at this size)
def test_a_small_array_with_a_kink_or_under_the_default_strategy_honours_detect(strategy):
    f, g, x = _relu_int(10)
    assert (x == 0).any()
    r = backcheck.check(f, x, g, strategy=strategy, detect=1e-13)
    assert r.status == "inconclusive" and "detect=1e-13" in r.leaves[0].note, r


def test_a_large_array_whose_kinks_were_set_apart_honours_detect():
    # group testing traced a disagreement to kinks and fresh directions without them agree: their floor is stated
    f, g, x = _relu_int(100_000)
    r = backcheck.check(f, x, g, strategy="auto", detect=1e-13)
    assert r.status == "inconclusive" and "detect=1e-13" in r.leaves[0].note, r
    reached = backcheck.check(f, x, g, strategy="auto", detect=1e-3)
    assert reached.status == "pass", reached
