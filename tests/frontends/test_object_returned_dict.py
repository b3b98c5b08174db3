"""check_object reads parameters' gradients that backward returns in a dict keyed by the parameters' names, after
the inputs' gradients (``return dx, {"W": dW, "b": db}``, as numpy Transformers written from scratch do) or with
them (``{"x": dx, "W": dW, "b": db}``): right layers pass, a wrong entry fails its parameter alone, an entry left
out is a missing gradient, and the note says where the gradients were read."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck
from backcheck.errors import BadInputError

RNG = np.random.default_rng(7)
X = RNG.normal(size=(5, 4))
MASK = RNG.random((5, 3)) > 0.3  # (boolean: not differentiated)


class DictParams:
    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.params = {"W": rng.normal(size=(4, 3)), "b": rng.normal(size=3)}

    def forward(self, x):
        self.x = x
        return np.tanh(x @ self.params["W"] + self.params["b"])

    def grads(self, dout):
        dz = dout * (1 - self.forward(self.x) ** 2)
        return dz @ self.params["W"].T, {"W": self.x.T @ dz, "b": dz.sum(0)}

    def backward(self, dout):
        return self.grads(dout)


class AttrParams:
    def __init__(self) -> None:
        rng = np.random.default_rng(1)
        self.W, self.b = rng.normal(size=(4, 3)), rng.normal(size=3)

    def forward(self, x, mask):
        self.x, self.mask = x, mask
        return (x @ self.W + self.b) * mask

    def backward(self, dout):
        dz = dout * self.mask
        return dz @ self.W.T, {"b": dz.sum(0), "W": self.x.T @ dz}  # (keys in another order than the attributes)


class AllInOneDict(AttrParams):
    def backward(self, dout):
        dz = dout * self.mask
        return {"x": dz @ self.W.T, "W": self.x.T @ dz, "b": dz.sum(0)}


@pytest.mark.parametrize(
    "layer, inputs",
    [(DictParams(), (X,)), (AttrParams(), (X, MASK)), (AllInOneDict(), (X, MASK))],
    ids=["dict-params", "attributes", "one-dict"],
)
def test_gradients_returned_in_a_dict_are_read_by_name(layer, inputs):
    report = backcheck.check_object(layer, *inputs)
    assert report.status == "pass", report
    assert {leaf.name for leaf in report.leaves} == {"x", "W", "b"}, report
    assert all(leaf.n_checked == int(np.prod(leaf.shape)) for leaf in report.leaves), report
    assert any("gradient in the dict backward() returns" in n for n in report.notes), report.notes


class _WrongBias(DictParams):
    def backward(self, dout):
        dx, grads = self.grads(dout)
        return dx, {**grads, "b": grads["b"] * 1.01}


class _SwappedKeys(AttrParams):
    def backward(self, dout):
        dz = dout * self.mask
        return dz @ self.W.T, {"W": self.x.T @ dz * 0.5, "b": dz.sum(0)}


class _WrongInput(AllInOneDict):
    def backward(self, dout):
        grads = super().backward(dout)
        return {**grads, "x": grads["x"][:, ::-1]}


@pytest.mark.parametrize(
    "layer, inputs, wrong",
    [(_WrongBias(), (X,), "b"), (_SwappedKeys(), (X, MASK), "W"), (_WrongInput(), (X, MASK), "x")],
    ids=["bias", "weights", "input"],
)
def test_a_wrong_entry_fails_its_array_alone(layer, inputs, wrong):
    report = backcheck.check_object(layer, *inputs)
    assert report.status == "fail", report
    assert [leaf.name for leaf in report.leaves if leaf.status == "fail"] == [wrong], report


class _LeavesOutBias(DictParams):
    def backward(self, dout):
        dx, grads = self.grads(dout)
        return dx, {"W": grads["W"]}


def test_an_entry_left_out_is_a_missing_gradient():
    report = backcheck.check_object(_LeavesOutBias(), X)
    assert report.status == "fail", report
    assert any("MISSING GRADIENT" in str(f) or "missing" in str(f).lower() for f in report.findings), report
    assert [leaf.status for leaf in report.leaves if leaf.name == "b"] == ["skipped"], report


class _UnknownKeys(DictParams):
    def backward(self, dout):
        dx, grads = self.grads(dout)
        return dx, {"weights_grad": grads["W"], "bias_grad": grads["b"]}


def test_keys_that_name_no_parameter_are_told_as_before():
    with pytest.raises(BadInputError, match="found no gradient of self.params"):
        backcheck.check_object(_UnknownKeys(), X)


class _Tanh:  # deepnet's convention: every layer returns (dX, [its parameters' gradients]), none here
    def __init__(self) -> None:
        self.params: list[np.ndarray] = []

    def forward(self, X):
        self.out = np.tanh(X)
        return self.out

    def backward(self, dout):
        return dout * (1 - self.out**2), []


class _TanhWrong(_Tanh):
    def backward(self, dout):
        return dout * (1 + self.out**2), ()


def test_a_layer_without_parameters_returning_an_empty_list_beside_dx_is_read():
    assert backcheck.check_object(_Tanh(), X).status == "pass"
    wrong = backcheck.check_object(_TanhWrong(), X)
    assert wrong.status == "fail" and wrong.leaves[0].status == "fail", wrong
