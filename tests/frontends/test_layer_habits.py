"""check_layer and check_object on the habits of hand-written numpy layers: config dicts written by forward
(CS231n bn_param), a bare dx beside labels and hyperparameters, lazily created parameters with stored inputs,
parameters in dicts of their own ({'val': W, 'grad': dW}), layers without parameters, buffers among the
parameters, list inputs, loss layers with backward(dout=1), forward passes left as TODO."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

import backcheck
from backcheck.errors import BadInputError, GradientStructureError


def failing(report: backcheck.Report) -> set[str]:
    return {leaf.name for leaf in report.leaves if leaf.status == "fail"}


# -- config dicts written by forward ------------------------------------------------------------------------
def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, bn_param: dict) -> Any:
    """CS231n's contract: running statistics written into bn_param, (out, cache) returned."""
    rm = bn_param.get("running_mean", np.zeros(x.shape[1]))
    rv = bn_param.get("running_var", np.zeros(x.shape[1]))
    mu, var = x.mean(0), x.var(0)
    bn_param["running_mean"] = 0.9 * rm + 0.1 * mu
    bn_param["running_var"] = 0.9 * rv + 0.1 * var
    bn_param["calls"] = bn_param.get("calls", 0) + 1
    xhat = (x - mu) / np.sqrt(var + 1e-5)
    return gamma * xhat + beta, (xhat, gamma, np.sqrt(var + 1e-5), bn_param)


def batchnorm_backward(dout: np.ndarray, cache: Any) -> Any:
    xhat, gamma, std, bn_param = cache
    assert bn_param["calls"] == 1, "backward must see the state of one forward pass from the start"
    n, d = dout.shape[0], dout * gamma
    return (n * d - d.sum(0) - xhat * (d * xhat).sum(0)) / (n * std), (dout * xhat).sum(0), dout.sum(0)


def test_a_config_dict_written_by_forward_is_private_to_each_evaluation() -> None:
    rng = np.random.default_rng(0)
    x, g, b = rng.normal(size=(8, 3)), rng.normal(size=3), rng.normal(size=3)
    bn_param = {"mode": "train", "eps": [1e-5]}
    before = copy.deepcopy(bn_param)
    report = backcheck.check_layer(batchnorm_forward, batchnorm_backward, (x, g, b, bn_param), cache=True)
    assert report.ok and [leaf.name for leaf in report.leaves] == ["x", "gamma", "beta"], str(report)
    assert bn_param == before  # not one key added: the caller's dict was never passed
    assert bn_param["eps"] is not before["eps"] and isinstance(bn_param["eps"], list)

    def wrong(dout: np.ndarray, cache: Any) -> Any:
        dx, dg, db = batchnorm_backward(dout, cache)
        return dx, dg * 1.01, db

    assert failing(backcheck.check_layer(batchnorm_forward, wrong, (x, g, b, {"mode": "train"}), cache=True)) == {
        "gamma"
    }


def test_without_cache_backward_sees_what_the_same_calls_forward_wrote() -> None:
    def forward(x: np.ndarray, param: dict) -> np.ndarray:
        param["scale"] = param.get("scale", 0.0) + 2.0  # state written by forward, read by backward
        return np.sin(x) * param["scale"]

    def backward(dout: np.ndarray, x: np.ndarray, param: dict) -> np.ndarray:
        return dout * np.cos(x) * param["scale"]

    param: dict = {}
    x = np.linspace(-1, 1, 6)
    report = backcheck.check_layer(forward, backward, (x, param))
    assert report.ok, str(report)
    assert param == {}


# -- one gradient, labels and hyperparameters beside it -------------------------------------------------------
def dropout_forward(x: np.ndarray, dropout_param: dict) -> Any:
    mask = (np.random.default_rng(dropout_param["seed"]).random(x.shape) < dropout_param["p"]) / dropout_param["p"]
    return x * mask, mask


def hip_dropout_forward(X: np.ndarray, p_dropout: float) -> Any:
    u = (np.random.default_rng(0).random(X.shape) < p_dropout) / p_dropout
    return X * u, u


