"""check_object finds gradients where hand-written layers keep them: a stored gradient beside a step inside
backward (the stored one is checked), gradient holders made in ``__init__`` (CMU 11-785's ``self.dLdW``, a
``SimpleNamespace`` of zeros), gradients named after the loss (``dL_dw``, ``dLdW``), a dict of gradients keyed by
such names for attribute parameters, of the layer or of layers it holds (``self.gradients['dLdW']`` for
``self.weights``); arrays forward reads where no parameter is looked for (pairs in a list, the class) leave the
check inconclusive, not passed; a backward returning fewer gradients than inputs is told which inputs may be
constants."""

from __future__ import annotations

import types

import numpy as np
import pytest

import backcheck
from backcheck.errors import GradientStructureError

RNG = np.random.default_rng(0)
X = RNG.normal(size=(5, 4))
W0, B0 = RNG.normal(size=(4, 3)), RNG.normal(size=3)


def _off(g: np.ndarray, wrong: bool) -> np.ndarray:
    g = g.copy()
    if wrong:
        g[1, 2] *= 1.02
    return g


class StoredAndStepped:
    """Gradients stored in a dict under gradient names, and the weights stepped inside backward as well."""

    def __init__(self, wrong: bool = False):
        self.params = {"W": W0.copy(), "b": B0.copy()}
        self.gradients = {"dW": np.zeros_like(W0), "db": np.zeros_like(B0)}
        self.wrong = wrong

    def forward(self, x):
        self.x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, d, lr):
        self.gradients["dW"] = _off(self.x.T @ d, self.wrong)
        self.gradients["db"] = d.sum(0)
        dx = d @ self.params["W"].T
        self.params["W"] = self.params["W"] - lr * self.x.T @ d  # the step itself is right
        self.params["b"] = self.params["b"] - lr * self.gradients["db"]
        return dx


@pytest.mark.parametrize("wrong", [False, True])
def test_a_stored_gradient_is_checked_though_backward_steps_too(wrong):
    r = backcheck.check_object(StoredAndStepped(wrong), X)
    assert r.status == ("fail" if wrong else "pass"), r
    assert {lf.name: lf.status for lf in r.leaves}["W"] == ("fail" if wrong else "pass")
    assert any("gradient in self.gradients['dW']" in n for n in r.notes), r.notes


class SteppedWithMomentum:
    """A momentum dict keyed by the parameters' names, updated with the step: no gradient of theirs."""

    def __init__(self, wrong: bool = False):
        self.params = {"W": W0.copy(), "b": B0.copy()}
        self.velocity = {"W": np.zeros_like(W0), "b": np.zeros_like(B0)}
        self.wrong = wrong

    def forward(self, x):
        self.x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, d, lr):
        dx = d @ self.params["W"].T
        self.velocity["W"] = 0.9 * self.velocity["W"] - lr * _off(self.x.T @ d, self.wrong)
        self.velocity["b"] = 0.9 * self.velocity["b"] - lr * d.sum(0)
        self.params["W"] = self.params["W"] + self.velocity["W"]
        self.params["b"] = self.params["b"] + self.velocity["b"]
        return dx


@pytest.mark.parametrize("wrong", [False, True])
def test_a_stepping_backwards_momentum_under_the_parameters_keys_is_no_gradient(wrong):
    # (a guard, passing before too: a stored gradient now comes before the step, and the momentum is no gradient)
    r = backcheck.check_object(SteppedWithMomentum(wrong), X)
    assert r.status == ("fail" if wrong else "pass"), r
    assert any("read off their step" in n for n in r.notes), r.notes


