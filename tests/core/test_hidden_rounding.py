"""An intermediate rounded in units far above f's own rounding, while f still moves smoothly: a tanh-approximation
GELU at x of -6.6 computes ``1 + tanh(u)`` (7e-14) in units of 1.1e-16, so that factor stands still for 3e-4 of
x at a time while ``0.5 x (1 + tanh(u))`` moves with x; every narrow difference finds ``0.5 (1 + tanh(u))``, not
the derivative (-1e-12), which the backward pass computes right. Such a mismatch, tiny beside its tensor's
gradient, is judged at a wider step with that rounding in its bound: a layer with a few inputs in that tail
passes. Rules wrong by any share that matters still fail, and so does a tiny error of a smooth function."""

from __future__ import annotations

import math

import numpy as np
import pytest

import backcheck
from backcheck.verdict import typical_size

C = np.sqrt(2 / np.pi)
erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.tanh(C * (x + 0.044715 * x**3)))


def gelu_backward(dout: np.ndarray, x: np.ndarray, cubic: float = 3 * 0.044715) -> np.ndarray:
    t = np.tanh(C * (x + 0.044715 * x**3))
    return (dout * (0.5 * (1 + t) + 0.5 * x * (1 - t**2) * C * (1 + cubic * x**2))).astype(x.dtype)


def _inputs(seed: int, dtype: type) -> np.ndarray:
    """Wide inputs: some lie in the tail near -6.6 (the first seeds' do)."""
    return (np.random.default_rng(seed).normal(size=(4, 16)) * 10).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", [0, 1, 3])
def test_a_gelu_layer_with_inputs_in_its_tail_passes(seed: int, dtype: type) -> None:
    x = _inputs(seed, dtype)
    tail = (x > -7.5) & (x < -5.5)
    assert tail.any()  # the case: an element whose 1 + tanh(u) is a few hundred units of its rounding
    r = backcheck.check_layer(gelu, gelu_backward, (x,))
    assert r.status == "pass", r
    # the pass vouches for errors of 5% of the tensor's typical gradient, and says so
    assert r.leaves[0].floor_rel <= 0.05
    if dtype is np.float32:
        return  # (a float32 gradient's own resolution covers the tail: nothing is judged wider)
    # and names the elements it judged at a wider step, tail elements only (one whose differences at its own step
    # settled within a bound the pass vouches for needs none)
    said = [n for n in r.notes if "judged at a wider step" in n]
    named = [f"x[{i}, {j}]" for i, j in zip(*np.nonzero(tail), strict=True)]
    assert all(any(name in n for name in named) for n in said), said


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_wrong_gelu_rules_fail_beside_the_tail(seed: int) -> None:
    x = _inputs(seed, np.float64)
    wrong_cubic = backcheck.check_layer(gelu, lambda d, x: gelu_backward(d, x, cubic=0.044715), (x,))
    assert wrong_cubic.status == "fail", wrong_cubic
    assert wrong_cubic.leaves[0].n_mismatch > 0


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_backward_rounded_to_float32_still_fails(seed: int) -> None:
    """tanh's derivative rounded through float32 in a float64 backward: errors of 1e-8 of the gradient, below TINY
    of the tensor's typical one, but resolved at every step (nothing inside stands still): the wider step confirms
    them."""
    x = np.random.default_rng(seed).normal(size=(3, 5))
    r = backcheck.check_layer(
        np.tanh, lambda d, x: d * (1 - np.tanh(x) ** 2).astype(np.float32).astype(np.float64), (x,)
    )
    assert r.status == "fail", r
    assert r.leaves[0].n_mismatch >= 3


