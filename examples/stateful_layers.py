"""Layer objects that keep their state, checked with ``backcheck.check_object`` and no adapter.

    python examples/stateful_layers.py      # four reports: two pass, two name the planted bug

Two styles that real numpy layer libraries use:

- ``Dense`` (numpy-ml style): ``forward`` stores its input on the object (``self.X``), the parameters live in the
  dict ``self.parameters`` and ``backward`` accumulates into the dict ``self.gradients``; an optimizer reads them
  later. ``DenseBuggy`` forgets the activation's derivative in the bias gradient.
- ``SGDLinear`` (the "update inside backward" style of many from-scratch tutorials): ``backward`` stores
  ``self.dW`` / ``self.db`` and then takes an SGD step on ``self.W`` / ``self.b`` itself. check_object reads the
  gradients written before the step; the layer you pass is never changed. ``SGDLinearBuggy`` averages the bias
  gradient over the batch while the weight gradient is summed; ``SGDLinearLateInput`` computes the input's gradient
  after the step, with the updated weights.
"""

import numpy as np

import backcheck


class Dense:
    """A fully connected layer with a tanh activation, ``Y = tanh(X @ W + b)``, numpy-ml style."""

    def __init__(self, n_in, n_out, seed=0, dtype=np.float64):
        rng = np.random.default_rng(seed)
        W = rng.normal(scale=np.sqrt(2.0 / (n_in + n_out)), size=(n_in, n_out)).astype(dtype)
        b = rng.normal(scale=0.1, size=n_out).astype(dtype)
        self.parameters = {"W": W, "b": b}
        self.gradients = {"W": np.zeros_like(W), "b": np.zeros_like(b)}
        self.X = None
        self.derived_variables = {"Z": None}

    def forward(self, X):
        Z = X @ self.parameters["W"] + self.parameters["b"]
        self.X = X  # kept for backward
        self.derived_variables["Z"] = Z
        return np.tanh(Z)

    def backward(self, dLdy):
        dZ = dLdy * (1 - np.tanh(self.derived_variables["Z"]) ** 2)
        self.gradients["W"] += self.X.T @ dZ
        self.gradients["b"] += dZ.sum(axis=0)
        return dZ @ self.parameters["W"].T

    def update(self, lr):
        for name, grad in self.gradients.items():
            self.parameters[name] -= lr * grad
            grad[...] = 0


class DenseBuggy(Dense):
    def backward(self, dLdy):
        dZ = dLdy * (1 - np.tanh(self.derived_variables["Z"]) ** 2)
        self.gradients["W"] += self.X.T @ dZ
        self.gradients["b"] += dLdy.sum(axis=0)  # bug: the activation's derivative is missing
        return dZ @ self.parameters["W"].T


class SGDLinear:
    """``y = x @ W + b`` whose backward pass also takes the SGD step."""

    def __init__(self, n_in, n_out, lr=0.1, seed=0, dtype=np.float64):
        rng = np.random.default_rng(seed)
        self.W = rng.normal(scale=np.sqrt(1.0 / n_in), size=(n_in, n_out)).astype(dtype)
        self.b = rng.normal(scale=0.1, size=n_out).astype(dtype)
        self.lr = lr

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, grad_out):
        self.dW = self.x.T @ grad_out
        self.db = grad_out.sum(axis=0)
        grad_in = grad_out @ self.W.T
        self.W -= self.lr * self.dW  # the update, inside backward
        self.b -= self.lr * self.db
        return grad_in


class SGDLinearBuggy(SGDLinear):
    def backward(self, grad_out):
        self.dW = self.x.T @ grad_out
        self.db = grad_out.mean(axis=0)  # bug: averaged over the batch, while dW is summed
        grad_in = grad_out @ self.W.T
        self.W -= self.lr * self.dW
        self.b -= self.lr * self.db
        return grad_in


class SGDLinearLateInput(SGDLinear):
    def backward(self, grad_out):
        self.dW = self.x.T @ grad_out
        self.db = grad_out.sum(axis=0)
        self.W -= self.lr * self.dW
        self.b -= self.lr * self.db
        return grad_out @ self.W.T  # bug: the input's gradient uses the weights after the step


def main():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 5))
    for layer in (Dense(5, 3), DenseBuggy(5, 3), SGDLinear(5, 3), SGDLinearBuggy(5, 3), SGDLinearLateInput(5, 3)):
        print(backcheck.check_object(layer, x))
        print()


if __name__ == "__main__":
    main()
