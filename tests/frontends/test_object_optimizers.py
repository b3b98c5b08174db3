"""Layers that step each parameter through an optimizer object of their own inside backward and keep no gradient
(``self.W = self.W_opt.update(self.W, grad_w)``, ``self.W_opt = copy.copy(optimizer)``: a widely read numpy
from-scratch library's layers): check_object reads each gradient where its optimizer is given it, in its own
copies; right layers pass, a wrong gradient fails where it is wrong, and the user's layer and optimizers are
left as they were."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import backcheck
from backcheck.errors import BadInputError


class Momentum:
    def __init__(self, learning_rate=0.01, momentum=0.9):
        self.learning_rate, self.momentum, self.w_updt = learning_rate, momentum, None

    def update(self, w, grad_wrt_w):
        if self.w_updt is None:
            self.w_updt = np.zeros(np.shape(w))
        self.w_updt = self.momentum * self.w_updt + (1 - self.momentum) * grad_wrt_w
        return w - self.learning_rate * self.w_updt


class Adam:
    def __init__(self, learning_rate=0.001, b1=0.9, b2=0.999):
        self.learning_rate, self.b1, self.b2, self.m, self.v = learning_rate, b1, b2, None, None

    def update(self, w, grad_wrt_w):
        if self.m is None:
            self.m, self.v = np.zeros(np.shape(grad_wrt_w)), np.zeros(np.shape(grad_wrt_w))
        self.m = self.b1 * self.m + (1 - self.b1) * grad_wrt_w
        self.v = self.b2 * self.v + (1 - self.b2) * np.power(grad_wrt_w, 2)
        return w - self.learning_rate * self.m / (np.sqrt(self.v) + 1e-8)


class Dense:
    def __init__(self, n_in, n_units, optimizer, seed=0):
        rng = np.random.default_rng(seed)
        self.W = rng.uniform(-0.5, 0.5, (n_in, n_units))
        self.w0 = rng.normal(size=(1, n_units))
        self.W_opt, self.w0_opt = copy.copy(optimizer), copy.copy(optimizer)
        self.trainable = True

    def forward_pass(self, X, training=True):
        self.layer_input = X
        return X.dot(self.W) + self.w0

    def backward_pass(self, accum_grad):
        W = self.W
        if self.trainable:
            grad_w = self.layer_input.T.dot(accum_grad)
            grad_w0 = np.sum(accum_grad, axis=0, keepdims=True)
            self.W = self.W_opt.update(self.W, self._wrong(grad_w))
            self.w0 = self.w0_opt.update(self.w0, grad_w0)
        return accum_grad.dot(W.T)

    def _wrong(self, grad_w):
        return grad_w


class WrongElement(Dense):
    def _wrong(self, grad_w):
        grad_w = grad_w.copy()
        grad_w[2, 1] *= 1.01
        return grad_w


X = np.random.default_rng(5).normal(size=(6, 4))
NAMES = {"forward": "forward_pass", "backward": "backward_pass"}


@pytest.mark.parametrize("optimizer", [Momentum(), Adam()], ids=["momentum", "adam"])
def test_gradients_given_to_the_layers_own_optimizers_are_checked(optimizer):
    layer = Dense(4, 3, optimizer)
    before = copy.deepcopy(layer.__dict__)
    report = backcheck.check_object(layer, X, **NAMES)
    assert report.status == "pass", report
    assert [lf.name for lf in report.leaves] == ["X", "W", "w0"]
    assert any("optimizer objects of its own (W_opt, w0_opt" in n for n in report.notes), report.notes
    assert isinstance(layer.W_opt, type(optimizer)) and layer.W_opt.__dict__ == before["W_opt"].__dict__
    assert np.array_equal(layer.W, before["W"]) and np.array_equal(layer.w0, before["w0"])


@pytest.mark.parametrize("optimizer", [Momentum(), Adam()], ids=["momentum", "adam"])
def test_a_wrong_gradient_given_to_an_optimizer_fails_where_it_is_wrong(optimizer):
    report = backcheck.check_object(WrongElement(4, 3, optimizer), X, **NAMES)
    assert report.status == "fail", report
    assert [e.name for e in report.mismatches] == ["W[2, 1]"]


class AfterStep(Dense):  # the input's gradient from the weights the optimizer has already stepped
    def backward_pass(self, accum_grad):
        self.W = self.W_opt.update(self.W, self.layer_input.T.dot(accum_grad))
        self.w0 = self.w0_opt.update(self.w0, np.sum(accum_grad, axis=0, keepdims=True))
        return accum_grad.dot(self.W.T)


@pytest.mark.parametrize("optimizer", [Momentum(), Adam()], ids=["momentum", "adam"])
def test_an_input_gradient_from_the_stepped_weights_fails(optimizer):
    # the check's optimizers hold the weights, so every array agreed: it passed, where a real step makes the
    # returned gradient wrong (by 7 at a learning rate of 0.5)
    layer = AfterStep(4, 3, optimizer)
    before = copy.deepcopy(layer.__dict__)
    report = backcheck.check_object(layer, X, **NAMES)
    assert report.status == "fail", report
    assert [f.kind for f in report.findings] == ["optimizer step"], report.findings
    assert "AfterStep.backward_pass" in report.findings[0].message and "W_opt, w0_opt" in report.findings[0].message
    assert np.array_equal(layer.W, before["W"]) and layer.W_opt.__dict__ == before["W_opt"].__dict__
    # the right layer, its weights kept before the step, has no such finding
    assert not backcheck.check_object(Dense(4, 3, optimizer), X, **NAMES).findings


class Renamed(Dense):  # optimizers under names that pair with no parameter
    def backward_pass(self, accum_grad):
        grad_w = self.layer_input.T.dot(accum_grad)
        out = accum_grad.dot(self.W.T)
        self.W = self.opt_a.update(self.W, grad_w)
        self.w0 = self.opt_b.update(self.w0, np.sum(accum_grad, axis=0, keepdims=True))
        return out


def test_an_optimizer_named_after_no_parameter_is_still_refused_by_name():
    renamed = Renamed(4, 3, Momentum())
    renamed.opt_a, renamed.opt_b = renamed.__dict__.pop("W_opt"), renamed.__dict__.pop("w0_opt")
    with pytest.raises(BadInputError, match="optimizer step inside backward"):
        backcheck.check_object(renamed, X, **NAMES)


class Tanh:
    def forward_pass(self, X, training=True):
        self.out = np.tanh(X)
        return self.out

    def backward_pass(self, accum_grad):
        return accum_grad * (1 - self.out**2)


class Net:  # a network object holding its layers, as such a library's NeuralNetwork does
    def __init__(self, layers):
        self.layers = layers

    def forward(self, X):
        for layer in self.layers:
            X = layer.forward_pass(X)
        return X

    def backward(self, grad):
        for layer in reversed(self.layers):
            grad = layer.backward_pass(grad)
        return grad


@pytest.mark.parametrize("held", ["list", "object"])
def test_layers_with_optimizers_of_their_own_inside_a_network(held):
    # refused: 'the gradient cannot be recovered from the update', with a hint naming self.dlayers[0].W
    def net(first=Dense, last=Dense):
        layers = [first(4, 3, Momentum(), seed=1), Tanh(), last(3, 2, Adam(), seed=2)]
        return (layers, NAMES) if held == "list" else (Net(layers), {})

    layers, names = net()
    report = backcheck.check_object(layers, X, **names)
    assert report.status == "pass", report
    assert {lf.name for lf in report.leaves} >= {"layers[0].W", "layers[0].w0", "layers[2].W", "layers[2].w0"}
    layers, names = net(first=WrongElement)
    assert [e.name for e in backcheck.check_object(layers, X, **names).mismatches] == ["layers[0].W[2, 1]"]
    layers, names = net(last=AfterStep)
    assert [f.kind for f in backcheck.check_object(layers, X, **names).findings] == ["optimizer step"]


def test_a_refused_layer_inside_a_network_is_hinted_at_its_own_attribute():
    # the hint read 'self.dlayers[0].W = ...'
    renamed = Renamed(4, 3, Momentum())
    renamed.opt_a, renamed.opt_b = renamed.__dict__.pop("W_opt"), renamed.__dict__.pop("w0_opt")
    with pytest.raises(BadInputError, match="optimizer step inside backward") as info:
        backcheck.check_object([renamed, Tanh()], X, **NAMES)
    assert "self.layers[0].dW = ..." in info.value.hint and "'layers[0].dW'" in info.value.hint, info.value.hint
