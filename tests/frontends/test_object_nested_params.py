"""Layer objects whose parameters sit where check_object looks for none: dicts of dicts (``self.params =
{'fc1': {'W': W, 'b': b}}``), a list of per-layer dicts, a learnable scalar kept as a Python float with its
gradient beside it (``self.alpha``, ``self.dalpha``). Only the inputs were checked and the check passed, a
wrong gradient of theirs unseen; now each value forward reads there is an 'unchecked gradient' and the check
is inconclusive, and naming the nested dict as params says where its arrays are."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck
from backcheck.errors import BadInputError

X = np.random.default_rng(0).normal(size=(4, 3))


class _Nested:
    def __init__(self, factor: float = 1.0) -> None:
        r = np.random.default_rng(1)
        self.factor = factor
        self.params = {"fc1": {"W": r.normal(size=(3, 4)), "b": np.zeros(4)}, "fc2": {"W": r.normal(size=(4, 2))}}
        self.grads: dict = {"fc1": {}, "fc2": {}}

    def forward(self, x):
        p = self.params
        self.x, self.h = x, np.tanh(x @ p["fc1"]["W"] + p["fc1"]["b"])
        return self.h @ p["fc2"]["W"]

    def backward(self, d):
        p = self.params
        dh = d @ p["fc2"]["W"].T * (1 - self.h**2)
        self.grads = {"fc1": {"W": self.x.T @ dh, "b": self.factor * dh.sum(0)}, "fc2": {"W": self.h.T @ d}}
        return dh @ p["fc1"]["W"].T


class _ListOfDicts:
    def __init__(self) -> None:
        self.params = [{"W": np.random.default_rng(2).normal(size=(3, 2)), "b": np.zeros(2)}]
        self.grads: list = [{}]

    def forward(self, x):
        self.x = x
        return x @ self.params[0]["W"] + self.params[0]["b"]

    def backward(self, d):
        self.grads[0] = {"W": self.x.T @ d, "b": 3 * d.sum(0)}  # (b's gradient 3x: never compared)
        return d @ self.params[0]["W"].T


class _PReLU:
    def __init__(self) -> None:
        self.alpha, self.dalpha = 0.25, 0.0

    def forward(self, x):
        self.x = x
        return np.where(x > 0, x, self.alpha * x)

    def backward(self, dout):
        self.dalpha = float(np.sum(dout * self.x))  # (wrong: the positive inputs too; never compared)
        return dout * np.where(self.x > 0, 1.0, self.alpha)


class _PReLUMadeInBackward(_PReLU):  # the gradient first set in backward ("Neural Networks from Scratch" style)
    def __init__(self) -> None:
        self.alpha = 0.25


class _ScaleInGradsDict(_PReLUMadeInBackward):  # a float scale whose gradient backward puts in self.grads
    def forward(self, x):
        self.x = x
        return self.alpha * x

    def backward(self, dout):
        self.grads = {"alpha": 3 * float(np.sum(dout * self.x))}  # (wrong: a factor of 3; never compared)
        return dout * self.alpha


class _LeakyReLU:  # a constant slope, no gradient beside it: a hyperparameter, not an unchecked parameter
    def __init__(self) -> None:
        self.alpha = 0.01

    def forward(self, x):
        self.x = x
        return np.where(x > 0, x, self.alpha * x)

    def backward(self, dout):
        return dout * np.where(self.x > 0, 1.0, self.alpha)


@pytest.mark.parametrize(("layer", "unseen"), [
    (_Nested(3.0), ["params['fc1']['W']", "params['fc1']['b']", "params['fc2']['W']"]),
    (_ListOfDicts(), ["params[0]['W']", "params[0]['b']"]),
    (_PReLU(), ["alpha"]),
    (_PReLUMadeInBackward(), ["alpha"]),
    (_ScaleInGradsDict(), ["alpha"]),
])
def test_parameters_where_none_is_looked_for_leave_the_check_inconclusive(layer, unseen) -> None:
    r = backcheck.check_object(layer, X)
    assert r.status == "inconclusive", r
    named = [e for f in r.findings if f.kind == "unchecked gradient" for e in f.elements]
    assert named == unseen, r
    assert r.leaf("x").status == "pass"  # (the input's own gradient is right and checked)


def test_a_constant_float_is_no_parameter() -> None:
    r = backcheck.check_object(_LeakyReLU(), X)
    assert r.status == "pass" and not r.findings, r


def test_the_user_object_is_left_as_it_was() -> None:
    layer = _Nested()
    before = {k: {n: v.copy() for n, v in d.items()} for k, d in layer.params.items()}
    backcheck.check_object(layer, X)
    for k, d in before.items():
        for n, v in d.items():
            np.testing.assert_array_equal(layer.params[k][n], v)
    assert layer.grads == {"fc1": {}, "fc2": {}}


def test_naming_a_nested_dict_says_where_its_arrays_are() -> None:
    with pytest.raises(BadInputError, match=r"one level down, in dicts \('fc1', 'fc2'\)"):
        backcheck.check_object(_Nested(), X, params="params")