def test_a_tensor_half_saturated_keeps_the_typical_size_of_its_live_half() -> None:
    """An erf GELU's gradient at inputs of size 30 is 1 at half the elements and below 1e-8 at the rest: the
    tensor's typical size is that of its live half (its median made it 1e-7), and a pole is still capped."""
    x = np.random.default_rng(3).normal(size=(4, 8)) * 30
    g = 0.5 * (1 + erf(x / np.sqrt(2))) + x * np.exp(-(x**2) / 2) / np.sqrt(2 * np.pi)
    live = np.abs(g) > 0.5
    assert 0.3 < live.mean() < 0.7
    assert np.sqrt(live.mean()) * 0.9 <= typical_size(g) <= 1.0
    for poles in (1, 2):
        assert typical_size(np.r_[np.ones(32 - poles), np.full(poles, 1e20)]) <= 100.0
    # ndtr's gradient at inputs of size 30: five live elements among 32, the rest below 1e-8
    sparse = np.r_[0.3, 0.2, 0.1, 0.05, 1e-3, np.logspace(-40, -9, 27)]
    assert typical_size(sparse) >= 0.05
    big = np.r_[np.ones(1000), np.full(50, 1e20)]  # a sixteenth of a large tensor may be outliers
    assert typical_size(big) <= 100.0
    assert typical_size(np.r_[np.full(16, 1e-12), np.ones(16)]) == pytest.approx(np.sqrt(0.5), rel=1e-6)


def test_an_erf_gelu_layer_at_inputs_of_size_30_passes() -> None:
    def forward(x: np.ndarray) -> np.ndarray:
        return 0.5 * x * (1 + erf(x / np.sqrt(2)))

    def backward(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
        return dout * (0.5 * (1 + erf(x / np.sqrt(2))) + x * np.exp(-(x**2) / 2) / np.sqrt(2 * np.pi))

    x = np.random.default_rng(3).normal(size=(4, 8)) * 30
    r = backcheck.check_layer(forward, backward, (x,))
    assert r.status == "pass", r
    wrong = backcheck.check_layer(forward, lambda d, x: backward(d, x) * 1.01, (x,))
    assert wrong.status == "fail", wrong


def test_fewer_than_half_of_a_small_tensor_are_outliers() -> None:
    """Of three or four elements one may be an outlier: a GELU's three gradients (1e-12, 0.1, 1) keep the size of
    the live two, a pole among ordinary ones is capped, and the tail element of three passes."""
    assert typical_size(np.array([2.8e-12, 0.1, 1.0])) == pytest.approx(np.sqrt((0.01 + 1) / 3), rel=1e-6)
    assert typical_size(np.array([1.0, 1.0, 1e20])) <= 100.0
    assert typical_size(np.array([1.0, 2.0, 1.0, 1e20])) <= 200.0
    x = np.random.default_rng(4).normal(size=3) * 10  # -6.5, -1.7, 16.6
    assert backcheck.check_layer(gelu, gelu_backward, (x,)).status == "pass"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("tail", [-6.979355840668491, -6.974698807063857, -7.02, -6.95])
def test_a_gelu_input_near_minus_seven_passes_where_the_stairs_outlast_a_wider_steps_halvings(tail, dtype):
    # at -7, 1 + tanh(u) (7e-15) moves in units of 1.1e-16 about every 1e-2 of x: the wider step's own halvings
    # stand on one stair (a mismatch of the factor's slope) or cross one (a jump of 4e-16), and only the wider
    # difference itself, with the stairs over its span in its bound, reads the derivative
    x = np.array([tail, 0.5, -1.3, 2.0]).astype(dtype)
    r = backcheck.check_layer(gelu, gelu_backward, (x,), dout=np.ones(4, dtype=dtype))
    assert r.status == "pass", r
    wrong = backcheck.check_layer(gelu, lambda d, x: gelu_backward(d, x, cubic=0.044715), (x,), dout=np.ones(4, dtype))
    assert wrong.status == "fail", wrong
    assert "x[0]" not in {e.name for e in wrong.mismatches}  # (its error there is 1e-14: nothing that matters)


def test_wide_gelu_inputs_of_scale_six_pass():
    for seed in (28, 0, 1, 2):
        x = np.random.default_rng(seed).normal(size=(4, 6)) * 6
        assert backcheck.check_layer(gelu, gelu_backward, (x,)).status == "pass", seed
