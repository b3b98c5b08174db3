"""deep-learning-from-scratch's networks have no forward/backward pair: ``loss(x, t)`` and ``gradient(x, t) ->
{'W1': ..., 'b1': ...}``, keyed like ``self.params``. Given to check_object as forward and backward, the dict was
read as x's gradient ("the gradient for x is a dict"), and the constant=['t'] hint led back to the same error. It
is refused naming what the dict holds, with the call that checks it; that call passes the right network and fails
a wrong one at the parameter. A layer whose input is a dict, and whose backward returns its gradient keyed alike,
is not taken for one."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck
from backcheck.errors import GradientStructureError


class Affine:
    def __init__(self, W, b):
        self.W, self.b = W, b

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        self.dW, self.db = self.x.T @ dout, dout.sum(axis=0)
        return dout @ self.W.T


class Net:
    def __init__(self, rng, db_scale=1.0):
        self.params = {"W1": rng.normal(size=(3, 2)), "b1": rng.normal(size=2)}
        self.layer, self.db_scale = Affine(self.params["W1"], self.params["b1"]), db_scale

    def loss(self, x, t):
        return 0.5 * np.sum((self.layer.forward(x) - t) ** 2) / len(x)

    def gradient(self, x, t):
        self.layer.backward((self.layer.forward(x) - t) / len(x))
        return {"W1": self.layer.dW, "b1": self.layer.db * self.db_scale}


def _data(rng):
    return rng.normal(size=(4, 3)), rng.normal(size=(4, 2))


@pytest.mark.parametrize("options", [{}, {"constant": ["t"]}])
def test_a_networks_gradient_dict_is_refused_with_the_call_that_checks_it(options):
    rng = np.random.default_rng(0)
    net = Net(rng)
    x, t = _data(rng)
    with pytest.raises(GradientStructureError) as info:
        backcheck.check_object(net, x, t, forward="loss", backward="gradient", **options)
    assert "returned a dict keyed 'W1', 'b1'" in info.value.message
    assert "backcheck.check(lambda p: net.loss(x, t), net.params" in info.value.hint


def test_the_call_the_hint_gives_passes_the_network_and_fails_a_wrong_one():
    rng = np.random.default_rng(0)
    net, wrong = Net(rng), Net(np.random.default_rng(0), db_scale=2.0)
    x, t = _data(rng)
    right = backcheck.check(lambda p: net.loss(x, t), net.params, lambda p: net.gradient(x, t))
    assert right.status == "pass", right
    bad = backcheck.check(lambda p: wrong.loss(x, t), wrong.params, lambda p: wrong.gradient(x, t))
    assert bad.status == "fail" and [lf.name for lf in bad.leaves if lf.status == "fail"] == ["p['b1']"], bad


def test_a_dict_input_with_its_gradient_keyed_alike_is_checked():
    class Mul:
        def forward(self, P):
            self.P = P
            return P["a"] @ P["b"]

        def backward(self, dout):
            return {"a": dout @ self.P["b"].T, "b": self.P["a"].T @ dout}

    rng = np.random.default_rng(0)
    report = backcheck.check_object(Mul(), {"a": rng.normal(size=(3, 4)), "b": rng.normal(size=(4, 2))})
    assert report.status == "pass", report
