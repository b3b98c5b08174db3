"""A layer object whose backward returns the parameters' gradients as one list after the input's,
``(dX, [dW, db])`` (DEVLOKER/neural-network's Linear), is read as ``(dX, dW, db)``; a gradient named in grads=
in another shape than its parameter's says both shapes. They were told no gradient was found, and grads='return'
raised numpy's ValueError as check_layer's argument error."""

import numpy as np
import pytest

import backcheck
from backcheck.errors import BadInputError, GradientStructureError


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


class Transposed(Linear):
    def backward(self, nextgrad):
        dX, _ = super().backward(nextgrad)
        self.gradW = self.gradW.T
        return dX


def test_a_named_gradient_of_another_shape_says_both_shapes():
    rng = np.random.default_rng(0)
    with pytest.raises(BadInputError) as info:
        backcheck.check_object(
            Transposed(rng), rng.standard_normal((5, 4)), params=["W", "b"], grads={"W": "gradW", "b": "gradB"}
        )
    assert "shape (3, 4)" in info.value.message and "shape (4, 3)" in info.value.message, info.value
    assert "gradient in self.gradW" in info.value.message, info.value
    # the same elements without the axis of size 1 (gradB (3,) for b (1, 3)) are taken, as check_layer takes them
    report = backcheck.check_object(
        Linear(rng), rng.standard_normal((5, 4)), params=["W", "b"], grads={"W": "gradW", "b": "gradB"}
    )
    assert report.status == "pass" and any("axes of size 1" in n for n in report.notes), report


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


class BatchNorm:
    """Returns (dX, dgamma, dbeta) and keeps running statistics that forward sets: state beside the parameters."""

    def __init__(self, rng, bug=False):
        self.gamma, self.beta = 1 + 0.1 * rng.standard_normal(3), 0.1 * rng.standard_normal(3)
        self.running_mean, self.running_var = np.zeros(3), np.ones(3)
        self.bug = bug

    def forward(self, X):
        mu, var = X.mean(0), X.var(0)
        self.running_mean = 0.9 * self.running_mean + 0.1 * mu
        self.running_var = 0.9 * self.running_var + 0.1 * var
        self.std = np.sqrt(var + 1e-5)
        self.xh = (X - mu) / self.std
        return self.gamma * self.xh + self.beta

    def backward(self, d):
        dxh = d * self.gamma
        dX = (dxh - dxh.mean(0) - self.xh * (dxh * self.xh).mean(0)) / self.std
        return dX, (d * self.xh).sum(0) * (1.1 if self.bug else 1.0), d.sum(0)


def test_returned_gradients_are_read_beside_state_forward_sets():
    # (it was refused: the return value's three values were counted against four slots, the running statistics too)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 3))
    report = backcheck.check_object(BatchNorm(rng), X)
    assert report.status == "pass", report
    assert [lf.name for lf in report.leaves] == ["X", "gamma", "beta"], report
    bad = backcheck.check_object(BatchNorm(np.random.default_rng(0), bug=True), X)
    assert [lf.name for lf in bad.leaves if lf.status == "fail"] == ["gamma"], bad


class StoresSome:
    def __init__(self, rng, returned):
        self.W, self.b = rng.standard_normal((3, 2)), rng.standard_normal(2)
        self.dW, self.db = np.zeros_like(self.W), np.zeros_like(self.b)
        self.returned = returned

    def forward(self, X):
        self.X = X
        return X @ self.W + self.b

    def backward(self, d):
        self.dW = self.X.T @ d
        return d @ self.W.T, {"db": d.sum(0), "cache": self.X}[self.returned]


@pytest.mark.parametrize("returned", ["db", "cache"])
def test_a_return_value_with_some_parameters_gradients_names_the_values(returned):
    # (numpy's ValueError on a ragged sequence leaked through check_layer's argument error)
    rng = np.random.default_rng(0)
    with pytest.raises(GradientStructureError) as info:
        backcheck.check_object(StoresSome(rng, returned), rng.standard_normal((5, 3)))
    message = str(info.value)
    assert "returned 2 values" in message and "(W, b)" in message and "ValueError" not in message, message
    assert "every parameter's gradient in order" in message, message


def test_a_ragged_gradient_of_a_layer_input_is_told_as_a_structure_error():
    rng = np.random.default_rng(0)
    with pytest.raises(GradientStructureError, match="gradient for x is a tuple"):
        backcheck.check_layer(
            lambda x, w: x @ w,
            lambda d, x, w: ((d @ w.T, np.zeros(2)), x.T @ d),
            (rng.standard_normal((4, 3)), rng.standard_normal((3, 2))),
        )
