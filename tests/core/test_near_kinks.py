"""Points a little off several kinks: differentiable, so a correct gradient passes and a wrong one fails.

One input feeds several ReLU pre-activations that lie 1e-7 to 1e-6 from 0, well inside its finite-difference
step: each one-sided slope of a larger step averages the slopes beyond the kinks it crosses, and the averages
shift as the halved step passes each kink in turn. Below the nearest kink the difference is the derivative
itself, and that is where these elements must be judged.
"""

import numpy as np
import pytest

import backcheck
from backcheck.evaluate import Evaluator, Output
from backcheck.judgement import judge
from backcheck.refinement import FINER
from backcheck.tree import Tree
from backcheck.verdict import AMBIGUOUS, KINK, MAX_LEVELS, MISMATCH, OK, FirstDifferences, Tolerance

#: How far the pre-activations lie from the ReLU kink: inside every step the checker tries before its finer ones.
NEAR = (1e-7, 1e-6)
#: The error of a wrong gradient element, against gradients of order 1.
WRONG_BY = 1e-2


def rnn_forward(x, h_prev, wx, wh, b):
    """h = relu(x @ wx + h_prev @ wh + b)."""
    return np.maximum(x @ wx + h_prev @ wh + b, 0.0)


def rnn_backward(dout, x, h_prev, wx, wh, b):
    da = dout * (x @ wx + h_prev @ wh + b > 0)
    return da @ wx.T, da @ wh.T, x.T @ da, h_prev.T @ da, da.sum(axis=0)


def mlp_forward(x, w1, b1, w2):
    """relu(x @ w1 + b1) @ w2."""
    return np.maximum(x @ w1 + b1, 0.0) @ w2


def mlp_backward(dout, x, w1, b1, w2):
    z = x @ w1 + b1
    dh = (dout @ w2.T) * (z > 0)
    return dh @ w1.T, x.T @ dh, dh.sum(axis=0), np.maximum(z, 0.0).T @ dout


def _near_zero(rng, shape):
    """Pre-activations at distances 1e-7 to 1e-6 from the kink, on either side."""
    return np.exp(rng.uniform(*np.log(NEAR), size=shape)) * rng.choice([-1.0, 1.0], size=shape)


def rnn_near_kinks(seed, n):
    """Every pre-activation within 1e-6 of 0; the terms that sum to them are small too, so that none cancels."""
    rng = np.random.default_rng(seed)
    x, wx, wh = 1e-7 * rng.normal(size=(n, 2)), rng.normal(size=(2, 4)), 0.5 * rng.normal(size=(4, 4))
    target = _near_zero(rng, (n, 4))
    b = 1e-6 * rng.normal(size=4)
    h_prev = np.linalg.solve(wh.T, (target - x @ wx - b).T).T
    return x, h_prev, wx, wh, b


def mlp_near_kinks(seed, n):
    rng = np.random.default_rng(seed)
    x, w1, w2 = 1e-7 * rng.normal(size=(n, 2)), rng.normal(size=(2, 5)), rng.normal(size=(5, 3))
    b1 = _near_zero(rng, 5) - (x @ w1)[0]
    return x, w1, b1, w2


LAYERS = {"rnn": (rnn_forward, rnn_backward, rnn_near_kinks), "mlp": (mlp_forward, mlp_backward, mlp_near_kinks)}
CASES = [(layer, seed, n) for layer in LAYERS for seed in range(6) for n in (1, 3)]


def _distances(layer, inputs):
    """The distances to the kink that moving x[0, 0] alone meets, in units of x."""
    if layer == "rnn":
        x, h_prev, wx, wh, b = inputs
        a, w = (x @ wx + h_prev @ wh + b)[0], wx[0]
    else:
        x, w1, b1, _ = inputs
        a, w = (x @ w1 + b1)[0], w1[0]
    return np.abs(a / w)


@pytest.mark.parametrize("layer, seed, n", CASES)
def test_a_correct_backward_passes_beside_several_kinks(layer, seed, n):
    forward, backward, make = LAYERS[layer]
    inputs = make(seed, n)
    far = _distances(layer, inputs)
    step = np.cbrt(np.finfo(np.float64).eps)  # x is far below 1: its step is about eps^(1/3)
    assert np.sum(far < step) >= 2, far  # the case is what it claims: x[0, 0] crosses several kinks in its step
    report = backcheck.check_layer(forward, backward, inputs, seed=seed)
    assert report.ok, report
    assert report.leaf("x").status == "pass", report


def _wrong_at(backward, k):
    def wrong(dout, *inputs):
        grads = [np.array(g, copy=True) for g in backward(dout, *inputs)]
        grads[0].reshape(-1)[k] += WRONG_BY
        return tuple(grads)

    return wrong


