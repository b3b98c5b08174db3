"""A layer that holds one array in two slots (``self.params = [W, W]``, deep-learning-from-scratch-2's negative
sampling loss) is checked with the slots tied, against the sum of their gradients. Named alone in ``params=``, the
other slot was called a constant of the check while every move of the named one moved it too: a right backward
failed. The slots holding a named slot's very array are tied to it now."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck


class Tied:
    def __init__(self, W, factor=1.0):
        self.params, self.grads, self.factor = [W, W], [np.zeros_like(W), np.zeros_like(W)], factor

    def forward(self, x):
        self.x = x
        return x @ self.params[0] + np.tanh(x @ self.params[1])

    def backward(self, dout):
        W = self.params[0]
        self.grads[0][...] = self.x.T @ dout
        g2 = dout * (1 - np.tanh(self.x @ W) ** 2)
        self.grads[1][...] = self.x.T @ g2 * self.factor
        return dout @ W.T + g2 @ W.T


def _point():
    rng = np.random.default_rng(0)
    return rng.normal(size=(3, 2)), rng.normal(size=(4, 3))


@pytest.mark.parametrize("params", [None, ["params[0]"], ["params[0]", "params[1]"]])
def test_a_tied_pair_passes_however_its_slots_are_named(params):
    W, x = _point()
    report = backcheck.check_object(Tied(W), x, params=params)
    assert report.status == "pass", report
    assert any("tied weights" in n for n in report.notes), report.notes
    assert not any("constants in this check" in n for n in report.notes), report.notes


def test_one_slots_gradient_wrong_fails_with_the_pair_named_once():
    W, x = _point()
    report = backcheck.check_object(Tied(W, factor=1.01), x, params=["params[0]"])
    assert report.status == "fail" and [lf.name for lf in report.leaves if lf.status == "fail"] == ["params[0]"]
