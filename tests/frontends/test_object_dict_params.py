"""check_object finds parameters kept in a dict attribute of any name (EpyNN's ``self.p = {"W": W, "b": b}``) and
their gradients in another dict attribute under the parameter's key or a gradient's name for it (``self.g["dW"]``):
a right layer passes, a wrong gradient fails its parameter. Such a parameter whose gradient is nowhere leaves the
check with a typed error naming it, never a pass on the input alone; dicts of an optimizer's moments keyed
by the parameters' attribute names are no parameters."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck
from backcheck.errors import BadInputError

RNG = np.random.default_rng(11)
X = RNG.normal(size=(5, 4))


class Dense:
    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.p = {"W": rng.normal(size=(4, 3)), "b": rng.normal(size=3)}
        self.g: dict[str, np.ndarray] = {}

    def forward(self, X):
        self.X = X
        self.Z = X @ self.p["W"] + self.p["b"]
        return np.tanh(self.Z)

    def _dZ(self, dA):
        return dA * (1 - np.tanh(self.Z) ** 2)

    def backward(self, dA):
        dZ = self._dZ(dA)
        self.g["dW"] = self.X.T @ dZ
        self.g["db"] = dZ.sum(axis=0)
        return dZ @ self.p["W"].T


class _SameKeys(Dense):  # gradients under the parameters' own keys in another dict
    def backward(self, dA):
        dZ = self._dZ(dA)
        self.grad_store = {"W": self.X.T @ dZ, "b": dZ.sum(axis=0)}
        return dZ @ self.p["W"].T


class _Doubled(Dense):
    def backward(self, dA):
        dx = super().backward(dA)
        self.g["dW"] = 2.0 * self.g["dW"]
        return dx


class _Unsummed(Dense):
    def backward(self, dA):
        dx = super().backward(dA)
        self.g["db"] = self._dZ(dA)[0]
        return dx


@pytest.mark.parametrize("layer", [Dense(), _SameKeys()], ids=["d-keys", "same-keys"])
def test_parameters_in_a_dict_of_any_name_are_found_with_their_gradients(layer):
    report = backcheck.check_object(layer, X)
    assert report.status == "pass", report
    assert {leaf.name for leaf in report.leaves} == {"X", "W", "b"}, report


@pytest.mark.parametrize("layer, wrong", [(_Doubled(), "W"), (_Unsummed(), "b")], ids=["doubled-dW", "unsummed-db"])
def test_a_wrong_gradient_of_such_a_parameter_fails(layer, wrong):
    report = backcheck.check_object(layer, X)
    assert report.status == "fail", report
    assert [leaf.name for leaf in report.leaves if leaf.status == "fail"] == [wrong], report


class _Forgets(Dense):  # computes its parameters' gradients elsewhere (a later call): none after backward
    def backward(self, dA):
        return self._dZ(dA) @ self.p["W"].T


def test_such_a_parameter_with_no_gradient_anywhere_is_no_pass():
    with pytest.raises(BadInputError, match=r"found no gradient of self\.p\['W'\]") as info:
        backcheck.check_object(_Forgets(), X)
    assert "grads=" in (info.value.hint or "")


class _WithMomentum(Dense):  # an optimizer's state in a dict keyed as the parameters, filled in __init__
    def __init__(self, lr: float = 0.0) -> None:
        super().__init__()
        self.momentum = {k: np.zeros_like(v) for k, v in self.p.items()}

    def backward(self, dA):
        dx = super().backward(dA)
        for k in self.p:
            self.momentum[k] = 0.9 * self.momentum[k] + self.g["d" + k]
        return dx


class _GradsFilledEarly(Dense):  # the gradients' holder filled with zeros before any backward
    def __init__(self) -> None:
        super().__init__()
        self.g = {"dW": np.zeros((4, 3)), "db": np.zeros(3)}


@pytest.mark.parametrize("layer", [_WithMomentum(), _GradsFilledEarly()], ids=["momentum", "grads-filled"])
def test_dicts_forward_never_reads_are_no_parameters(layer):
    report = backcheck.check_object(layer, X)
    assert report.status == "pass", report
    # (named by their path, p[W], where another dict repeats their keys)
    assert {leaf.name.removeprefix("p[").removesuffix("]") for leaf in report.leaves} == {"X", "W", "b"}, report


class _ForgetsReturn(Dense):  # a single layer that forgets to return dx: a missing gradient, not a pass
    def backward(self, dA):
        super().backward(dA)


def test_a_single_layer_that_returns_nothing_fails_on_its_missing_input_gradient():
    report = backcheck.check_object(_ForgetsReturn(), X)
    assert report.status == "fail", report
    assert any(f.kind == "missing gradient" for f in report.findings), report
