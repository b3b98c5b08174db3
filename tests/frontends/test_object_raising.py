"""A layer's forward that raises at one call of the check's: the error, or the note where it was the backward's
second (linearity) run, names the method that raised, not the backward it ran under."""

from __future__ import annotations

import numpy as np

import backcheck
from backcheck.errors import UserFunctionError


class RaisesOnce:
    """A forward that raises at one call of the check's (a flaky data-dependent path): the call that raised is named
    by the method that raised, not by the backward it ran under."""

    calls = 0
    at = -1

    def __init__(self):
        self.W = np.array([[1.0, 2.0], [3.0, -1.0]])

    def forward(self, x):
        type(self).calls += 1
        if type(self).calls == type(self).at:
            raise RuntimeError(f"boom at call {self.at}")
        self.x = x
        return x @ self.W

    def backward(self, d):
        self.dW = self.x.T @ d
        return d @ self.W.T


def test_a_forward_that_raises_under_a_later_backward_call_is_named():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    RaisesOnce.calls, RaisesOnce.at = 0, 10**9
    backcheck.check_object(RaisesOnce(), x)
    total = RaisesOnce.calls  # the forward calls of one check; the linearity run's is among the last ones
    said = []
    for at in range(2, total + 1):
        RaisesOnce.calls, RaisesOnce.at = 0, at
        try:
            report = backcheck.check_object(RaisesOnce(), x)
        except UserFunctionError as exc:
            assert str(exc).startswith("RaisesOnce.forward raised RuntimeError"), exc
            continue
        said += [n for n in report.notes if "linearity in dout was not checked" in n]
    assert said and all(n.startswith("RaisesOnce.forward raised RuntimeError") for n in said), said
