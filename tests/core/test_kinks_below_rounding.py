"""A ReLU input a hair from its kink (1e-8 to 1e-16), computed as a sum of terms of size 1: the point is
differentiable (or at a kink within rounding), and only a step below the kink's distance sees the derivative;
there, the rounding of that sum (1e-16, whatever the input's own size) puts the difference off by more than the
bound of the outputs' rounding. A mismatch within that rounding is no mismatch: right rules pass (or are
inconclusive), and a rule 0.1% off still fails."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck


def affine_relu(x: np.ndarray, w: np.ndarray, b: np.ndarray):
    a = x @ w + b
    return np.maximum(a, 0), (x, w, a)


def affine_relu_backward(scale: float = 1.0):
    def backward(dout: np.ndarray, cache: tuple) -> tuple:
        x, w, a = cache
        da = dout * (a > 0)
        return da @ w.T, x.T @ da * scale, da.sum(axis=0)

    return backward


def _near_kink(seed: int, distance: float, units: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal((6, 5)) * 3, rng.standard_normal((5, 4)), rng.standard_normal(4)
    a = x @ w + b
    signs = np.sign(rng.standard_normal(4))
    b[:units] = (b - a[0] + distance * signs)[:units]  # example 0's first pre-activations sit at +-distance
    return x, w, b


CASES = [(seed, d, u) for seed in range(6) for d in (1e-8, 1e-10, 1e-16) for u in (1, 4)]


@pytest.mark.parametrize(("seed", "distance", "units"), CASES)
def test_a_right_affine_relu_a_hair_from_its_kinks_is_not_failed(seed: int, distance: float, units: int) -> None:
    r = backcheck.check_layer(affine_relu, affine_relu_backward(), _near_kink(seed, distance, units), cache=True)
    assert r.status in ("pass", "inconclusive"), r
    assert all(leaf.n_mismatch == 0 for leaf in r.leaves), r


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("distance", [1e-8, 1e-16])
def test_a_weight_gradient_off_by_a_thousandth_still_fails_there(seed: int, distance: float) -> None:
    r = backcheck.check_layer(affine_relu, affine_relu_backward(1.001), _near_kink(seed, distance, 4), cache=True)
    assert r.status == "fail", r
    assert r.leaf("w").n_mismatch > 0