class CmuBatchNorm:
    """CMU 11-785's layout: BW, Bb, their gradients dLdBW, dLdBb made as zeros in __init__."""

    def __init__(self, wrong: bool = False):
        n = X.shape[1]
        self.BW, self.Bb = RNG.normal(size=(1, n)), RNG.normal(size=(1, n))
        self.dLdBW, self.dLdBb = np.zeros((1, n)), np.zeros((1, n))
        self.running_M, self.running_V = np.zeros((1, n)), np.ones((1, n))
        self.eps, self.wrong = 1e-8, wrong

    def forward(self, Z):
        self.M, self.V = Z.mean(0), Z.var(0)
        self.running_M = 0.9 * self.running_M + 0.1 * self.M
        self.running_V = 0.9 * self.running_V + 0.1 * self.V
        self.NZ = (Z - self.M) / np.sqrt(self.V + self.eps)
        return self.BW * self.NZ + self.Bb

    def backward(self, dLdBZ):
        self.dLdBW = np.sum(dLdBZ * self.NZ, axis=0, keepdims=True) * (1.02 if self.wrong else 1.0)
        self.dLdBb = np.sum(dLdBZ, axis=0, keepdims=True)
        dLdNZ = dLdBZ * self.BW
        s = 1 / np.sqrt(self.V + self.eps)
        return s * (dLdNZ - dLdNZ.mean(0) - self.NZ * (dLdNZ * self.NZ).mean(0))


@pytest.mark.parametrize("wrong", [False, True])
def test_gradients_named_after_the_loss_made_in_init_are_gradients(wrong):
    r = backcheck.check_object(CmuBatchNorm(wrong), X)
    status = {lf.name: lf.status for lf in r.leaves}
    assert set(status) == {"Z", "BW", "Bb"}, r
    assert status["BW"] == ("fail" if wrong else "pass") and status["Bb"] == "pass", r


class LossNamed:
    """rahuldshetty/numpy_nn's names: weights, biases and dL_dw, dL_db."""

    def __init__(self, wrong: bool = False):
        self.weights, self.biases, self.wrong = W0.copy(), B0.copy(), wrong

    def forward(self, x):
        self.x = x
        return x @ self.weights + self.biases

    def backward(self, d):
        self.dL_dw = _off(self.x.T @ d, self.wrong)
        self.dL_db = d.sum(0)
        return d @ self.weights.T


@pytest.mark.parametrize("wrong", [False, True])
def test_dl_dw_is_the_gradient_of_weights(wrong):
    r = backcheck.check_object(LossNamed(wrong), X)
    status = {lf.name: lf.status for lf in r.leaves}
    assert status == {"x": "pass", "weights": "fail" if wrong else "pass", "biases": "pass"}, r


class NamespaceHolders:
    """Parameters and gradients in plain objects, the gradients' made (as zeros) in __init__."""

    def __init__(self, wrong: bool = False):
        self.p = types.SimpleNamespace(W=W0.copy(), b=B0.copy())
        self.g = types.SimpleNamespace(W=np.zeros_like(W0), b=np.zeros_like(B0))
        self.wrong = wrong

    def forward(self, x):
        self.x = x
        return x @ self.p.W + self.p.b

    def backward(self, d):
        self.g = types.SimpleNamespace(W=_off(self.x.T @ d, self.wrong), b=d.sum(0))
        return d @ self.p.W.T


@pytest.mark.parametrize("wrong", [False, True])
def test_a_gradient_holder_made_in_init_is_no_parameter(wrong):
    r = backcheck.check_object(NamespaceHolders(wrong), X)
    status = {lf.name: lf.status for lf in r.leaves}
    assert status == {"x": "pass", "p.W": "fail" if wrong else "pass", "p.b": "pass"}, r
    assert any("not checked: g.W, g.b" in n for n in r.notes), r.notes


class DictNamed:
    """YVSemlani/numpy-transformer's layout: attribute parameters, gradients in self.gradients['dLdW']."""

    def __init__(self, wrong: bool = False):
        self.weights, self.bias, self.wrong = W0.copy(), B0.copy(), wrong
        self.gradients: dict[str, np.ndarray] = {}

    def forward(self, x):
        self.x = x
        return x @ self.weights + self.bias

    def backward(self, d):
        self.gradients["dLdW"] = _off(self.x.T @ d, self.wrong)
        self.gradients["dLdb"] = d.sum(0)
        self.gradients["dLdX"] = d @ self.weights.T
        return self.gradients["dLdX"]


