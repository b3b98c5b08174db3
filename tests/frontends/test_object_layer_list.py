"""A network kept as a plain list of layer objects (``network = [Dense(3, 4), Tanh(), Dense(4, 2)]`` run by a
loop, each ``backward(output_gradient, learning_rate)`` stepping its own weights) is checked by check_object as
one layer: forward in order, backward in reverse; its parameters are named by position, a wrong one fails there,
and the user's layers are left as they were."""

from __future__ import annotations

import numpy as np
import pytest
from scratch_layers import Dense
from test_object_kept import Dense as KeptDense
from test_object_kept import ReLU as KeptReLU

import backcheck
from backcheck.errors import BadInputError


class Tanh:  # an activation's backward takes the gradient alone
    def forward(self, input):
        self.input = input
        return np.tanh(input)

    def backward(self, output_gradient):
        return output_gradient * (1 - np.tanh(self.input) ** 2)


class BiasTwice(Dense):
    def backward(self, output_gradient, learning_rate):
        out = super().backward(output_gradient, learning_rate)
        self.bias[1] -= learning_rate * output_gradient[1]
        return out


X = np.random.default_rng(9).normal(size=(3, 1))


@pytest.mark.parametrize("kind", [list, tuple])
def test_a_list_of_layers_is_checked_as_one_network(kind):
    network = kind([Dense(3, 4, 0), Tanh(), Dense(4, 2, 1), Tanh()])
    before = [layer.weights.copy() for layer in network if isinstance(layer, Dense)]
    report = backcheck.check_object(network, X)
    assert report.status == "pass", report
    names = [lf.name for lf in report.leaves]
    assert names == ["input", "layers[0].weights", "layers[0].bias", "layers[2].weights", "layers[2].bias"]
    assert any("checked as one network" in n for n in report.notes), report.notes
    after = [layer.weights for layer in network if isinstance(layer, Dense)]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def test_a_wrong_layer_in_the_list_fails_where_it_is_wrong():
    report = backcheck.check_object([Dense(3, 4, 0), Tanh(), BiasTwice(4, 2, 1)], X)
    assert report.status == "fail", report
    assert [e.name for e in report.mismatches] == ["layers[2].bias[1, 0]"]


def test_the_method_names_given_apply_to_every_layer():
    class Fprop(Tanh):
        fprop, bprop = Tanh.forward, Tanh.backward

    report = backcheck.check_object([Fprop(), Fprop()], X, forward="fprop", backward="bprop")
    assert report.status == "pass" and [lf.name for lf in report.leaves] == ["input"], report


def test_a_list_of_layers_given_two_inputs_is_refused_by_name():
    with pytest.raises(BadInputError, match="a list of 2 layers and 2 inputs"):
        backcheck.check_object([Dense(3, 4, 0), Tanh()], X, X)


class BiasOfFirstRow(KeptDense):
    def backward(self, dvalues):
        super().backward(dvalues)
        self.dbiases = dvalues[:1].copy()  # the bias's gradient not summed over the batch


def test_a_list_of_layers_that_keep_their_results_is_run_through_them():
    batch = np.random.default_rng(3).normal(size=(5, 3))
    network = [KeptDense(3, 4, 0), KeptReLU(), KeptDense(4, 2, 1)]  # "Neural Networks from Scratch"
    before = [layer.weights.copy() for layer in network if isinstance(layer, KeptDense)]
    assert backcheck.check_object(network, batch).status == "pass"
    wrong = backcheck.check_object([KeptDense(3, 4, 0), KeptReLU(), BiasOfFirstRow(4, 2, 1)], batch)
    assert wrong.status == "fail"
    assert [lf.name for lf in wrong.leaves if lf.status == "fail"] == ["layers[2].biases"]
    assert all(np.array_equal(w, layer.weights) for w, layer in zip(before, network[::2], strict=True))
    assert not hasattr(network[0], "output")  # (the user's layers are never called)
