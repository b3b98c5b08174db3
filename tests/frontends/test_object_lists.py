"""check_object meets a layer that keeps its parameters and their gradients as parallel lists (self.params =
[W, b], self.grads = [dW, db]): the parameters are found by position, named params[0], params[1], and each
gradient is read at the same position of the list beside them, found or named."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck

RNG = np.random.default_rng(0)
X = RNG.normal(size=(4, 3))


class ListAffine:
    def __init__(self, sum_bias: bool = True, holder: type = list) -> None:
        self.params = holder([RNG.normal(size=(3, 2)), RNG.normal(size=2)])
        self.grads = [np.zeros((3, 2)), np.zeros(2)]
        self.sum_bias = sum_bias

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return x @ self.params[0] + self.params[1]

    def backward(self, d: np.ndarray) -> np.ndarray:
        self.grads[0] = self.x.T @ d
        self.grads[1] = d.sum(axis=0) if self.sum_bias else d[0]  # (the bug: the bias not summed over the batch)
        return d @ self.params[0].T


@pytest.mark.parametrize("holder", [list, tuple])
def test_parameters_in_a_list_are_found_and_checked(holder: type) -> None:
    r = backcheck.check_object(ListAffine(holder=holder), X)
    assert r.status == "pass", r
    assert [leaf.name for leaf in r.leaves] == ["x", "params[0]", "params[1]"]


def test_a_wrong_gradient_in_a_list_fails_naming_its_position() -> None:
    r = backcheck.check_object(ListAffine(sum_bias=False), X)
    assert r.status == "fail", r
    assert r.leaf("params[1]").status == "fail" and r.leaf("params[0]").status == "pass"


def test_a_list_named_as_params_is_taken_with_its_gradients_named() -> None:
    r = backcheck.check_object(ListAffine(sum_bias=False), X, params="params", grads="grads")
    assert r.status == "fail" and r.leaf("params[1]").status == "fail", r
    assert backcheck.check_object(ListAffine(), X, params="params", grads="grads").status == "pass"
