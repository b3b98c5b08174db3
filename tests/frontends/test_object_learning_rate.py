"""Layer objects whose backward takes a learning rate and steps the parameters itself (``backward(self,
output_gradient, learning_rate)``, keeping no dW): called with a learning rate of 1, each parameter's gradient is
read off its step. Right layers pass; a gradient computed after the step, a wrong dW, or a step that is no plain
gradient step fails; the user's layer is never changed."""

from __future__ import annotations

import numpy as np
import pytest
from scratch_layers import Dense

import backcheck
from backcheck.errors import ArgumentError


class StepsFirst(Dense):  # the input's gradient taken from the weights after the step
    def backward(self, output_gradient, learning_rate):
        self.weights -= learning_rate * (output_gradient @ self.input.T)
        self.bias -= learning_rate * output_gradient.sum(axis=1, keepdims=True)
        return self.weights.T @ output_gradient


class WrongStep(Dense):  # dW from the input's gradient instead of the input
    def backward(self, output_gradient, learning_rate):
        input_gradient = self.weights.T @ output_gradient
        self.weights -= learning_rate * (output_gradient @ input_gradient.T)
        self.bias -= learning_rate * output_gradient.sum(axis=1, keepdims=True)
        return input_gradient


class AdamStep(Dense):  # Adam's first step: the gradient over its own size
    def backward(self, output_gradient, learning_rate):
        input_gradient = self.weights.T @ output_gradient
        g = output_gradient @ self.input.T
        self.weights -= learning_rate * g / (np.abs(g) + 1e-8)
        self.bias -= learning_rate * output_gradient.sum(axis=1, keepdims=True)
        return input_gradient


class Tanh:
    def forward(self, input):
        self.input = input
        return np.tanh(input)

    def backward(self, output_gradient, lr=0.01):  # takes the rate, ignores it
        return output_gradient * (1 - np.tanh(self.input) ** 2)


def _x(n=(3, 2)):
    return np.random.default_rng(1).normal(size=n)


def test_a_right_layer_stepping_itself_passes_and_is_left_as_it_was():
    layer = Dense(3, 2)
    w, b = layer.weights.copy(), layer.bias.copy()
    report = backcheck.check_object(layer, _x())
    assert report.status == "pass", report
    assert {lf.name for lf in report.leaves} == {"input", "weights", "bias"}
    assert any("read off their step" in n and "learning_rate=1" in n for n in report.notes), report.notes
    np.testing.assert_array_equal(layer.weights, w)
    np.testing.assert_array_equal(layer.bias, b)


def test_an_activation_that_takes_the_rate_and_ignores_it_passes():
    report = backcheck.check_object(Tanh(), _x())
    assert report.status == "pass", report
    assert any("takes a learning rate (lr)" in n for n in report.notes), report.notes


@pytest.mark.parametrize(("layer", "wrong"), [(StepsFirst(3, 2), "input"), (WrongStep(3, 2), "weights")])
def test_a_wrong_layer_stepping_itself_fails_where_it_is_wrong(layer, wrong):
    report = backcheck.check_object(layer, _x())
    assert report.status == "fail", report
    assert [lf.name for lf in report.leaves if lf.status == "fail"] == [wrong], report


def test_a_step_that_is_no_gradient_step_leaves_its_parameter_inconclusive_and_says_why():
    # Adam's step is the gradient over its own size: nothing can be read off it, right or wrong
    report = backcheck.check_object(AdamStep(3, 2), _x())
    assert report.status == "inconclusive", report
    assert {lf.name: lf.status for lf in report.leaves} == {"input": "pass", "weights": "inconclusive", "bias": "pass"}
    weights = report.leaf("weights")
    assert "does not follow dout" in weights.note and "self.dW" in weights.note, weights.note
    assert weights.n_mismatch == 0 and all(e.status != "mismatch" for e in weights.worst), weights
    assert not np.isin(report.element_status["weights"], ["mismatch", "dead"]).any()
    assert not [f for f in report.findings if f.kind == "nonlinear backward"], report.findings


class AdamThenStale(AdamStep):  # Adam's step, and the input's gradient from the weights after it
    def backward(self, output_gradient, learning_rate):
        super().backward(output_gradient, learning_rate)
        return self.weights.T @ output_gradient


class AdamWrongInput(AdamStep):  # Adam's step, and an input gradient 10% off
    def backward(self, output_gradient, learning_rate):
        return 1.1 * super().backward(output_gradient, learning_rate)


