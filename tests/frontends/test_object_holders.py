"""check_object finds the parameters of a network whose layers are called (``fc1(x)``: ``__call__`` and
``backward``, no ``forward``) and of plain objects holding arrays (``self.p = SimpleNamespace(W1=...)``), with
their gradients under short names on the layer (``fc1.dw`` for ``fc1.weight``) or in a sibling holder
(``self.g.W1``). Such a network passed on its input alone before, a wrong gradient unseen."""

from __future__ import annotations

import types

import numpy as np
import pytest

import backcheck

RNG = np.random.default_rng(21)
X = RNG.normal(size=(5, 4))


class Linear:
    def __init__(self, n_in: int, n_out: int, seed: int, scale: float = 1.0) -> None:
        rng = np.random.default_rng(seed)
        self.weight, self.bias, self.scale = rng.normal(size=(n_in, n_out)), rng.normal(size=n_out), scale

    def __call__(self, x):
        self.x = x
        return x @ self.weight + self.bias

    def backward(self, dout):
        self.dw = self.scale * self.x.T @ dout
        self.db = dout.sum(axis=0)
        return dout @ self.weight.T


class Tanh:
    def __call__(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, d):
        return d * (1 - self.out**2)


class CalledNet:
    def __init__(self, scale: float = 1.0) -> None:
        self.fc1, self.act, self.fc2 = Linear(4, 3, 1, scale), Tanh(), Linear(3, 2, 2)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))

    def backward(self, d):
        return self.fc1.backward(self.act.backward(self.fc2.backward(d)))


class NamespaceNet:
    def __init__(self, scale: float = 1.0) -> None:
        rng = np.random.default_rng(3)
        self.p = types.SimpleNamespace(W1=rng.normal(size=(4, 3)), W2=rng.normal(size=(3, 2)))
        self.g = types.SimpleNamespace()
        self.scale = scale

    def forward(self, x):
        self.x, self.h = x, np.tanh(x @ self.p.W1)
        return self.h @ self.p.W2

    def backward(self, d):
        self.g.W2 = self.h.T @ d
        dz = (d @ self.p.W2.T) * (1 - self.h**2)
        self.g.W1 = self.scale * self.x.T @ dz
        return dz @ self.p.W1.T


@pytest.mark.parametrize(
    "net, names",
    [
        (CalledNet(), {"x", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}),
        (NamespaceNet(), {"x", "p.W1", "p.W2"}),
    ],
    ids=["called-layers", "namespace"],
)
def test_parameters_of_called_layers_and_plain_holders_are_checked(net, names):
    report = backcheck.check_object(net, X)
    assert report.status == "pass", report
    assert {leaf.name for leaf in report.leaves} == names, report


@pytest.mark.parametrize(
    "net, wrong", [(CalledNet(scale=2.0), "fc1.weight"), (NamespaceNet(scale=3.0), "p.W1")], ids=["dw", "g.W1"]
)
def test_a_wrong_gradient_there_fails(net, wrong):
    report = backcheck.check_object(net, X)
    assert report.status == "fail", report
    assert [leaf.name for leaf in report.leaves if leaf.status == "fail"] == [wrong], report


def test_a_layer_called_as_a_function_is_checked_through_its_call_and_a_missing_method_is_told_by_name():
    from backcheck.errors import BadInputError

    layer = Linear(4, 3, 5)
    report = backcheck.check_object(layer, X)
    assert report.status == "pass" and {leaf.name for leaf in report.leaves} == {"x", "weight", "bias"}, report
    assert backcheck.check_object(Linear(4, 3, 5, scale=1.5), X).status == "fail"

    class Backwards:
        def forward(self, x):
            return 2 * x

        def backwards(self, d):
            return 2 * d

    with pytest.raises(BadInputError, match=r"no method 'backward' \(did you mean 'backwards'\?\)"):
        backcheck.check_object(Backwards(), X)


class _NetNoInputGradient:  # a whole network's backward: its layers' gradients only, nothing returned
    def __init__(self, k: float = 1.0) -> None:
        self.fc1, self.act, self.fc2 = Linear(4, 3, 1, k), Tanh(), Linear(3, 2, 2)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))

    def backward(self, d):
        self.fc1.backward(self.act.backward(self.fc2.backward(d)))


def test_a_backward_that_returns_nothing_is_checked_on_its_parameters():
    report = backcheck.check_object(_NetNoInputGradient(), X)
    names = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    assert report.status == "pass" and {leaf.name for leaf in report.leaves} == names, report
    assert any("returns no gradient of x" in n for n in report.notes), report.notes
    wrong = backcheck.check_object(_NetNoInputGradient(k=1.1), X)
    assert [leaf.name for leaf in wrong.leaves if leaf.status == "fail"] == ["fc1.weight"], wrong


def test_torch_tensor_inputs_are_refused_before_any_call_of_the_layer():
    import torch

    from backcheck.errors import BadInputError

    class TorchLinear:  # torch tensors as plain arrays, no autograd (the NNDL book's style)
        def __init__(self) -> None:
            self.params = {"W": torch.ones(4, 3, dtype=torch.float64)}
            self.grads: dict = {}

        def forward(self, x):
            self.x = x
            return x @ self.params["W"]

        def backward(self, g):
            self.grads["W"] = self.x.T @ g
            return g @ self.params["W"].T

    with pytest.raises(BadInputError, match="are torch tensors, not numpy arrays"):
        backcheck.check_object(TorchLinear(), torch.ones(5, 4, dtype=torch.float64))