@pytest.mark.parametrize(
    ("forward", "config"),
    [(dropout_forward, {"p": 0.6, "seed": 1}), (hip_dropout_forward, 0.6)],
    ids=["dict config", "python float"],
)
@pytest.mark.parametrize("style", ["bare", "with None"])
def test_a_bare_gradient_beside_config_is_the_one_inputs(forward: Any, config: Any, style: str) -> None:
    x = np.random.default_rng(0).normal(size=(4, 5))

    def backward(dout: np.ndarray, mask: np.ndarray) -> Any:
        return dout * mask if style == "bare" else (dout * mask, None)

    def wrong(dout: np.ndarray, mask: np.ndarray) -> Any:
        return dout * mask * 1.02 if style == "bare" else (dout * mask * 1.02, None)

    report = backcheck.check_layer(forward, backward, (x, config), cache=True)
    assert report.ok and [leaf.name for leaf in report.leaves] == ["x" if forward is dropout_forward else "X"]
    assert not [f for f in report.findings if f.kind == "missing gradient"], str(report)
    if isinstance(config, float):
        assert any("passed through unperturbed as hyperparameters" in n for n in report.notes), report.notes
    assert report.status == "pass"
    assert backcheck.check_layer(forward, wrong, (x, config), cache=True).status == "fail"


def test_a_python_float_is_checked_when_backward_returns_its_gradient() -> None:
    def forward(x: np.ndarray, a: float) -> np.ndarray:
        return np.sin(a * x)

    def backward(dout: np.ndarray, x: np.ndarray, a: float) -> Any:
        c = np.cos(a * x) * dout
        return c * a, float(np.sum(c * x))

    def wrong(dout: np.ndarray, x: np.ndarray, a: float) -> Any:
        dx, da = backward(dout, x, a)
        return dx, da * 1.05 + 0.1

    x = np.linspace(-1, 1, 5)
    report = backcheck.check_layer(forward, backward, (x, 0.7))
    assert report.ok and [leaf.name for leaf in report.leaves] == ["x", "a"], str(report)
    assert failing(backcheck.check_layer(forward, wrong, (x, 0.7))) == {"a"}
    # named in wrt: checked even without a gradient, so a missing one is a finding
    named = backcheck.check_layer(forward, lambda d, x, a: (backward(d, x, a)[0], None), (x, 0.7), wrt=["x", "a"])
    assert any(f.kind == "missing gradient" for f in named.findings) and not named.ok
    # np.float64 stays a float input to differentiate
    kept = backcheck.check_layer(forward, lambda d, x, a: (backward(d, x, a)[0], None), (x, np.float64(0.7)))
    assert not kept.ok and any(f.kind == "missing gradient" for f in kept.findings)


def test_labels_beside_one_float_input_take_a_bare_gradient() -> None:
    def forward(x: np.ndarray, t: np.ndarray) -> Any:
        e = np.exp(x - x.max(1, keepdims=True))
        p = e / e.sum(1, keepdims=True)
        return -np.mean(np.log(p[np.arange(len(t)), t])), (p, t)

    def backward(dout: Any, cache: Any) -> np.ndarray:
        p, t = cache
        d = p.copy()
        d[np.arange(len(t)), t] -= 1
        return dout * d / len(t)

    x, t = np.random.default_rng(2).normal(size=(4, 3)), np.array([0, 2, 1, 1])
    assert backcheck.check_layer(forward, backward, (x, t), cache=True).ok
    assert not backcheck.check_layer(forward, lambda d, c: backward(d, c) * 1.01, (x, t), cache=True).ok


def test_a_forward_left_as_a_todo_says_it_returned_none() -> None:
    def lstm_step_forward(x: np.ndarray, prev_h: np.ndarray) -> Any:
        next_h, next_c, cache = None, None, None
        return (next_h, next_c), cache

    with pytest.raises(BadInputError, match=r"output out\[0\] is None") as info:
        backcheck.check_layer(
            lstm_step_forward, lambda d, c: (None, None), (np.ones((2, 3)), np.ones((2, 4))), cache=True
        )
    assert "TODO" in (info.value.hint or "")
    with pytest.raises(BadInputError, match="returned None"):
        backcheck.check_layer(lambda x: None, lambda d, x: d, (np.ones(3),))