@pytest.mark.parametrize("layer", [AdamThenStale(3, 2), AdamWrongInput(3, 2)])
def test_a_wrong_input_gradient_beside_an_optimizers_step_still_fails(layer):
    report = backcheck.check_object(layer, _x())
    assert report.status == "fail", report
    assert report.leaf("input").status == "fail", report


def test_a_second_parameter_of_another_name_is_no_learning_rate():
    class Gated(Tanh):
        def backward(self, output_gradient, training):
            return output_gradient * (1 - np.tanh(self.input) ** 2)

    with pytest.raises(ArgumentError, match="requires a parameter training after dout, which check_object cannot"):
        backcheck.check_object(Gated(), _x())


class MomentumDense(Dense):  # a velocity kept on the layer, which forward never reads
    def __init__(self, n_in, n_out, seed=0):
        super().__init__(n_in, n_out, seed)
        self.velocity = np.zeros_like(self.weights)

    def backward(self, output_gradient, learning_rate):
        weights_gradient = output_gradient @ self.input.T
        input_gradient = self.weights.T @ output_gradient
        self.velocity = 0.9 * self.velocity + weights_gradient
        self.weights -= learning_rate * self.velocity
        self.bias -= learning_rate * output_gradient.sum(axis=1, keepdims=True)
        return input_gradient


def test_an_optimizers_state_on_the_layer_is_no_parameter():
    report = backcheck.check_object(MomentumDense(3, 2), _x())
    assert report.status == "pass", report
    assert {lf.name for lf in report.leaves} == {"input", "weights", "bias"}
    assert any("not checked: velocity" in n for n in report.notes), report.notes


def test_parameters_in_a_list_a_backward_steps_unfound_leave_the_check_inconclusive():
    class Listed:
        def __init__(self):
            self.layers = [np.random.default_rng(4).normal(size=(2, 3)), np.zeros((2, 1))]

        def forward(self, x):
            self.x = x
            return self.layers[0] @ x + self.layers[1]

        def backward(self, dout, eta):
            grad_input = self.layers[0].T @ dout
            self.layers[0] -= eta * 1.05 * (dout @ self.x.T)  # 5% off, on an array no name finds
            self.layers[1] = self.layers[1] - eta * dout.sum(1, keepdims=True)
            return grad_input

    report = backcheck.check_object(Listed(), _x())
    assert report.status == "inconclusive", report
    found = [f.elements for f in report.findings if f.kind == "unchecked gradient"]
    assert found == [["layers[0]"], ["layers[1]"]] and "params=['layers']" in str(report)
    assert backcheck.check_object(Listed(), _x(), params="layers").status == "fail"


def test_a_second_parameter_named_alpha_or_rate_is_no_learning_rate():
    class Leaky(Tanh):
        def backward(self, output_gradient, alpha):  # a leaky slope passed in, not a step size
            return output_gradient * np.where(self.input > 0, 1.0, alpha)

    with pytest.raises(ArgumentError, match="requires a parameter alpha after dout") as info:
        backcheck.check_object(Leaky(), _x())
    assert "name it lr" in (info.value.hint or "")


class WarmAdam(Dense):  # Adam with its moments in dicts, after a few training steps
    def __init__(self, n_in, n_out, seed=0):
        super().__init__(n_in, n_out, seed)
        self.t = 0
        self.m = {"weights": np.zeros_like(self.weights), "bias": np.zeros_like(self.bias)}
        self.v = {"weights": np.zeros_like(self.weights), "bias": np.zeros_like(self.bias)}

    def backward(self, output_gradient, learning_rate):
        g = {"weights": output_gradient @ self.input.T, "bias": output_gradient.sum(axis=1, keepdims=True)}
        input_gradient = self.weights.T @ output_gradient
        self.t += 1
        for k in g:
            self.m[k] = 0.9 * self.m[k] + 0.1 * g[k]
            self.v[k] = 0.999 * self.v[k] + 0.001 * g[k] ** 2
            step = (self.m[k] / (1 - 0.9**self.t)) / (np.sqrt(self.v[k] / (1 - 0.999**self.t)) + 1e-8)
            setattr(self, k, getattr(self, k) - learning_rate * step)
        return input_gradient


def test_adam_after_training_steps_leaves_its_parameters_inconclusive_and_its_moments_unflagged():
    layer, rng = WarmAdam(3, 2), np.random.default_rng(4)
    for _ in range(5):  # moments from earlier steps: the step for dout and for -4 dout differ in sign and size
        layer.forward(rng.normal(size=(3, 2)))
        layer.backward(rng.normal(size=(2, 2)), 1e-3)
    report = backcheck.check_object(layer, _x())
    assert report.status == "inconclusive", report
    assert report.leaf("input").status == "pass", report
    assert not report.findings, report.findings  # no 'unchecked gradient' for m and v: forward never reads them


