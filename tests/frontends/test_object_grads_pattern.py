"""A grads= pattern ('{}_gradient') names each parameter's gradient beside it, also for a network's layers: for
self.layers[0].weights it is self.layers[0].weights_gradient (it was looked up as an attribute of the network
named 'layers[0].weights_gradient', and the check refused the network, pointing at the pattern its hint had
proposed)."""

from __future__ import annotations

import numpy as np

import backcheck


class Dense:
    def __init__(self, n_in, n_out, rng, wrong=1.0):
        self.weights = rng.normal(size=(n_in, n_out))
        self.bias = np.zeros((1, n_out))
        self.weights_gradient = self.bias_gradient = None
        self.wrong = wrong

    def forward(self, x):
        self.x = x
        return x @ self.weights + self.bias

    def backward(self, g):
        self.weights_gradient = self.wrong * (self.x.T @ g)
        self.bias_gradient = g.sum(axis=0, keepdims=True)
        return g @ self.weights.T


class Net:
    def __init__(self, layers):
        self.layers = layers

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, g):
        for layer in reversed(self.layers):
            g = layer.backward(g)
        return g


def _x():
    return np.random.default_rng(1).normal(size=(6, 4))


def test_a_pattern_reaches_the_layers_of_a_network():
    rng = np.random.default_rng(0)
    report = backcheck.check_object(Net([Dense(4, 3, rng), Dense(3, 2, rng)]), _x(), grads="{}_gradient")
    assert report.status == "pass", report
    assert {lf.name for lf in report.leaves} >= {"layers[0].weights", "layers[1].bias"}, report


def test_a_wrong_layer_gradient_found_through_the_pattern_fails():
    rng = np.random.default_rng(0)
    net = Net([Dense(4, 3, rng, wrong=1.01), Dense(3, 2, rng)])
    report = backcheck.check_object(net, _x(), grads="{}_gradient")
    assert report.status == "fail", report
    failed = {lf.name for lf in report.leaves if lf.status == "fail"}
    assert failed == {"layers[0].weights"}, report