# -- check_object: lazily created parameters with stored inputs --------------------------------------------------
class LayerNorm1D:
    """numpy-ml style: parameters created by the first forward pass, inputs appended to a list."""

    def __init__(self, epsilon: float = 1e-5) -> None:
        self.epsilon, self.is_initialized, self.X = epsilon, False, []

    def forward(self, X: np.ndarray) -> np.ndarray:
        if not self.is_initialized:
            self.parameters = {"scaler": np.random.random(X.shape[1]) + 0.5, "intercept": np.zeros(X.shape[1])}
            self.gradients = {k: np.zeros_like(v) for k, v in self.parameters.items()}
            self.is_initialized = True
        self.X.append(X)
        lnorm = (X - X.mean(1, keepdims=True)) / np.sqrt(X.var(1, keepdims=True) + self.epsilon)
        return self.parameters["scaler"] * lnorm + self.parameters["intercept"]

    def backward(self, dLdy: np.ndarray) -> np.ndarray:
        X = self.X[0]
        n = X.shape[1]
        std = np.sqrt(X.var(1, keepdims=True) + self.epsilon)
        lnorm = (X - X.mean(1, keepdims=True)) / std
        self.gradients["scaler"] += np.sum(dLdy * lnorm, axis=0)
        self.gradients["intercept"] += dLdy.sum(axis=0)
        d = dLdy * self.parameters["scaler"]
        return (n * d - d.sum(1, keepdims=True) - lnorm * (d * lnorm).sum(1, keepdims=True)) / (n * std)


class LazyReluDense:
    """Lazily created weights, the input kept in a list, ReLU at kinks where rows of X are zero."""

    def __init__(self, n_out: int) -> None:
        self.n_out, self.X, self.W = n_out, [], None

    def forward(self, X: np.ndarray) -> np.ndarray:
        if self.W is None:
            self.W = np.random.default_rng(0).normal(size=(X.shape[1], self.n_out))
        self.X.append(X)
        return np.maximum(X @ self.W, 0)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        X = self.X[0]
        dZ = dy * (X @ self.W > 0)
        self.dW = X.T @ dZ
        return dZ @ self.W.T


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_lazily_initialised_layer_reads_each_evaluations_input(dtype: type) -> None:
    X = np.random.default_rng(1).normal(size=(6, 4)).astype(dtype)
    layer = LayerNorm1D()
    state = np.random.get_state()
    report = backcheck.check_object(layer, X)
    assert report.ok and [leaf.name for leaf in report.leaves] == ["X", "scaler", "intercept"], str(report)
    assert not layer.is_initialized and layer.X == []  # the caller's object untouched
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state()[1:2], state[1:2], strict=True))

    class Wrong(LayerNorm1D):
        def backward(self, dLdy: np.ndarray) -> np.ndarray:
            dx = super().backward(dLdy)
            self.gradients["intercept"] *= 1.01
            return dx

    assert failing(backcheck.check_object(Wrong(), X)) == {"intercept"}


def test_a_lazily_initialised_relu_layer_at_kinks() -> None:
    X = np.random.default_rng(1).normal(size=(4, 3))
    X[[0, 1]] = 0.0
    report = backcheck.check_object(LazyReluDense(5), X)
    assert report.ok and [leaf.name for leaf in report.leaves] == ["X", "W"], str(report)


class LazyCell:
    """A recurrent step, numpy-ml RNNCell style: lazily created weights, each forward pass one more time step
    whose hidden state feeds the next; backward reads the current step."""

    def __init__(self, n_out: int, bug: float = 0.0) -> None:
        self.n_out, self.bug, self.W = n_out, bug, None

    def forward(self, X: np.ndarray) -> np.ndarray:
        if self.W is None:
            self.W = np.random.default_rng(0).normal(size=(X.shape[1], self.n_out))
            self.steps, self.A, self.X = 0, [np.zeros((X.shape[0], self.n_out))], []
        self.steps += 1
        self.X.append(X)
        self.A.append(np.tanh(X @ self.W + self.A[-1]))
        return self.A[-1]

    def backward(self, dA: np.ndarray) -> np.ndarray:
        dz = dA * (1 - self.A[self.steps] ** 2)
        self.dW = self.X[self.steps - 1].T @ dz * (1 + self.bug)
        return dz @ self.W.T


def test_a_lazily_initialised_recurrent_step_continues_from_its_first_pass() -> None:
    X = np.random.default_rng(3).normal(size=(4, 3))
    report = backcheck.check_object(LazyCell(2), X)
    assert report.ok and [leaf.name for leaf in report.leaves] == ["X", "W"], str(report)
    assert any("carries state from one call to the next" in n for n in report.notes), report.notes
    assert failing(backcheck.check_object(LazyCell(2, bug=0.01), X)) == {"W"}