class DecayOnly(Dense):  # the weights' gradient term forgotten: a step that does not depend on dout at all
    def backward(self, output_gradient, learning_rate):
        input_gradient = self.weights.T @ output_gradient
        self.weights -= learning_rate * 0.01 * self.weights
        self.bias -= learning_rate * output_gradient.sum(axis=1, keepdims=True)
        return input_gradient


def test_a_step_that_ignores_dout_fails():
    report = backcheck.check_object(DecayOnly(3, 2), _x())
    assert report.status == "fail", report
    assert report.leaf("weights").status == "fail", report


class Momentum(Dense):  # SGD with momentum stepping in backward: the step holds 0.9 v of earlier steps
    def __init__(self, n_in, n_out, seed=0, factor=1.0):
        super().__init__(n_in, n_out, seed)
        self.v_w, self.v_b, self.factor = np.zeros_like(self.weights), np.zeros_like(self.bias), factor

    def backward(self, output_gradient, learning_rate):
        input_gradient = self.weights.T @ output_gradient
        self.v_w = 0.9 * self.v_w + self.factor * output_gradient @ self.input.T
        self.v_b = 0.9 * self.v_b + output_gradient.sum(axis=1, keepdims=True)
        self.weights -= learning_rate * self.v_w
        self.bias -= learning_rate * self.v_b
        return input_gradient


@pytest.mark.parametrize(("factor", "status"), [(1.0, "pass"), (1.1, "fail")])
def test_momentum_after_training_steps_reads_the_gradient_off_the_step_less_the_velocity(factor, status):
    layer, rng = Momentum(3, 2, factor=factor), np.random.default_rng(6)
    for _ in range(3):  # a velocity of earlier steps: the step for dout is 0.9 v + dW
        layer.forward(rng.normal(size=(3, 2)))
        layer.backward(rng.normal(size=(2, 2)), 1e-2)
    report = backcheck.check_object(layer, _x())
    assert report.status == status, report
    if status == "fail":
        assert report.leaf("weights").status == "fail" and report.leaf("bias").status == "pass", report


class RateTwice(Dense):  # the rate applied twice: right at a rate of 1, a hundred times too small at 0.01
    def backward(self, output_gradient, learning_rate):
        weights_gradient = learning_rate * (output_gradient @ self.input.T)
        input_gradient = self.weights.T @ output_gradient
        self.weights -= learning_rate * weights_gradient
        self.bias -= learning_rate * output_gradient.sum(axis=1, keepdims=True)
        return input_gradient


class ScaledInput(Dense):  # the input's gradient scaled by the rate
    def backward(self, output_gradient, learning_rate):
        return learning_rate * super().backward(output_gradient, learning_rate)


@pytest.mark.parametrize(("layer", "said"), [(RateTwice(3, 2), "weights"), (ScaledInput(3, 2), "returns other")])
def test_a_learning_rate_used_otherwise_than_for_one_step_fails(layer, said):
    # (called with a rate of 1 alone, both were exact there and passed)
    report = backcheck.check_object(layer, _x())
    assert report.status == "fail", report
    found = [f for f in report.findings if f.kind == "learning rate"]
    assert len(found) == 1 and said in found[0].message, report.findings


def test_steps_affine_in_the_rate_raise_no_learning_rate_finding():
    layer, rng = Momentum(3, 2), np.random.default_rng(6)
    for _ in range(3):
        layer.forward(rng.normal(size=(3, 2)))
        layer.backward(rng.normal(size=(2, 2)), 1e-2)
    for each in (layer, Dense(3, 2), AdamStep(3, 2)):
        report = backcheck.check_object(each, _x())
        assert not [f for f in report.findings if f.kind == "learning rate"], report


@pytest.mark.parametrize(("dtype", "scale"), [(np.float32, 1.0), (np.float32, 100.0), (np.float64, 100.0)])
def test_steps_rounded_to_the_parameters_dtype_raise_no_learning_rate_finding(dtype, scale):
    # (the steps' agreement across rates was asked to float64's epsilon at the step's size: a float32 SGD step,
    # or float64 weights 100x their gradient, failed a right layer; the steps round to the weights' dtype and size)
    for layer in (Dense(3, 2), AdamStep(3, 2)):
        layer.weights, layer.bias = (scale * layer.weights).astype(dtype), (scale * layer.bias).astype(dtype)
        report = backcheck.check_object(layer, _x().astype(dtype))
        assert not [f for f in report.findings if f.kind == "learning rate"], report
        if type(layer) is Dense or scale == 1.0:  # (Adam's float32 steps on weights of 100: 'nonlinear', as before)
            assert report.status == ("pass" if type(layer) is Dense else "inconclusive"), report
    twice = RateTwice(3, 2)
    twice.weights, twice.bias = (scale * twice.weights).astype(dtype), (scale * twice.bias).astype(dtype)
    assert [f.kind for f in backcheck.check_object(twice, _x().astype(dtype)).findings] == ["learning rate"]


