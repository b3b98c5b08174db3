"""A layer object whose backward returns the parameters' gradients as one list after the input's,
``(dX, [dW, db])`` (DEVLOKER/neural-network's Linear), is read as ``(dX, dW, db)``; a gradient named in grads=
in another shape than its parameter's says both shapes. They were told no gradient was found, and grads='return'
raised numpy's ValueError as check_layer's argument error."""

import numpy as np
import pytest

import backcheck
from backcheck.errors import BadInputError


class Linear:
    def __init__(self, rng, bug=False):
        self.W = rng.standard_normal((4, 3)) * 0.5
        self.b = 0.1 * rng.standard_normal((1, 3))
        self.params = [self.W, self.b]
        self.bug = bug

    def forward(self, X):
        self.X = X
        return X @ self.W + self.b

    def backward(self, nextgrad):
        self.gradW = self.X.T @ nextgrad
        self.gradB = nextgrad.sum(axis=0) * (2.0 if self.bug else 1.0)
        return nextgrad @ self.W.T, [self.gradW, self.gradB]


@pytest.mark.parametrize("grads", [None, "return"])
def test_gradients_returned_as_a_list_after_the_inputs_are_read(grads):
    rng = np.random.default_rng(0)
    report = backcheck.check_object(Linear(rng), rng.standard_normal((5, 4)), grads=grads)
    assert report.status == "pass", report
    assert [lf.name for lf in report.leaves] == ["X", "params[0]", "params[1]"], report
    bad = backcheck.check_object(Linear(np.random.default_rng(0), bug=True), rng.standard_normal((5, 4)), grads=grads)
    assert [lf.name for lf in bad.leaves if lf.status == "fail"] == ["params[1]"], bad


def test_a_named_gradient_of_another_shape_says_both_shapes():
    rng = np.random.default_rng(0)
    with pytest.raises(BadInputError) as info:
        backcheck.check_object(
            Linear(rng), rng.standard_normal((5, 4)), params=["W", "b"], grads={"W": "gradW", "b": "gradB"}
        )
    assert "self.gradB (of shape (3,), not (1, 3))" in info.value.message, info.value


class MadeEarly(Linear):  # gradient attributes made in __init__, never written: the gradients are returned
    def __init__(self, rng):
        super().__init__(rng)
        self.dW, self.db = np.zeros_like(self.W), np.zeros_like(self.b)

    def backward(self, nextgrad):
        return nextgrad @ self.W.T, [self.X.T @ nextgrad, nextgrad.sum(axis=0, keepdims=True)]


def test_returned_gradients_win_over_attributes_backward_left_alone():
    rng = np.random.default_rng(0)
    report = backcheck.check_object(MadeEarly(rng), rng.standard_normal((5, 4)))
    assert report.status == "pass", report