# -- check_object: parameters in dicts of their own ------------------------------------------------------------
class Fc:
    """CNNumpy style: ``self.W = {'val': ..., 'grad': ...}``; backward also returns (dX, dW, db)."""

    def __init__(self, key: str = "val", bug: float = 0.0) -> None:
        rng = np.random.default_rng(1)
        self.key, self.bug = key, bug
        self.W = {key: rng.normal(size=(3, 6)), "grad": 0}
        self.b = {key: rng.normal(size=(1, 3)), "grad": 0}

    def forward(self, fc: np.ndarray) -> np.ndarray:
        self.cache = fc
        return np.tanh(fc @ self.W[self.key].T + self.b[self.key])

    def backward(self, deltaL: np.ndarray) -> Any:
        dz = deltaL * (1 - self.forward(self.cache) ** 2)
        self.W["grad"] = dz.T @ self.cache
        self.b["grad"] = dz.sum(axis=0, keepdims=True) * (1 + self.bug)
        return dz @ self.W[self.key], self.W["grad"], self.b["grad"]


@pytest.mark.parametrize("key", ["val", "value", "data"])
def test_value_and_grad_dicts_are_found_and_named_by_path(key: str) -> None:
    x = np.random.default_rng(0).normal(size=(4, 6))
    report = backcheck.check_object(Fc(key), x)
    assert report.ok and [leaf.name for leaf in report.leaves] == ["fc", f"W[{key}]", f"b[{key}]"], str(report)
    assert failing(backcheck.check_object(Fc(key, bug=0.01), x)) == {f"b[{key}]"}


def test_named_value_dicts_take_gradients_by_path_or_returned() -> None:
    x = np.random.default_rng(0).normal(size=(4, 6))
    for grads in ("return", {"W[val]": "W[grad]", "b[val]": "b[grad]"}):
        report = backcheck.check_object(Fc(), x, params=["W[val]", "b[val]"], grads=grads)
        assert report.ok and [leaf.name for leaf in report.leaves] == ["fc", "W[val]", "b[val]"], str(report)


# -- check_object: defaults on common shapes -------------------------------------------------------------------
class BatchNorm1D:
    """numpy-ml style: buffers (running_mean, running_var) among the parameters, without gradients."""

    def __init__(self, n: int) -> None:
        self.parameters = {
            "scaler": np.ones(n) * 1.3,
            "intercept": np.zeros(n) + 0.1,
            "running_mean": np.zeros(n),
            "running_var": np.ones(n),
        }
        self.gradients = {"scaler": np.zeros(n), "intercept": np.zeros(n)}

    def forward(self, X: np.ndarray) -> np.ndarray:
        self.X = X
        mu, var = X.mean(0), X.var(0)
        self.parameters["running_mean"] = 0.9 * self.parameters["running_mean"] + 0.1 * mu
        self.parameters["running_var"] = 0.9 * self.parameters["running_var"] + 0.1 * var
        self.xhat = (X - mu) / np.sqrt(var + 1e-5)
        return self.parameters["scaler"] * self.xhat + self.parameters["intercept"]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        n, xh = dy.shape[0], self.xhat
        self.gradients["scaler"] += (dy * xh).sum(0)
        self.gradients["intercept"] += dy.sum(0)
        d = dy * self.parameters["scaler"]
        return (n * d - d.sum(0) - xh * (d * xh).sum(0)) / (n * np.sqrt(self.X.var(0) + 1e-5))


