"""Random directions on float32 parameters differenced in float64: the formula is judged along each direction at
float64's resolution (the float64 run of the same gradient function), and the float32 gradient's own rounding
along it, ``|<g - g_wide, v>|``, is measured and added to the bound instead of being modelled from float32's eps."""

import numpy as np
import pytest
from agreeing import directions

import backcheck
from backcheck.verdict import NATIVE_GRANT, RES_FACTOR, SAFETY

EPS32 = float(np.finfo(np.float32).eps)


def _loss(v):
    return np.sum(np.sin(v))


def _point(n, seed=1):
    return np.random.default_rng(seed).normal(size=n)


@pytest.mark.parametrize("seed", range(3))
def test_a_correct_float32_gradient_costs_what_a_float64_one_does_and_vouches_far_below_float32(seed):
    x = _point(5000, seed)
    wide = backcheck.check(_loss, x, np.cos, strategy="auto", seed=seed)
    narrow = backcheck.check(_loss, x.astype(np.float32), np.cos, strategy="auto", seed=seed)
    assert wide.ok and narrow.ok, narrow
    # two calls decide on float64 copies; the one there is the baseline's (then two per direction in either run)
    assert narrow.n_evals - 2 * directions(narrow) == wide.n_evals - 2 * directions(wide) + 1
    # differences taken in float32 itself vouch for a few percent at best; the float64 run, for a few hundred
    # units of float32's epsilon (of each element: the rounding of float32 constants it may still carry)
    in_float32 = backcheck.check(_loss, x.astype(np.float32), np.cos, strategy="auto", seed=seed, upcast=False)
    assert narrow.leaves[0].floor_rel < in_float32.leaves[0].floor_rel / 100
    assert narrow.leaves[0].floor_rel < 1024 * EPS32


@pytest.mark.parametrize("strategy", ["full", "projected"])
def test_a_formula_wrong_below_float32s_resolution_fails_as_it_does_element_by_element(strategy):
    # a uniform factor of 1 + 3.8e-6: within SAFETY * RES_FACTOR * eps32 (7.6e-6) of every float32 element, but
    # the float64 run of the same gradient function carries it too (beyond the NATIVE_GRANT units of eps32 of each
    # element granted to native-dtype constants that run may still hold)
    x = _point(200 if strategy == "full" else 5000).astype(np.float32)
    scale = 32 * EPS32
    assert scale > SAFETY * NATIVE_GRANT * EPS32
    assert scale < SAFETY * RES_FACTOR * EPS32
    right = backcheck.check(_loss, x, np.cos, strategy=strategy)
    wrong = backcheck.check(_loss, x, lambda v: np.cos(v) * (1 + scale), strategy=strategy)
    assert right.ok and wrong.status == "fail", (right, wrong)


def test_the_float32_rounding_of_a_cancelled_gradient_is_measured_not_modelled():
    # d/dr ((x + r) - x)**2 = 2 ((x + r) - x): in float32 the backward's value carries the rounding of x + r, far
    # above eps32 times itself; in float64 it is the formula to 1e-16
    rng = np.random.default_rng(0)
    x = rng.normal(size=4096)
    r = 1e-3 * rng.normal(size=4096)

    def loss(p):
        return np.sum(((p[0] + p[1]) - p[0]) ** 2)

    def grad(p):
        y = (p[0] + p[1]) - p[0]
        return [np.zeros_like(p[0]), 2 * y]

    params = [x.astype(np.float32), r.astype(np.float32)]
    y32 = (params[0] + params[1]) - params[0]
    assert np.max(np.abs(y32 - params[1]) / np.abs(params[1])) > 1e3 * EPS32  # rounding far above the model
    right = backcheck.check(loss, params, grad, strategy="projected")
    assert right.ok, right

    def wrong(p):
        y = (p[0] + p[1]) - p[0]
        return [np.zeros_like(p[0]), 2 * y * (1 + 1e-2 * (np.arange(y.size) % 2))]

    assert backcheck.check(loss, params, wrong, strategy="projected").status == "fail"


def _counted_data(strategy):
    """A loss linear in W over float32 data with integer weights, and its gradient function, which multiplies the
    float32 rows by their counts in float32 (as hand-written loops do: ``X[i] * count``)."""
    rng = np.random.default_rng(7)
    n, d, k = (12, 6, 4) if strategy == "full" else (400, 40, 30)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, k, size=n)
    counts = [int(c) for c in rng.integers(1, 9, size=n)]
    W = (0.1 * rng.normal(size=(d, k))).astype(np.float32)

    def loss(W):
        return sum(c * float(X[i] @ W[:, y[i]]) for i, c in enumerate(counts)) / n + 0.3 * float(np.sum(W * W))

    def grad(W, wrong=0.0):
        dW = np.zeros(W.shape)
        for i, c in enumerate(counts):
            dW[:, y[i]] += X[i] * c  # a float32 product, also when W is float64
        dW[:, 0] *= 1 + wrong
        return dW / n + 0.6 * W

    return loss, grad, W


@pytest.mark.parametrize("strategy", ["full", "projected"])
def test_float32_constants_in_the_gradient_function_are_no_false_alarm(strategy):
    # the float64 run of grad still rounds X[i] * c in float32: within a few units of float32's epsilon of each
    # element, which is granted; a column wrong by 1e-4 (about 800 of them) fails
    loss, grad, W = _counted_data(strategy)
    x32 = np.float32(3.7)
    assert (x32 * 3).dtype == np.float32 and x32 * 3 != np.float64(x32) * 3  # the product rounds in float32
    for seed in range(3):
        right = backcheck.check(loss, W, grad, strategy=strategy, seed=seed)
        assert right.ok, right
    wrong = backcheck.check(loss, W, lambda W: grad(W, wrong=1e-4), strategy=strategy)
    assert wrong.status == "fail", wrong


def test_the_formula_note_names_the_gradients_own_dtype():
    # a float16 layer whose input gradient is 5% off: within float16's modelled resolution element by element,
    # wrong in the float64 run; the note names float16, not float32
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(4, 3)).astype(np.float16), rng.normal(size=(3, 2)).astype(np.float16)

    def backward(d, x, w, scale=1.05):
        dz = d * (1 - np.tanh(x @ w) ** 2)
        return scale * (dz @ w.T), x.T @ dz

    report = backcheck.check_layer(lambda x, w: np.tanh(x @ w), backward, (x, w))
    assert report.status == "fail"
    (note,) = [n for n in report.notes if "resolution but wrong in the float64 run" in n]
    assert "float16 resolution" in note and "float32" not in note
    assert backcheck.check_layer(lambda x, w: np.tanh(x @ w), lambda d, x, w: backward(d, x, w, 1.0), (x, w)).ok
