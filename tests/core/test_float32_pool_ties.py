"""A max pool computing in float32 (tinynn's MaxPool2D) on integer images: its windows' maxima tie, and a right
backward routes each window's gradient to the first of them, a valid one-sided slope. The forward rounds to
float32, so the one-sided slopes carry a slack of a tenth of their gap from rounding alone, while the slopes
themselves stand still as the step halves: a kink at the point, not one inside the step. Such an element passed
no more: it was inconclusive, and no note, leaf reason or table row named it."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck


def _pool(k: int, stride: int, pad: int, bug: str | None = None):
    def windows(x):
        p = np.pad(x, pad).astype(np.float32)
        n = (p.shape[0] - k) // stride + 1, (p.shape[1] - k) // stride + 1
        return p, [(i * stride, j * stride) for i in range(n[0]) for j in range(n[1])], n

    def forward(x):
        p, at, n = windows(x)
        return np.array([p[i : i + k, j : j + k].max() for i, j in at], np.float32).reshape(n)

    def backward(dout, x):
        p, at, _ = windows(x)
        d = np.zeros(p.shape, np.float32)
        for (i, j), g in zip(at, dout.ravel(), strict=True):
            win = p[i : i + k, j : j + k]
            if bug == "every_tie":  # the gradient to every tied maximum
                d[i : i + k, j : j + k] += g * (win == win.max())
                continue
            m = (
                np.argmax(np.where(win < win.max(), win, -np.inf))
                if bug == "next_value" and win.min() < win.max()
                else np.argmax(win)
            )
            d[i + m // k, j + m % k] += g
        return d[pad : p.shape[0] - pad, pad : p.shape[1] - pad]

    return forward, backward


CASES = {"3x3/1": ((3, 1, 1), (5, 5)), "2x2/2": ((2, 2, 0), (6, 6))}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", [0, 1, 3, 4, 5])
@pytest.mark.parametrize("case", list(CASES))
def test_a_float32_max_pool_routing_each_window_to_its_first_maximum_passes(case, seed, dtype):
    (k, stride, pad), shape = CASES[case]
    x = np.random.default_rng(seed).integers(0, 3, size=shape).astype(dtype)
    report = backcheck.check_layer(*_pool(k, stride, pad), (x,))
    assert report.status == "pass", report
    assert report.leaves[0].n_kinks > 0, report


@pytest.mark.parametrize("strategy", ["full", "auto"])
@pytest.mark.parametrize("bug", ["every_tie", "next_value"])
@pytest.mark.parametrize("seed", [2, 4])
@pytest.mark.parametrize("case", list(CASES))
def test_a_float32_max_pool_routed_wrongly_at_its_ties_still_fails(case, seed, bug, strategy):
    (k, stride, pad), shape = CASES[case]
    x = np.random.default_rng(seed).integers(0, 3, size=shape).astype(np.float32)
    report = backcheck.check_layer(*_pool(k, stride, pad, bug), (x,), strategy=strategy)
    assert report.status == "fail", report

