"""A layer whose forward rebinds a parameter to the very values it held: ``self.W = self.W.astype(X.dtype)``, a
weight clip that clips nothing, ``np.ascontiguousarray`` of a Fortran-ordered weight. check_object took any
array forward rebinds for state (a stored input) and left it out, so a wrong gradient of it passed. Where
backward writes its gradient and forward's output moves with it, it is a parameter: checked, right or wrong. A
stored input that backward writes a gradient beside (self.x and self.dx) stays state."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck

RNG = np.random.default_rng(0)
W0, B0, X = RNG.normal(size=(3, 2)), RNG.normal(size=2), RNG.normal(size=(5, 3))


def _rebind(habit: str, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    if habit == "astype":
        return w.astype(x.dtype)
    if habit == "clip":
        return np.clip(w, -5, 5)
    return np.ascontiguousarray(w)


class Dense:
    def __init__(self, habit: str, factor: float = 1.0):
        self.habit, self.factor = habit, factor
        self.W = np.asfortranarray(W0) if habit == "contiguous" else W0.copy()
        self.b = B0.copy()

    def forward(self, X):
        self.W = _rebind(self.habit, self.W, X)
        self.X = X
        self.z = X @ self.W + self.b
        return np.tanh(self.z)

    def backward(self, d):
        dz = d * (1 - np.tanh(self.z) ** 2)
        self.dW = self.factor * self.X.T @ dz
        self.db = dz.sum(0)
        return dz @ self.W.T


class Dicts:  # the params / grads dicts convention, with a clip in forward
    def __init__(self, factor: float = 1.0):
        self.params, self.grads, self.factor = {"W": W0.copy(), "b": B0.copy()}, {}, factor

    def forward(self, X):
        self.params["W"] = np.clip(self.params["W"], -5, 5)
        self.X = X
        return X @ self.params["W"] + self.params["b"]

    def backward(self, d):
        self.grads["W"], self.grads["b"] = self.factor * self.X.T @ d, d.sum(0)
        return d @ self.params["W"].T


@pytest.mark.parametrize("habit", ["astype", "clip", "contiguous"])
def test_a_parameter_forward_rebinds_to_its_own_values_is_checked(habit: str) -> None:
    right = backcheck.check_object(Dense(habit), X)
    assert right.status == "pass" and [lf.name for lf in right.leaves] == ["X", "W", "b"], right
    wrong = backcheck.check_object(Dense(habit, factor=1.01), X)
    assert wrong.status == "fail" and {e.name.split("[")[0] for e in wrong.mismatches} == {"W"}, wrong


def test_the_dicts_convention_with_a_clip_in_forward() -> None:
    assert backcheck.check_object(Dicts(), X).status == "pass"
    wrong = backcheck.check_object(Dicts(factor=7.0), X)
    assert wrong.status == "fail" and [lf.name for lf in wrong.leaves if lf.status == "fail"] == ["W"], wrong


def test_a_stored_input_beside_its_gradient_stays_state() -> None:
    class Cached:
        def __init__(self):
            self.W, self.x = W0.copy(), X.copy()  # (an earlier forward left the same input here)

        def forward(self, x):
            self.x = x.copy()
            return x @ self.W

        def backward(self, d):
            self.dW, self.dx = self.x.T @ d, d @ self.W.T
            return self.dx

    report = backcheck.check_object(Cached(), X)
    assert report.status == "pass" and [lf.name for lf in report.leaves] == ["x", "W"], report
