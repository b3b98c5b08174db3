"""A from-scratch dense layer whose backward takes a learning rate and steps its own weights
(``backward(self, output_gradient, learning_rate)``, keeping no dW), shared by the check_object tests."""

from __future__ import annotations

import numpy as np


class Dense:
    def __init__(self, n_in, n_out, seed=0):
        rng = np.random.default_rng(seed)
        self.weights = rng.normal(size=(n_out, n_in))
        self.bias = rng.normal(size=(n_out, 1))

    def forward(self, input):
        self.input = input
        return self.weights @ input + self.bias

    def backward(self, output_gradient, learning_rate):
        weights_gradient = output_gradient @ self.input.T
        input_gradient = self.weights.T @ output_gradient
        self.weights -= learning_rate * weights_gradient
        self.bias -= learning_rate * output_gradient.sum(axis=1, keepdims=True)
        return input_gradient