class Nesterov(Dense):  # Nesterov's step, (1 + mu) times the gradient at its first step
    def backward(self, output_gradient, learning_rate):
        input_gradient = self.weights.T @ output_gradient
        self.weights -= 1.9 * learning_rate * (output_gradient @ self.input.T)
        self.bias -= learning_rate * output_gradient.sum(axis=1, keepdims=True)
        return input_gradient


def test_a_step_off_by_one_factor_at_every_element_says_so():
    # (it failed with no word of why: a step 1.9 times the gradient reads as a gradient 1.9 times too large)
    report = backcheck.check_object(Nesterov(3, 2), _x())
    assert report.status == "fail" and report.leaf("weights").status == "fail", report
    said = [n for n in report.notes if "off by one factor" in n]
    factor = said[0].split("Every element of ")[1].split(" is off")[0] if len(said) == 1 else ""
    assert factor == "weights (1.9)", report.notes
    assert not [n for n in backcheck.check_object(WrongStep(3, 2), _x()).notes if "off by one factor" in n]


class Conv1x1:  # backprop(d_L_d_out, learn_rate), as the widely copied numpy CNN tutorials name it
    def __init__(self):
        self.filters = np.random.default_rng(3).normal(size=(4,)) / 2

    def forward(self, input):
        self.last_input = input
        return input[..., None] * self.filters

    def backprop(self, d_L_d_out, learn_rate):
        d_L_d_filters = (d_L_d_out * self.last_input[..., None]).sum(axis=(0, 1))
        d_L_d_input = d_L_d_out @ self.filters
        self.filters -= learn_rate * d_L_d_filters
        return d_L_d_input


class Conv1x1Wrong(Conv1x1):
    def backprop(self, d_L_d_out, learn_rate):
        d_L_d_input = d_L_d_out @ self.filters
        self.filters -= learn_rate * 1.01 * (d_L_d_out * self.last_input[..., None]).sum(axis=(0, 1))
        return d_L_d_input


@pytest.mark.parametrize(("layer", "status"), [(Conv1x1(), "pass"), (Conv1x1Wrong(), "fail")])
def test_learn_rate_is_a_learning_rate(layer, status):
    report = backcheck.check_object(layer, _x((3, 5)), backward="backprop")
    assert report.status == status, report
    assert {lf.name: lf.status for lf in report.leaves}["filters"] == status


class ReturnsItself:  # forward returns the layer (output on self.output); backward reads self.delta
    def __init__(self):
        self.w = np.array([1.5, -0.5, 2.0])

    def forward(self, inpt):
        self.output = inpt * self.w
        self.delta = np.zeros_like(self.output)
        return self

    def backward(self, inpt, delta=None):
        self.w_update = (self.delta * inpt).sum(0)
        if delta is not None:
            delta[:] += self.delta * self.w
        return self


def test_a_backward_that_returns_the_layer_is_refused_by_name_not_blamed_on_the_user():
    with pytest.raises(ArgumentError, match=r"ReturnsItself\.backward .* returned the layer itself") as info:
        backcheck.check_object(ReturnsItself(), _x((2, 3)))
    assert "self.delta" in info.value.hint


class Decayed(Dense):  # weight decay inside the step: a part of it that does not follow dout
    def backward(self, output_gradient, learning_rate):
        input_gradient = self.weights.T @ output_gradient
        self.weights -= learning_rate * (output_gradient @ self.input.T + 0.01 * self.weights)
        self.bias -= learning_rate * output_gradient.sum(axis=1, keepdims=True)
        return input_gradient


def test_a_step_taken_for_a_dout_of_zeros_is_said_to_be_taken_off():
    decayed = backcheck.check_object(Decayed(3, 2), _x())
    assert decayed.status == "pass", decayed
    (said,) = [n for n in decayed.notes if "for a dout of zeros" in n]
    assert said.startswith("Decayed.backward steps weights (up to") and "constant added to dW" in said, said
    plain = backcheck.check_object(Dense(3, 2), _x())
    assert not [n for n in plain.notes if "for a dout of zeros" in n], plain.notes