class HoldsDictNamed:
    def __init__(self, wrong: bool = False):
        self.inner = DictNamed(wrong)

    def forward(self, x):
        return np.tanh(self.inner.forward(x))

    def backward(self, d):
        self.y = np.tanh(self.inner.forward(self.inner.x))
        return self.inner.backward(d * (1 - self.y**2))


@pytest.mark.parametrize("wrong", [False, True])
def test_an_attributes_gradient_in_a_dict_under_its_gradient_name(wrong):
    r = backcheck.check_object(DictNamed(wrong), X)
    status = {lf.name: lf.status for lf in r.leaves}
    assert status == {"x": "pass", "weights": "fail" if wrong else "pass", "bias": "pass"}, r
    nested = backcheck.check_object(HoldsDictNamed(wrong), X)
    status = {lf.name: lf.status for lf in nested.leaves}
    assert status["inner.weights"] == ("fail" if wrong else "pass") and status["inner.bias"] == "pass", nested


class PairsInAList:
    """Parameters only as (param, grad) pairs in a list; the gradient written into the pair in place."""

    def __init__(self):
        self.params = [(W0.copy(), np.zeros_like(W0)), (B0.copy(), np.zeros_like(B0))]

    def forward(self, x):
        self.x = x
        return x @ self.params[0][0] + self.params[1][0]

    def backward(self, d):
        self.params[0][1][...] = _off(self.x.T @ d, True)
        self.params[1][1][...] = d.sum(0)
        return d @ self.params[0][0].T


class OnTheClass:
    W = W0.copy()

    def forward(self, x):
        self.x = x
        return x @ type(self).W

    def backward(self, d):
        self.dW = self.x.T @ d * 1.5
        return d @ type(self).W.T


@pytest.mark.parametrize(("layer", "names"), [(PairsInAList, ["params[0][0]", "params[1][0]"]), (OnTheClass, ["W"])])
def test_arrays_read_where_no_parameter_is_looked_for_leave_the_check_inconclusive(layer, names):
    before = OnTheClass.W.copy()
    r = backcheck.check_object(layer(), X)
    assert r.status == "inconclusive" and not r.ok, r
    assert [f.elements[0] for f in r.findings if f.kind == "unchecked gradient"] == names, r.findings
    assert np.array_equal(OnTheClass.W, before)  # (the class itself is never moved)


class Attention:
    def forward(self, q, k, v, mask):
        self.q, self.k, self.v, self.mask = q, k, v, mask
        return q * k + v * mask

    def backward(self, d):
        return d * self.k, d * self.q, d * self.mask


def test_the_constant_hint_names_the_inputs_after_the_gradients_returned():
    q, k, v = RNG.normal(size=(3, 4)), RNG.normal(size=(3, 4)), RNG.normal(size=(3, 4))
    mask = np.tril(np.ones((3, 4)))
    with pytest.raises(GradientStructureError) as info:
        backcheck.check_object(Attention(), q, k, v, mask)
    assert "constant=['mask']" in info.value.hint and "wrt=['q', 'k', 'v']" in info.value.hint, info.value.hint
    assert backcheck.check_object(Attention(), q, k, v, mask, constant=["mask"]).status == "pass"


class Final:
    """A parameter-free layer whose class refuses subclasses: its class array cannot be moved on a copy (a subclass
    holds the moved value), so it is not told either way, and a right layer passes."""

    SCALE = np.array(2.0)

    def __init_subclass__(cls, **kwargs):
        raise TypeError("Final cannot be subclassed")

    def forward(self, x):
        return x * 2.0

    def backward(self, d):
        return d * 2.0


def test_a_class_that_refuses_subclasses_is_no_unseen_array():
    r = backcheck.check_object(Final(), X)
    assert r.status == "pass" and not r.findings, r
