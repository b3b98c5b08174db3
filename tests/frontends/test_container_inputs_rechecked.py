"""A layer whose input is a container (``forward([Q, K, V])``, a dict of parameters as deeplearning.ai's
``rnn_cell_forward(xt, a_prev, parameters)``) re-runs its backward at moved points where a wrong element is
looked at again (a float32 backward's measured rounding, a float64 one's): the moved inputs were keyed by their
elements' names (``X[0]``) where the layer reads them by input name (``X``), and backcheck's own KeyError reached
the user as a BadInputError blaming the arguments. A wrong element fails, named; a right backward passes."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck


def _pair(dtype):
    rng = np.random.default_rng(0)
    return rng.normal(size=(3, 4)).astype(dtype), rng.normal(size=(4, 2)).astype(dtype)


def _mul(X):
    return X[0] @ X[1]


def _mul_back(wrong: bool):
    def backward(dout, X):
        ga = dout @ X[1].T
        if wrong:
            ga[0, 0] *= -1
        return [ga, X[0].T @ dout]

    return backward


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("box", [list, tuple])
def test_a_sequence_input_with_one_wrong_element_fails_named(dtype, box):
    a, b = _pair(dtype)
    wrong = backcheck.check_layer(_mul, _mul_back(True), (box([a, b]),))
    assert wrong.status == "fail" and [e.name for e in wrong.mismatches] == ["X[0][0, 0]"], wrong
    assert backcheck.check_layer(_mul, _mul_back(False), (box([a, b]),)).status == "pass"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_dict_input_with_one_wrong_element_fails_named(dtype):
    a, b = _pair(dtype)

    def backward(dout, P):
        ga = dout @ P["b"].T
        ga[0, 0] *= -1
        return {"a": ga, "b": P["a"].T @ dout}

    wrong = backcheck.check_layer(lambda P: P["a"] @ P["b"], backward, ({"a": a, "b": b},))
    assert wrong.status == "fail" and [e.name for e in wrong.mismatches] == ["P['a'][0, 0]"], wrong


def test_a_layer_object_of_a_list_input_fails_named_in_float32():
    class Mul:
        def forward(self, X):
            self.X = X
            return _mul(X)

        def backward(self, dout):
            return _mul_back(True)(dout, self.X)

    wrong = backcheck.check_object(Mul(), list(_pair(np.float32)))
    assert wrong.status == "fail" and [e.name for e in wrong.mismatches] == ["X[0][0, 0]"], wrong
