"""CS231n layers of several outputs with a cache: ``lstm_step_forward -> (next_h, next_c, cache)`` and
``lstm_step_backward(dnext_h, dnext_c, cache)``."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck
from backcheck.errors import BadInputError


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def lstm_step_forward(x, prev_h, prev_c, wx, wh, b):
    a = x @ wx + prev_h @ wh + b
    h = prev_h.shape[1]
    i, f, o, g = sigmoid(a[:, :h]), sigmoid(a[:, h : 2 * h]), sigmoid(a[:, 2 * h : 3 * h]), np.tanh(a[:, 3 * h :])
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    return next_h, next_c, (x, prev_h, prev_c, wx, wh, i, f, o, g, next_c)


def lstm_step_backward(dnext_h, dnext_c, cache, forget_tanh=False):
    x, prev_h, prev_c, wx, wh, i, f, o, g, next_c = cache
    tc = np.tanh(next_c)
    through = dnext_h * o if forget_tanh else dnext_h * o * (1 - tc**2)  # the bug: tanh' of the cell left out
    dc = dnext_c + through
    da = np.hstack([dc * g * i * (1 - i), dc * prev_c * f * (1 - f), dnext_h * tc * o * (1 - o), dc * i * (1 - g**2)])
    return da @ wx.T, da @ wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(0)


def _inputs(seed):
    rng = np.random.default_rng(seed)
    n, d, h = 3, 4, 5
    return tuple(rng.normal(size=s) for s in [(n, d), (n, h), (n, h), (d, 4 * h), (h, 4 * h), (4 * h,)])


@pytest.mark.parametrize("seed", range(3))
def test_a_right_lstm_step_with_its_cache_passes_and_a_wrong_one_fails(seed):
    args = _inputs(seed)
    kept = [a.copy() for a in args]
    right = backcheck.check_layer(lstm_step_forward, lstm_step_backward, args, cache=True)
    assert right.status == "pass", right
    assert [lf.name for lf in right.leaves] == ["x", "prev_h", "prev_c", "wx", "wh", "b"]

    def wrong(dnext_h, dnext_c, cache):
        return lstm_step_backward(dnext_h, dnext_c, cache, forget_tanh=True)

    report = backcheck.check_layer(lstm_step_forward, wrong, args, cache=True)
    assert report.status == "fail", report
    assert all(np.array_equal(a, b) for a, b in zip(args, kept, strict=True))


def test_a_forward_that_returns_no_cache_is_told_what_cache_true_expects():
    with pytest.raises(BadInputError, match=r"\(out_1, \.\.\., out_k, cache\)"):
        backcheck.check_layer(lambda x: x * 2, lambda d, c: d * 2, (np.ones(3),), cache=True)


def _float32_layer(seed, wrong=1.0):
    """A float32 layer whose cache keeps float32 copies: its backward computes in float32 whatever it is handed."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3, 4)).astype(np.float32)
    w = rng.normal(size=(4, 20)).astype(np.float32)

    def forward(x, w):
        z = x @ w
        return np.tanh(z), np.sin(z), (x.astype(np.float32), w.astype(np.float32))

    def backward(d1, d2, cache):
        x, w = cache
        z = x @ w
        dz = d1 * (1 - np.tanh(z) ** 2) + d2 * np.cos(z)
        return wrong * (dz @ w.T), x.T @ dz

    return forward, backward, (x, w)


@pytest.mark.parametrize("seed", range(4))
def test_a_float32_cache_is_judged_at_float32_not_as_a_float64_run(seed):
    # the backward run on float64 copies computes in float32 through its cache: its result is no float64 run
    # (it does not move with inputs nudged below float32's resolution), and float32 rounding is no formula error
    forward, backward, args = _float32_layer(seed)
    report = backcheck.check_layer(forward, backward, args, cache=True)
    assert report.status == "pass", report
    forward, backward, args = _float32_layer(seed, wrong=1.01)
    assert backcheck.check_layer(forward, backward, args, cache=True).status == "fail"


def test_a_backward_of_the_other_layout_is_told_how_cache_true_calls_it():
    from backcheck.errors import UserFunctionError

    def forward(x):
        return x * 2, x * 3, (x,)

    def backward(douts, cache):  # written for one tuple of douts
        return 2 * douts[0] + 3 * douts[1]

    with pytest.raises(UserFunctionError, match=r"backward\(dout_1, \.\.\., dout_k, cache\)"):
        backcheck.check_layer(forward, backward, (np.ones(3),), cache=True)