@pytest.mark.parametrize("layer, seed, n", CASES)
def test_a_gradient_wrong_by_a_hundredth_beside_several_kinks_fails(layer, seed, n):
    forward, backward, make = LAYERS[layer]
    inputs = make(seed, n)
    for k in range(inputs[0].size):
        report = backcheck.check_layer(forward, _wrong_at(backward, k), inputs, seed=seed)
        assert report.status == "fail", report
        x = report.leaf("x")
        name = f"x[{k // inputs[0].shape[1]}, {k % inputs[0].shape[1]}]"
        assert {e.name for e in x.worst if e.status in ("mismatch", "dead")} == {name}, report


def test_the_explored_point_of_the_zoo_relu_rnn_passes():
    """The point backcheck.explore found: x[2, 1] crosses kinks at 2.2e-6, 4.6e-6 and 1.1e-5 within its step
    of 6e-6, where the central differences at two steps agreed by coincidence (a mismatch was reported)."""
    from backcheck.zoo import get

    x = np.full((4, 2), -1e-07)
    h_prev = np.array(
        [
            [0.00011133210321648291, 0.0005366213846637377, 0.00011331678125500491],
            [0.0002799511816078632, 0.0004941727752641382, -0.002340599260554727],
            [0.0013213364741314875, 0.0007389945952911382, 0.0006495043081808645],
            [-0.00029497947439189443, 0.00030373702876211026, -0.0015182796151690912],
        ]
    )
    wx = np.array(
        [
            [-1.7058583072790667, 0.80282163849685, -1.18191728424973],
            [-0.564704763671248, -1.3842396889308173, 1.6566207158418325],
        ]
    )
    wh = np.array(
        [
            [0.003274102972384331, 0.003274102972384331, -0.0006224567253694104],
            [0.0005621166546881185, 5.379317968728325e-07, 0.003274102972384331],
            [0.0021827353149228876, 0.003274102972384331, 0.003274102972384331],
        ]
    )
    b = np.array([0.0, -1e-07, -1e-07])
    layer = get("rnn_relu_step")
    inputs = (x, h_prev, wx, wh, b)
    assert layer.forward is not None
    report = backcheck.check_layer(layer.forward, layer.backward, inputs)
    assert report.ok, report
    bad = backcheck.check_layer(layer.forward, _wrong_at(layer.backward, 5), inputs)
    assert bad.status == "fail" and bad.leaf("x").status == "fail", bad


# --- the verdict itself, on one coordinate that crosses several kinks ---------------------------------------------

#: Kinks of f(t) = sum_j c_j relu(t - t_j) around t = 0, at distances 1e-7 to 3e-6 on both sides (weights c_j).
KINKS = np.array([-3e-6, -4e-7, -1e-7, 2e-7, 9e-7, 2.5e-6])
WEIGHTS = np.array([1.3, -0.7, 2.1, -1.9, 0.8, 1.1])
STEP = 1e-5


def _judged(analytic, kinks=KINKS, weights=WEIGHTS):
    """Judge d/dt of sum_j c_j relu(t - t_j) at t = 0 with the value ``analytic``; return (verdict, steps used)."""
    tree = Tree(np.zeros(1), "t")
    ev = Evaluator(tree, lambda t: float(np.sum(weights * np.maximum(t[0] - kinks, 0.0))), Output.loss("f"), "f")
    ev.baseline()
    steps: list[float] = []
    element = ev.element

    def recorded(i, offsets):
        steps.append(abs(float(offsets[0])))
        return element(i, offsets)

    ev.element = recorded
    idx, h = np.arange(1), np.full(1, STEP)
    j = judge(
        ev,
        idx,
        np.array([analytic]),
        h,
        FirstDifferences(*ev.first_differences(idx, h)),
        np.zeros(1),
        Tolerance(),
        typical=np.ones(1),
    )
    return j, steps


def test_several_kinks_crossed_at_different_distances_judged_below_the_nearest():
    exact = float(np.sum(WEIGHTS[KINKS < 0]))  # the kinks already passed are active at t = 0
    j, steps = _judged(exact)
    assert j.status[0] == OK and abs(j.numeric[0] - exact) <= j.bound[0] <= 1e-6, (j, steps)
    assert min(steps) < np.min(np.abs(KINKS))  # decided below the nearest kink, where the difference is exact
    for wrong in (exact + WRONG_BY, exact - WRONG_BY):
        j, _ = _judged(wrong)
        assert j.status[0] == MISMATCH, j


