"""check_layer(cache=True) for a layer of several outputs whose backward takes the cache among the douts, as its
parameters name it: Karpathy's LSTM gist and its forks, ``forward -> (H, h_last, cache)`` with
``backward(dH, cache, dhn=None)``. It was called ``backward(dH, dhn, cache)`` and crashed inside the user's code."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck

RNG = np.random.default_rng(0)
X, W, H0 = RNG.normal(size=(3, 2, 4)), RNG.normal(size=(4, 4)) * 0.5, RNG.normal(size=(2, 4))


def forward(X, W, h0):
    H = np.zeros((X.shape[0], *h0.shape))
    h = h0
    for t in range(X.shape[0]):
        h = np.tanh(X[t] @ W + h)
        H[t] = h
    return H, H[-1], {"X": X, "W": W, "H": H, "h0": h0}


def _backward(scale: float):
    def backward(dH, cache, dhn=None):
        X, W, H = cache["X"], cache["W"], cache["H"]
        dH = dH.copy()
        if dhn is not None:
            dH[-1] += dhn
        dX, dW, dh = np.zeros_like(X), np.zeros_like(W), np.zeros_like(cache["h0"])
        for t in reversed(range(X.shape[0])):
            dz = (dH[t] + dh) * (1 - H[t] ** 2)
            dX[t], dh = dz @ W.T, dz
            dW += X[t].T @ dz
        dW[1, 2] *= scale
        return dX, dW, dh

    return backward


@pytest.mark.parametrize("scale", [1.0, 1.02])
def test_a_backward_that_takes_the_cache_second(scale):
    r = backcheck.check_layer(forward, _backward(scale), (X, W, H0), cache=True)
    status = {lf.name: lf.status for lf in r.leaves}
    assert status == {"X": "pass", "W": "pass" if scale == 1.0 else "fail", "h0": "pass"}, r


def test_the_cs231n_order_stays_as_it_was():
    def backward(dH, dhn, cache):  # (douts first, then the cache: the default)
        return _backward(1.0)(dH, cache, dhn)

    assert backcheck.check_layer(forward, backward, (X, W, H0), cache=True).status == "pass"
