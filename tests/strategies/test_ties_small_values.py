"""Ties of values much smaller than 1 (integer data scaled by 1e-3 .. 1e-7): an element's step is relative to
max(|x|, 1), so moving a tie by it carries the tie across every other value of the input, a move along which a
sort is no more differentiable than along one element, and the tie's joint test concluded nothing: a rule whose
summed gradient over a tie is off passed, each element a valid one-sided slope. The tie is moved by less than
its distance to the next value."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck


def _f(x):
    flat = x.ravel()
    return float(np.dot(np.sort(flat, kind="stable"), np.linspace(-1, 1, flat.size)))


def _right(x):
    flat = x.ravel()
    g = np.zeros_like(flat)
    g[np.argsort(flat, kind="stable")] = np.linspace(-1, 1, flat.size)
    return g.reshape(x.shape)


def _one_off(x):
    g = _right(x).copy()
    g.flat[0] += 0.128  # its tie's sum off by 0.128, each element still between its tie's end slopes
    return g


def _tie_means(x):
    flat, g = x.ravel(), _right(x).ravel().copy()
    for v in np.unique(flat):
        at = np.flatnonzero(flat == v)
        if at.size > 1:
            g[at] = g[at].mean() * 1.1
    return g.reshape(x.shape)


BASE = np.array([1, -1, 1, -2, 1, -1, 2, 0, -1, 0, 2, 1], dtype=float)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1e-3, 1e-5, 1e-7])
def test_a_wrong_sum_over_a_tie_of_small_values_fails(scale, dtype):
    x = (BASE * scale).astype(dtype)
    assert backcheck.check(_f, x, _right).status == "pass"
    for wrong in (_one_off, _tie_means):
        r = backcheck.check(_f, x, wrong)
        assert r.status == "fail", (wrong.__name__, r)
