"""A float32 function refined on a Richardson table (its single differences resolve a few percent): a table
whose steps reach past the function's scale converges all the same, to a value off the derivative, and called
right backward passes wrong. A ReLU layer whose pre-activation lies 4e-4 from its kink is differentiable at the
point, but every difference wider than that averages the slopes beyond the kink; a batch norm over features
of spread 0.01 bends on that scale, and the table starts at a step of 1. Elements a table calls wrong are refined
again from steps below the table's: a right rule passes, and wrong ones still fail."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck


def _relu_net(seed: int, gap: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float32 inputs, weights and a readout, with the pre-activation of example 1, unit 0 at -gap."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 6)).astype(np.float32)
    w = (0.3 * rng.standard_normal((6, 8))).astype(np.float32)
    v = rng.standard_normal(8).astype(np.float32)
    a = x @ w
    w[0, 0] -= (a[1, 0] + gap) / x[1, 0]  # move one weight so that the pre-activation sits just below 0
    return x, w, v


def _loss(x: np.ndarray, v: np.ndarray):
    def f(w: np.ndarray) -> np.float32:
        return np.float32(np.sum(np.tanh(np.maximum(0, x @ w) @ v)))

    return f


def _grad(x: np.ndarray, v: np.ndarray, scale_one: float = 1.0):
    def g(w: np.ndarray) -> np.ndarray:
        a = x @ w
        t = np.tanh(np.maximum(0, a) @ v)
        out = x.T @ (np.outer(1 - t**2, v) * (a > 0))
        out[2, 3] *= scale_one
        return out.astype(np.float32)

    return g


@pytest.mark.parametrize(("seed", "gap"), [(0, 4e-4), (1, 4e-4), (0, 2e-3), (1, 2e-3), (2, 2e-3)])
def test_a_float32_relu_layer_just_off_its_kink_passes(seed: int, gap: float) -> None:
    x, w, v = _relu_net(seed, gap)
    pre = (x.astype(np.float64) @ w.astype(np.float64))[1, 0]
    assert -3 * gap < pre < 0  # differentiable at the point, a kink within the table's steps
    r = backcheck.check(_loss(x, v), w, _grad(x, v))
    assert r.status == "pass", r
    assert r.leaves[0].n_kinks == 0, r  # no element is at a kink


@pytest.mark.parametrize(("seed", "gap"), [(2, 4e-4), (3, 4e-4), (3, 2e-3)])
def test_elements_whose_every_difference_crosses_the_kink_are_not_failed(seed: int, gap: float) -> None:
    """Where even the screen's differences cross the kink (the weights of the unit itself), the table below
    may find too few rows to vouch: inconclusive at worst, never a mismatch."""
    x, w, v = _relu_net(seed, gap)
    r = backcheck.check(_loss(x, v), w, _grad(x, v))
    assert r.status in ("pass", "inconclusive"), r
    assert r.leaves[0].n_mismatch == 0, r


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_float32_relu_layer_just_off_its_kink_with_a_wrong_element_fails(seed: int) -> None:
    x, w, v = _relu_net(seed, 4e-4)
    r = backcheck.check(_loss(x, v), w, _grad(x, v, scale_one=1.05))
    assert r.status == "fail", r
    assert r.leaves[0].n_mismatch >= 1


def _batchnorm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray):
    x, gamma, beta = (a.astype(np.float32) for a in (x, gamma, beta))  # a float32 kernel
    mu = x.mean(axis=0)
    xmu = x - mu
    ivar = 1.0 / np.sqrt((xmu**2).mean(axis=0) + 1e-5)
    xhat = xmu * ivar
    return (gamma * xhat + beta).astype(np.float32), (xhat, gamma, ivar)


def _batchnorm_backward(mean_term: float = 1.0):
    def backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, ...]:
        xhat, gamma, ivar = cache
        n = dout.shape[0]
        dbeta = dout.sum(0)
        dgamma = (dout * xhat).sum(0)
        dx = (gamma * ivar / n) * (n * dout - mean_term * dbeta - xhat * dgamma)
        return dx, dgamma, dbeta

    return backward


def _features(seed: int) -> tuple[np.ndarray, ...]:
    """Features near 0.05 with a spread of 0.01: batch norm bends on the scale of the spread."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((16, 12)) * 0.01 + 0.05).astype(np.float32)
    return x, rng.standard_normal(12).astype(np.float32), rng.standard_normal(12).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_float32_batchnorm_over_features_of_small_spread_passes(seed: int) -> None:
    r = backcheck.check_layer(_batchnorm, _batchnorm_backward(), _features(seed), cache=True)
    assert r.status == "pass", r


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mean_term", [0.0, 0.99])
def test_a_float32_batchnorm_with_its_mean_term_wrong_fails(seed: int, mean_term: float) -> None:
    r = backcheck.check_layer(_batchnorm, _batchnorm_backward(mean_term), _features(seed), cache=True)
    assert r.status == "fail", r
    assert r.leaf("x").n_mismatch >= 1