def test_a_kink_at_the_point_stays_a_kink_and_costs_no_finer_steps_when_its_value_is_a_slope():
    kinks, weights = np.array([-2e-5, 0.0, 3e-5]), np.array([1.3, 1.1, -0.7])  # one at the point, two beyond the step
    left, right = 1.3, 1.3 + 1.1
    j, steps = _judged(left, kinks, weights)  # ReLU'(0) = 0: the left-hand slope
    assert j.status[0] == KINK, j
    assert min(steps) >= STEP / 2**MAX_LEVELS  # a settled kink at one of its slopes: no finer step was taken
    # a subgradient strictly between the slopes is looked at closer (not their mean: the screen clears that one)
    j, steps = _judged(0.75 * left + 0.25 * right, kinks, weights)
    assert j.status[0] == KINK and min(steps) <= STEP * FINER[0], (j, steps)
    for wrong in (left - WRONG_BY, right + WRONG_BY):  # outside the slopes: re-checked nearby, and wrong
        j, _ = _judged(wrong, kinks, weights)
        assert j.status[0] == AMBIGUOUS, j
        report = backcheck.check(
            lambda t: float(np.sum(weights * np.maximum(t[0] - kinks, 0.0))),
            np.zeros(1),
            lambda t, wrong=wrong: np.array([wrong]),
        )
        assert report.status == "fail", report


# --- what the retry must not do: turn a mismatch of a smooth function into a pass -------------------------------


@pytest.mark.parametrize("rel", [1e-2, 1e-3])
@pytest.mark.parametrize("size", [1e-4, 1e-3])
def test_a_smooth_function_with_gradients_small_against_its_curvature_still_fails(size, rel):
    """At x ~ 1e-3, the one-sided slopes of sum(x^2 + cos x) differ by f'' h, a large fraction of f' ~ x: the
    first difference looks kinked, and finer steps see less (their rounding grows); the mismatch stands."""
    x = size * np.random.default_rng(0).normal(size=20)
    report = backcheck.check(
        lambda x: float(np.sum(x**2) + np.sum(np.cos(x))), x, lambda x: (2 * x - np.sin(x)) * (1 + rel)
    )
    assert report.status == "fail", report


@pytest.mark.parametrize("off", [1e-3, 1e-6])
def test_a_wrong_gradient_at_a_stationary_point_still_fails(off):
    report = backcheck.check(lambda x: float(np.sum(np.cos(x))), np.zeros(5), lambda x: -np.sin(x) + off)
    assert report.status == "fail", report


# --- elements smaller than their step: a kink at the element's own zero lies inside every default step -----------

#: Sizes of the elements, all far below the default step (about 6e-6 in float64, 5e-3 in float32).
TINY_SCALES = (1e-9, 1e-12, 1e-15)


def _relu_sum(y):
    return float(np.sum(np.maximum(y, 0.0)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("scale", TINY_SCALES)
def test_relu_of_elements_far_below_the_step_judges_each_side_not_a_kink(scale, dtype):
    """ReLU at y = 1e-9 is differentiable (slope 1 or 0); a step of 6e-6 crosses its zero, where either slope is a
    subgradient. A mask that is inverted or all zeros fails; the right one passes."""
    y = (np.array([1.0, -2.0, 3.0, -0.5]) * scale).astype(dtype)
    right = backcheck.check(_relu_sum, y, lambda y: (y > 0).astype(y.dtype))
    assert right.status == "pass", right
    for wrong in (lambda y: (y < 0).astype(y.dtype), lambda y: np.zeros_like(y)):
        report = backcheck.check(_relu_sum, y, wrong)
        assert report.status == "fail", report


@pytest.mark.parametrize("scale", TINY_SCALES)
def test_the_norm_of_a_tiny_vector_is_smooth_there_and_a_flipped_sign_fails(scale):
    """||x|| is differentiable away from 0; for x of size 1e-12, every default step sees the cone at 0, where
    any vector of norm <= 1 is a subgradient, the flipped one too."""
    x = np.array([0.3, -0.5, 0.8]) * scale
    right = backcheck.check(lambda x: float(np.linalg.norm(x)), x, lambda x: x / np.linalg.norm(x))
    assert right.status == "pass", right
    flipped = backcheck.check(lambda x: float(np.linalg.norm(x)), x, lambda x: -x / np.linalg.norm(x))
    assert flipped.status == "fail", flipped
    assert {e.index for e in flipped.mismatches} == {(0,), (1,), (2,)}, flipped


def test_a_tiny_element_at_a_true_tie_stays_a_kink():
    """max(x0, x1) with x0 = x1 = 1e-9: a kink at the point at every scale; either slope passes, as at x = 0."""
    x = np.array([1e-9, 1e-9, 5e-10])
    for claim in ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]):
        report = backcheck.check(lambda x: float(np.max(x)), x, lambda x, c=claim: np.array(c))
        assert report.status == "pass", report
    report = backcheck.check(lambda x: float(np.max(x)), x, lambda x: np.array([0.0, 0.0, 1.0]))
    assert report.status == "fail", report


def test_a_large_array_of_tiny_relu_inputs_with_an_inverted_mask_fails_under_auto():
    y = np.random.default_rng(3).normal(size=20_000) * 1e-9
    w = np.linspace(0.5, 1.5, y.size)

    def f(y):
        return float(np.sum(np.maximum(y, 0.0) * w))

    assert backcheck.check(f, y, lambda y: (y > 0) * w).status == "pass"
    assert backcheck.check(f, y, lambda y: (y < 0) * w).status == "fail"
