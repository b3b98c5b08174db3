"""A loss layer given one-hot labels by its forward alone (deep-learning-from-scratch's SoftmaxWithLoss:
``forward(x, t)`` with a float one-hot ``t``, ``backward(dout=1) -> dx``) was refused: its backward returned one
gradient for two float inputs. 0/1 labels there are held constant, with a note; continuous targets (a second
input whose gradient backward may have forgotten) stay refused, the hint naming constant=[...]."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck
from backcheck.errors import GradientStructureError


class SoftmaxWithLoss:
    def __init__(self, scale=None):
        self.scale = scale

    def forward(self, x, t):
        self.t = t
        e = np.exp(x - x.max(axis=1, keepdims=True))
        self.y = e / e.sum(axis=1, keepdims=True)
        return -np.sum(np.log(self.y[np.arange(len(x)), t.argmax(axis=1)])) / len(x)

    def backward(self, dout=1):
        return (self.y - self.t) / (self.scale or len(self.t))


class SquaredError:
    def forward(self, y, t):
        self.y, self.t = y, t
        return 0.5 * np.sum((y - t) ** 2)

    def backward(self, dout=1):
        return self.y - self.t


def _point(dtype):
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(dtype)
    return x, np.eye(5, dtype=dtype)[[0, 3, 1, 1]]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_hot_labels_given_to_forward_alone_are_held_constant(dtype):
    x, t = _point(dtype)
    report = backcheck.check_object(SoftmaxWithLoss(), x, t)
    assert report.status == "pass" and [lf.name for lf in report.leaves] == ["x"], report
    assert any("t: 0/1 labels given to forward alone, held constant" in n for n in report.notes), report.notes
    wrong = backcheck.check_object(SoftmaxWithLoss(scale=1), x, t)  # the batch mean's 1/N forgotten
    assert wrong.status == "fail", wrong


def test_continuous_targets_stay_refused_with_the_way_out():
    x, _ = _point(np.float64)
    with pytest.raises(GradientStructureError, match="constant"):
        backcheck.check_object(SquaredError(), x, 0.3 * x)
    assert backcheck.check_object(SquaredError(), x, 0.3 * x, constant=["t"]).status == "pass"


class _RegressionLoss:  # forward(X, y) -> the loss; backward() keeps dW, db and returns nothing
    def __init__(self, scale_db: float = 1.0) -> None:
        self.W, self.b, self.scale_db = np.full((3, 2), 0.3), np.zeros(2), scale_db

    def forward(self, X, y):
        self.X, self.diff = X, X @ self.W + self.b - y
        return 0.5 * np.sum(self.diff**2)

    def backward(self):
        self.dW, self.db = self.X.T @ self.diff, self.scale_db * self.diff.sum(0)


def test_a_loss_of_constant_inputs_whose_backward_returns_nothing_checks_its_parameters() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    right = backcheck.check_object(_RegressionLoss(), X, y, constant=["X", "y"])
    assert right.status == "pass" and [lf.name for lf in right.leaves] == ["W", "b"], right
    wrong = backcheck.check_object(_RegressionLoss(scale_db=2.0), X, y, constant=["X", "y"])
    assert wrong.status == "fail" and wrong.leaf("b").status == "fail" and wrong.leaf("W").status == "pass"