def _smoothed_cross_entropy(x: np.ndarray, y: np.ndarray, eps: float = 0.1):
    """Label-smoothed cross-entropy in float32, its loss returned as float32 (a loss of size 2.3)."""
    x = x.astype(np.float32)
    z = x - x.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    q = np.full(x.shape, eps / x.shape[1], dtype=np.float32)
    q[np.arange(len(y)), y] += 1 - eps
    loss = np.float32(-(q * logp).sum() / len(y))
    return np.array(loss, dtype=np.float32), (np.exp(logp), q)


def _smoothed_backward(scale: float = 1.0):
    def backward(dout: np.ndarray, cache: tuple) -> tuple:
        p, q = cache
        dx = scale * dout * (p - q) / len(p)
        return dx.astype(np.float32), None

    return backward


@pytest.mark.parametrize("seed", [0, 1])
def test_a_float32_loss_relative_to_its_value_at_the_point_keeps_its_rounding(seed: int) -> None:
    """phi is taken relative to the outputs at the point (0 there): the table's rounding is that of the loss
    (2.4e-7 at 2.3), not of phi (none), or a table over steps where f stood still converges to exactly 0."""
    rng = np.random.default_rng(seed)
    x = (0.01 * rng.standard_normal((20, 10))).astype(np.float32)  # near-uniform logits
    y = rng.integers(0, 10, 20)
    r = backcheck.check_layer(_smoothed_cross_entropy, _smoothed_backward(), (x, y), cache=True, constant=["y"])
    assert r.status == "pass", r
    wrong = backcheck.check_layer(_smoothed_cross_entropy, _smoothed_backward(1.05), (x, y), cache=True, constant=["y"])
    assert wrong.status == "fail", wrong


def _naive_bce(z: np.ndarray, t: np.ndarray):
    p = 1 / (1 + np.exp(-z))
    return -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)), (p - t) / z.size


def test_a_float32_staircase_that_no_step_resolves_is_inconclusive_not_wrong() -> None:
    """log(1 - p) at p = sigmoid(13) in float32 moves in steps of 3% of itself: f stands still at the check's
    step and at every step of the table, which says nothing of the rule."""
    z = np.array([[13.04, 9.47, -7.04]], dtype=np.float32)
    t = np.zeros((1, 3), dtype=np.float32)
    backward = lambda dout, cache: (dout * cache, None)  # noqa: E731
    r = backcheck.check_layer(_naive_bce, backward, (z, t), cache=True, constant=["t"])
    assert r.status in ("pass", "inconclusive"), r
    assert r.leaves[0].n_mismatch == 0
    twice = backcheck.check_layer(_naive_bce, lambda d, c: (2 * d * c, None), (z, t), cache=True, constant=["t"])
    assert twice.status == "fail", twice  # the element at 9.5 moves f clearly: a rule twice the slope is wrong


def _elu32(x: np.ndarray):
    x32 = x.astype(np.float32)
    out = np.where(x32 > 0, x32, np.expm1(np.minimum(x32, 0))).astype(np.float32)
    return out, (x32, out)


def _elu_backward(missing_one: bool = False):
    def backward(dout: np.ndarray, cache: tuple) -> tuple:
        x, out = cache
        return (dout * np.where(x > 0, 1.0, out + (0.0 if missing_one else 1.0))).astype(np.float32)

    return backward