class FrozenShift(BatchNorm1D):
    """A buffer that forward only reads: no gradient, not written anywhere."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.parameters["shift"] = np.full(n, 0.25)

    def forward(self, X: np.ndarray) -> np.ndarray:
        return super().forward(X) + self.parameters["shift"]


def test_buffers_among_the_parameters_are_left_out_with_a_note() -> None:
    x = np.random.default_rng(0).normal(size=(5, 4))
    for layer in (BatchNorm1D(4), FrozenShift(4)):
        report = backcheck.check_object(layer, x)
        assert [leaf.name for leaf in report.leaves] == ["X", "scaler", "intercept"], str(report)
        assert all(leaf.status == "pass" for leaf in report.leaves), str(report)
        assert any("running_mean" in n for n in report.notes), report.notes
        named = backcheck.check_object(layer, x, params="parameters")
        assert [leaf.name for leaf in named.leaves] == ["X", "scaler", "intercept"]
    assert backcheck.check_object(BatchNorm1D(4), x).ok
    # an array forward reads with no gradient anywhere: a buffer, or a gradient backward forgot (not vouched for)
    frozen = backcheck.check_object(FrozenShift(4), x)
    assert frozen.status == "inconclusive" and any("not checked: shift" in n for n in frozen.notes), str(frozen)
    assert [f.elements for f in frozen.findings] == [["self.parameters['shift']"]], frozen.findings
    assert backcheck.check_object(FrozenShift(4), x, params=["parameters[scaler]", "parameters[intercept]"]).ok
    with pytest.raises(BadInputError, match="no gradient of self.parameters") as info:  # named one by one: strict
        backcheck.check_object(FrozenShift(4), x, params=["parameters[scaler]", "parameters[shift]"])
    assert "leave it out" in (info.value.hint or "")


def test_a_list_of_arrays_is_one_input() -> None:
    class Add:
        def forward(self, X: list) -> np.ndarray:
            self.n, self.y_in = len(X), X[0] + 2 * X[1]
            return np.tanh(self.y_in)

        def backward(self, dLdY: np.ndarray) -> list:
            g = dLdY * (1 - np.tanh(self.y_in) ** 2)
            return [g, 2 * g]

    class Wrong(Add):
        def backward(self, dLdY: np.ndarray) -> list:
            return [g * (1 + k) for k, g in enumerate(super().backward(dLdY))]

    rng = np.random.default_rng(0)
    X = [rng.normal(size=(5, 4)), rng.normal(size=(5, 4))]
    report = backcheck.check_object(Add(), X)
    assert report.ok and report.leaves[0].name.startswith("X"), str(report)
    assert len(report.leaves) == 2
    assert failing(backcheck.check_object(Wrong(), X)) == {report.leaves[1].name}


def test_a_bare_dx_beside_a_float_input_declared_constant() -> None:
    class Scaled:
        def __init__(self, bug: float = 0.0) -> None:
            self.W, self.bug = np.linspace(-1, 1, 6).reshape(3, 2), bug

        def forward(self, x: np.ndarray, s: np.ndarray) -> np.ndarray:
            self.x, self.s = x, s
            return np.tanh(x @ self.W) * s

        def backward(self, g: np.ndarray) -> np.ndarray:
            dz = g * self.s * (1 - np.tanh(self.x @ self.W) ** 2)
            self.dW = self.x.T @ dz
            return dz @ self.W.T * (1 + self.bug)

    x, s = np.random.default_rng(0).normal(size=(4, 3)), np.full((4, 2), 0.5)
    report = backcheck.check_object(Scaled(), x, s, constant=["s"])
    assert report.ok and [leaf.name for leaf in report.leaves] == ["x", "W"], str(report)
    assert failing(backcheck.check_object(Scaled(bug=0.01), x, s, constant="s")) == {"x"}
    with pytest.raises(GradientStructureError, match=r"returned a ndarray for 2 inputs \(x, s\)"):
        backcheck.check_object(Scaled(), x, s)  # two float inputs: which one the bare array is for is unknown


def test_a_loss_layer_with_backward_dout_1_returning_dx() -> None:
    class SoftmaxWithLoss:
        def forward(self, x: np.ndarray, t: np.ndarray) -> float:
            self.t = t
            e = np.exp(x - x.max(1, keepdims=True))
            self.y = e / e.sum(1, keepdims=True)
            return float(-np.mean(np.log(self.y[np.arange(len(t)), t])))

        def backward(self, dout: float = 1) -> np.ndarray:  # ignores dout, as deep-learning-from-scratch's does
            dx = self.y.copy()
            dx[np.arange(len(self.t)), self.t] -= 1
            return dx / len(self.t)

    class Wrong(SoftmaxWithLoss):
        def backward(self, dout: float = 1) -> np.ndarray:
            return super().backward(dout) * 1.01

    x, t = np.random.default_rng(0).normal(size=(5, 4)), np.array([0, 3, 1, 2, 2])
    report = backcheck.check_object(SoftmaxWithLoss(), x, t)
    assert report.ok and [leaf.name for leaf in report.leaves] == ["x"], str(report)
    assert any("dout = 1" in n for n in report.notes), report.notes
    assert failing(backcheck.check_object(Wrong(), x, t)) == {"x"}


LABELS6 = np.arange(6) % 4


def _ce_forward(x):
    p = np.exp(x - x.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return -np.log(p[np.arange(6), LABELS6])


def _ce_backward(dout, x, scale=1.0):
    p = np.exp(x - x.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(6), LABELS6] -= 1
    return (p * dout[:, None] * scale,)


@pytest.mark.parametrize("seed", range(6))
def test_a_confident_float32_cross_entropy_layer_is_differenced_in_float64(seed):
    # -log p at p near 1 in float32 is off by far more than eps32 of itself, yet within float32's rounding of
    # the unit-sized p: the float64 copies compute the same function, and the layer is judged through them
    x = np.random.default_rng(seed).normal(size=(6, 4)).astype(np.float32)
    x[np.arange(6), LABELS6] += 9.0
    report = backcheck.check_layer(_ce_forward, _ce_backward, (x,))
    assert report.ok, report
    assert any("float64" in n for n in report.notes), report.notes
    wrong = backcheck.check_layer(_ce_forward, lambda d, x: _ce_backward(d, x, 1.01), (x,))
    assert wrong.status == "fail"


def test_a_config_that_cannot_be_deep_copied_is_still_never_written():
    import threading

    class Stubborn:
        scale = 2.0

        def __deepcopy__(self, memo):
            raise RuntimeError("no copies")

    cfg = {"lock": threading.Lock(), "calls": 0}

    def forward(x, cfg):
        cfg["calls"] += 1
        return x * 2.0

    report = backcheck.check_layer(forward, lambda d, x, cfg: (d * 2.0, None), (np.ones(3), cfg))
    assert report.ok and cfg["calls"] == 0
    # a config whose deep copy raises is copied one level, not a raw error
    report = backcheck.check_layer(
        lambda x, c: x * c.scale, lambda d, x, c: (d * c.scale, None), (np.ones(3), Stubborn())
    )
    assert report.ok


def test_an_object_input_that_cannot_be_deep_copied_is_a_typed_error():
    import threading

    class Scale:
        def __init__(self):
            self.w = np.ones(3)
            self.dw = np.zeros(3)

        def forward(self, x, cfg):
            self.x = x
            return x * self.w

        def backward(self, d):
            self.dw += (d * self.x).sum(0)
            return d * self.w

    with pytest.raises(backcheck.BadInputError, match="cannot be deep-copied"):
        backcheck.check_object(Scale(), np.ones((2, 3)), {"lock": threading.Lock()})


def _relu_random_at_zero(dout: np.ndarray, x: np.ndarray, factor: float = 1.0) -> np.ndarray:
    """A ReLU backward that draws its slope at 0 from numpy's global stream (any value in [0, 1] is valid)."""
    return factor * (np.where(x <= 0, 0.0, 1.0) + np.where(x == 0, np.random.uniform(0.5, 1), 0.0)) * dout


class _ReluDraws:
    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return np.maximum(x, 0.0)

    def backward(self, d: np.ndarray) -> np.ndarray:
        return _relu_random_at_zero(d, self.x)


def test_a_backward_drawing_its_subgradient_at_a_kink_is_one_rule_at_every_dout() -> None:
    # (its call at -4 dout drew another slope: a 'nonlinear backward' blaming clipping or a step)
    x = np.array([[-1.0, 0.0, 2.0], [0.0, 1.0, -2.0]])
    state = np.random.get_state()
    report = backcheck.check_layer(lambda x: (np.maximum(x, 0.0), x), _relu_random_at_zero, (x,), cache=True)
    assert report.status == "pass" and not report.findings, report
    assert backcheck.check_object(_ReluDraws(), x).status == "pass"
    after = np.random.get_state()
    assert all(np.array_equal(a, b) for a, b in zip(state[1:2], after[1:2], strict=True))  # the user's stream
    wrong = backcheck.check_layer(
        lambda x: (np.maximum(x, 0.0), x), lambda d, x: _relu_random_at_zero(d, x, 1.5), (x,), cache=True
    )
    assert wrong.status == "fail", wrong
