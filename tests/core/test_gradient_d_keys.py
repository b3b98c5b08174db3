"""A dict of gradients keyed d + the parameters' keys, as deeplearning.ai's backward passes return them
(``{"dW1", "db1", "dW2", "db2"}`` beside the activations' ``"dA1"`` for parameters ``{"W1", "b1", "W2", "b2"}``),
is read under those keys: a right one passes with a note naming what was left out, a wrong entry fails its
parameter, and a d key missing is a typed error naming it."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck
from backcheck.errors import GradientStructureError

RNG = np.random.default_rng(2)
X = RNG.normal(size=(4, 6))
Y = (RNG.random((1, 6)) > 0.5).astype(float)
PARAMS = {"W1": RNG.normal(size=(3, 4)), "b1": RNG.normal(size=(3, 1)), "W2": RNG.normal(size=(1, 3)),
          "b2": RNG.normal(size=(1, 1))}  # fmt: skip


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _forward(p):
    a1 = _sigmoid(p["W1"] @ X + p["b1"])
    return a1, _sigmoid(p["W2"] @ a1 + p["b2"])


def cost(p):
    a2 = _forward(p)[1]
    return float(-np.mean(Y * np.log(a2) + (1 - Y) * np.log(1 - a2)))


def backward(p):
    a1, a2 = _forward(p)
    dz2 = (a2 - Y) / X.shape[1]
    da1 = p["W2"].T @ dz2
    dz1 = da1 * a1 * (1 - a1)
    return {"dW2": dz2 @ a1.T, "db2": dz2.sum(1, keepdims=True), "dA1": da1, "dW1": dz1 @ X.T,
            "db1": dz1.sum(1, keepdims=True)}  # fmt: skip


def test_gradients_keyed_d_plus_the_parameters_keys_are_read_so():
    report = backcheck.check(cost, PARAMS, backward)
    assert report.status == "pass", report
    assert any("d-prefixed keys" in n and "dA1 left out" in n for n in report.notes), report.notes


def test_a_wrong_entry_fails_its_parameter():
    def wrong(p):
        g = backward(p)
        return {**g, "db1": 1.05 * g["db1"]}

    report = backcheck.check(cost, PARAMS, wrong)
    assert [leaf.status for leaf in report.leaves] == ["pass", "fail", "pass", "pass"], report


def test_a_missing_d_key_is_named():
    def missing(p):
        g = backward(p)
        del g["db2"]
        return g

    with pytest.raises(GradientStructureError, match="has no 'db2'"):
        backcheck.check(cost, PARAMS, missing)