@pytest.mark.parametrize("seed", range(5))
def test_a_float32_elu_at_inputs_of_size_001_passes_and_its_wrong_rule_fails(seed: int) -> None:
    """ELU's second derivative jumps at 0: a table whose steps reach past 0 converges to a value a hair off
    (1e-3 of the gradient, 1.04 of its bound); one started below agrees with the claim but cannot contradict
    the first, so the first table's hair-wide mismatch is not confirmed."""
    x = (0.01 * np.random.default_rng(seed).standard_normal((4, 5))).astype(np.float32)
    assert backcheck.check_layer(_elu32, _elu_backward(), (x,), cache=True).status == "pass"
    assert backcheck.check_layer(_elu32, _elu_backward(True), (x,), cache=True).status == "fail"


SELU_L, SELU_A = 1.0507009873554805, 1.6732632423543772


def _selu32(x: np.ndarray):
    x32 = x.astype(np.float32)
    return (SELU_L * np.where(x32 > 0, x32, SELU_A * (np.exp(x32) - 1))).astype(np.float32), x32


def _selu_backward(lam_on_negatives: bool = True):
    def backward(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
        neg = SELU_A * np.exp(x) * (SELU_L if lam_on_negatives else 1.0)
        return (dout * np.where(x > 0, SELU_L, neg)).astype(np.float32)

    return backward


@pytest.mark.parametrize("seed", range(4))
def test_a_float32_selu_at_inputs_of_size_001_is_not_failed(seed: int) -> None:
    """SELU's slope jumps at 0 (1.05 to 1.76): tables from steps above |x| average both sides; below, a float32
    exp(x) - 1 rounds by units of 1 (its exp), a share of the change over a step of |x| / 8 at x of 3e-5."""
    x = (0.01 * np.random.default_rng(seed).standard_normal((16, 40))).astype(np.float32)
    r = backcheck.check_layer(_selu32, _selu_backward(), (x,), cache=True)
    assert r.status in ("pass", "inconclusive") and r.leaves[0].n_mismatch == 0, r
    assert backcheck.check_layer(_selu32, _selu_backward(False), (x,), cache=True).status == "fail"


def _lse_sin(x: np.ndarray) -> np.float32:
    """Computed in float64 and returned as float32 (a float64 kernel whose result is cast): the float32 path."""
    s = np.outer(x, x).astype(np.float64)
    return np.float32(np.log(np.exp(np.sin(s)).sum(axis=1)).sum())


def _lse_sin_grad(err: float = 0.0, k: int = 0):
    def g(x: np.ndarray) -> np.ndarray:
        s = np.outer(x, x).astype(np.float64)
        p = np.exp(np.sin(s))
        m = p / p.sum(axis=1, keepdims=True) * np.cos(s)
        out = m @ x + m.T @ x
        out[k] += err
        return out

    return g


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", [1, 7, 13])
def test_an_error_past_the_floor_a_float32_pass_states_does_not_pass(seed: int, dtype: type) -> None:
    """The floor a pass states is the sharp tables' bound; an element whose table calls it wrong and whose tables
    started below are too noisy to confirm it (its steps past 0, or a mismatch of a hair) passed on its screen's
    bound, some 30 times that floor: an error 1.3x the floor of the right rule's pass passed."""
    x = np.random.default_rng(seed).standard_normal(12).astype(dtype)
    right = backcheck.check(_lse_sin, x, _lse_sin_grad())
    assert right.status == "pass", right
    wrong = backcheck.check(_lse_sin, x, _lse_sin_grad(1.3 * right.leaves[0].floor, seed % 12))
    assert wrong.status == "fail", wrong
    assert [e.index for e in wrong.mismatches] == [(seed % 12,)], wrong


@pytest.mark.parametrize(("seed", "dtype"), [(17, np.float32), (17, np.float64), (5, np.float64), (4, np.float32)])
def test_an_error_ten_times_the_floor_a_float32_pass_states_fails(seed: int, dtype: type) -> None:
    """Steps past 0 excused a table's mismatch of 20 of its bounds where a table started below, its steps short
    of 0, had called the element wrong too (it passed, or was inconclusive). And an element whose first difference
    passes only with the gradient's own rounding added is refined on a table as the others are (it was held to
    that difference's bound, and ten times the floor passed)."""
    x = np.random.default_rng(seed).standard_normal(12).astype(dtype)
    right = backcheck.check(_lse_sin, x, _lse_sin_grad())
    assert right.status == "pass", right
    wrong = backcheck.check(_lse_sin, x, _lse_sin_grad(10 * right.leaves[0].floor, seed % 12))
    assert wrong.status == "fail" and wrong.leaves[0].n_mismatch == 1, wrong
