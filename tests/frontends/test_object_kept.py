"""check_object meets layers that keep their results on themselves (the convention of the book "Neural Networks
from Scratch" and of the many layers written after it): forward returns None and leaves self.output, backward
returns None and leaves self.dinputs (and self.dweights, self.dbiases); a backward that takes the labels again
after dout (backward(self, dvalues, y_true)) is given them. Right layers pass, wrong ones fail at the array that
is wrong, and the report says where it read what the layer kept."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck
from backcheck.errors import BadInputError, UserFunctionError

RNG = np.random.default_rng(3)
X = RNG.normal(size=(5, 4))
LABELS = RNG.integers(0, 4, 5)


class Dense:
    def __init__(self, n_inputs: int, n_neurons: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.weights = 0.5 * rng.normal(size=(n_inputs, n_neurons))
        self.biases = rng.normal(size=(1, n_neurons))

    def forward(self, inputs):
        self.inputs = inputs
        self.output = np.dot(inputs, self.weights) + self.biases

    def backward(self, dvalues):
        self.dweights = np.dot(self.inputs.T, dvalues)
        self.dbiases = np.sum(dvalues, axis=0, keepdims=True)
        self.dinputs = np.dot(dvalues, self.weights.T)


class ReLU:
    def forward(self, inputs):
        self.inputs = inputs
        self.output = np.maximum(0, inputs)

    def backward(self, dvalues):
        self.dinputs = dvalues.copy()
        self.dinputs[self.inputs <= 0] = 0


class Softmax:
    def forward(self, inputs):
        self.inputs = inputs
        exp_values = np.exp(inputs - np.max(inputs, axis=1, keepdims=True))
        self.output = exp_values / np.sum(exp_values, axis=1, keepdims=True)

    def backward(self, dvalues):
        self.dinputs = np.empty_like(dvalues)
        for index, (single_output, single_dvalues) in enumerate(zip(self.output, dvalues, strict=True)):
            single_output = single_output.reshape(-1, 1)
            jacobian = np.diagflat(single_output) - np.dot(single_output, single_output.T)
            self.dinputs[index] = np.dot(jacobian, single_dvalues)


class Linear:  # the identity: its output is its input
    def forward(self, inputs):
        self.inputs = inputs
        self.output = inputs

    def backward(self, dvalues):
        self.dinputs = dvalues.copy()


class Dropout:
    def __init__(self, rate: float) -> None:
        self.rate = 1 - rate

    def forward(self, inputs):
        self.inputs = inputs
        self.binary_mask = np.random.binomial(1, self.rate, size=inputs.shape) / self.rate
        self.output = inputs * self.binary_mask

    def backward(self, dvalues):
        self.dinputs = dvalues * self.binary_mask


class CrossEntropy:  # takes the labels again in backward, keeps its gradient
    def forward(self, y_pred, y_true):
        self.y_pred = y_pred
        return np.mean(-np.log(y_pred[range(len(y_pred)), y_true]))

    def backward(self, dvalues, y_true):
        onehot = np.eye(self.y_pred.shape[1])[y_true]
        self.dinputs = dvalues * (-onehot / self.y_pred) / len(self.y_pred)


class SoftmaxCE:  # takes the labels again in backward, returns its gradient
    def forward(self, x, y):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        self.p = e / e.sum(axis=1, keepdims=True)
        return -np.mean(np.log(self.p[np.arange(len(y)), y]))

    def backward(self, dout, y):
        d = self.p.copy()
        d[np.arange(len(y)), y] -= 1
        return dout * d / len(y)


def _probabilities() -> np.ndarray:
    p = RNG.random((5, 4)) + 0.1
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize(
    "layer, inputs",
    [
        (Dense(4, 3), (X,)),
        (ReLU(), (X,)),
        (Softmax(), (X,)),
        (Linear(), (X,)),
        (Dropout(0.3), (X,)),
        (CrossEntropy(), (_probabilities(), LABELS)),
        (SoftmaxCE(), (X, LABELS)),
        (Dense(4, 3), (X.astype(np.float32),)),
    ],
    ids=["dense", "relu", "softmax", "identity", "dropout", "cross-entropy", "softmax-ce", "dense-float32"],
)
def test_a_right_layer_that_keeps_its_results_passes(layer, inputs):
    report = backcheck.check_object(layer, *inputs)
    assert report.status == "pass", report
    checked = {leaf.name: leaf.counts for leaf in report.leaves}
    first = next(iter(checked))
    assert sum(checked[first].values()) == np.size(inputs[0]), report  # the input's gradient was compared
    if isinstance(layer, Dense):
        assert set(checked) == {"inputs", "weights", "biases"}, report


class _DenseScaledW(Dense):
    def backward(self, dvalues):
        super().backward(dvalues)
        self.dweights = self.dweights * 1.01


class _DenseFlippedX(Dense):
    def backward(self, dvalues):
        super().backward(dvalues)
        self.dinputs = np.dot(dvalues, self.weights.T[::-1])


class _ReLUNoMask(ReLU):
    def backward(self, dvalues):
        self.dinputs = dvalues.copy()


class _DropoutNoMask(Dropout):
    def backward(self, dvalues):
        self.dinputs = dvalues / self.rate


class _SoftmaxDiagonal(Softmax):
    def backward(self, dvalues):
        self.dinputs = dvalues * self.output * (1 - self.output)


class _CrossEntropyUnaveraged(CrossEntropy):
    def backward(self, dvalues, y_true):
        onehot = np.eye(self.y_pred.shape[1])[y_true]
        self.dinputs = dvalues * (-onehot / self.y_pred)


@pytest.mark.parametrize(
    "layer, inputs, wrong",
    [
        (_DenseScaledW(4, 3), (X,), {"weights"}),
        (_DenseFlippedX(4, 3), (X,), {"inputs"}),
        (_ReLUNoMask(), (X,), {"inputs"}),
        (_DropoutNoMask(0.3), (X,), {"inputs"}),
        (_SoftmaxDiagonal(), (X,), {"inputs"}),
        (_CrossEntropyUnaveraged(), (_probabilities(), LABELS), {"y_pred"}),
    ],
    ids=["dense-dW", "dense-dinputs", "relu-mask", "dropout-mask", "softmax-diagonal", "ce-not-averaged"],
)
def test_a_wrong_layer_that_keeps_its_results_fails_where_it_is_wrong(layer, inputs, wrong):
    report = backcheck.check_object(layer, *inputs)
    assert report.status == "fail", report
    assert {leaf.name for leaf in report.leaves if leaf.status == "fail"} == wrong, report


def test_the_report_says_where_it_read_what_the_layer_kept():
    notes = " ".join(backcheck.check_object(Dense(4, 3), X).notes)
    assert "Dense.forward returns no output: it was read from self.output" in notes, notes
    assert "that of inputs was read from self.dinputs" in notes, notes
    said = " ".join(backcheck.check_object(SoftmaxCE(), X, LABELS).notes)
    assert "SoftmaxCE.backward was given y after dout" in said, said


def test_the_layer_and_its_inputs_are_left_as_they_were():
    layer = Dense(4, 3)
    layer.forward(X)  # (a layer the user ran before the check: it holds an output already)
    held = {k: np.array(v, copy=True) for k, v in vars(layer).items()}
    x = X.copy()
    assert backcheck.check_object(layer, x).ok
    assert np.array_equal(x, X)
    assert set(vars(layer)) == set(held)
    for k, v in vars(layer).items():
        assert np.array_equal(v, held[k]), k


class _WritesTwoArrays:
    """forward returns None and leaves two arrays under names no convention knows: which one is the output is not
    clear, and the check says what forward returned."""

    def forward(self, x):
        self.first = np.tanh(x)
        self.second = np.sin(x)

    def backward(self, dvalues):
        return dvalues * (1 - self.first**2)


def test_a_forward_whose_kept_output_is_not_clear_is_refused_with_a_hint():
    with pytest.raises(BadInputError, match=r"_WritesTwoArrays\.forward returned None") as info:
        backcheck.check_object(_WritesTwoArrays(), X)
    assert "return the output array from forward" in (info.value.hint or "")


class LabelLoss:
    """A loss whose backward takes the labels and no dout (the FAU Deep Learning exercises' convention):
    forward(prediction_tensor, label_tensor) -> loss, backward(label_tensor) -> dloss/dprediction. The labels are
    one-hot floats."""

    def forward(self, prediction_tensor, label_tensor):
        self.preds = prediction_tensor
        return -np.sum(label_tensor * np.log(prediction_tensor))

    def backward(self, label_tensor):
        return -label_tensor / self.preds


class _LabelLossHalved(LabelLoss):
    def backward(self, label_tensor):
        return -0.5 * label_tensor / self.preds


def test_a_loss_whose_backward_takes_the_labels_alone_is_given_them_not_dout():
    onehot = np.eye(4)[LABELS]
    report = backcheck.check_object(LabelLoss(), _probabilities(), onehot)
    assert report.status == "pass", report
    assert [leaf.name for leaf in report.leaves] == ["prediction_tensor"], report
    notes = " ".join(report.notes)
    assert "was given label_tensor and no dout" in notes and "held constant" in notes, notes
    wrong = backcheck.check_object(_LabelLossHalved(), _probabilities(), onehot)
    assert wrong.status == "fail" and wrong.leaves[0].status == "fail", wrong


class _FloatLabelsAfterDout(CrossEntropy):
    """backward(dvalues, y_true) given one-hot float labels: they are constants, the predictions' gradient kept."""

    def backward(self, dvalues, y_true):
        self.dinputs = dvalues * (-y_true / self.y_pred) / len(self.y_pred)

    def forward(self, y_pred, y_true):
        self.y_pred = y_pred
        return np.mean(-np.sum(y_true * np.log(y_pred), axis=1))


def test_float_labels_taken_again_after_dout_are_constants():
    report = backcheck.check_object(_FloatLabelsAfterDout(), _probabilities(), np.eye(4)[LABELS])
    assert report.status == "pass", report
    assert [leaf.name for leaf in report.leaves] == ["y_pred"], report


class _DinputsMisshapen(Dense):  # keeps an input gradient of the wrong shape (a padding of 0 sliced away)
    def backward(self, dvalues):
        super().backward(dvalues)
        self.dinputs = self.dinputs[:, :0]


def test_an_input_gradient_kept_in_the_wrong_shape_is_named_so():
    from backcheck.errors import GradientStructureError

    with pytest.raises(GradientStructureError, match=r"has shape \(5, 0\), but inputs has shape \(5, 4\)"):
        backcheck.check_object(_DinputsMisshapen(4, 3), X)


class _NnfsLoss:  # the book's loss: backward(dvalues, y_true) takes the predictions as dvalues
    def forward(self, y_pred, y_true):
        return -np.log(y_pred[range(len(y_pred)), y_true])

    def backward(self, dvalues, y_true):
        samples, labels = len(dvalues), len(dvalues[0])
        self.dinputs = -np.eye(labels)[y_true] / dvalues / samples


def test_a_loss_whose_backward_takes_the_predictions_is_told_how_to_check_it():
    from backcheck.errors import UserFunctionError

    with pytest.raises(UserFunctionError) as info:
        backcheck.check_object(_NnfsLoss(), _probabilities(), LABELS)
    assert "takes the predictions instead" in (info.value.hint or ""), info.value.hint


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_combined_softmax_loss_taking_its_outputs_is_told_how_to_check_it_in_either_dtype(dtype):
    # (nnfs' combined softmax-loss: backward(softmax output, y); the hint was lost for a float32 loss, whose
    # np.float32 value is no Python float)
    class SoftmaxLossTakingOutputs:
        def forward(self, inputs, y_true):
            e = np.exp(inputs - inputs.max(axis=1, keepdims=True))
            self.output = e / e.sum(axis=1, keepdims=True)
            return np.mean(-np.log(np.clip(self.output[range(len(inputs)), y_true], 1e-7, 1 - 1e-7)))

        def backward(self, dvalues, y_true):
            self.dinputs = dvalues.copy()
            self.dinputs[range(len(dvalues)), y_true] -= 1
            self.dinputs = self.dinputs / len(dvalues)

    z = np.random.default_rng(0).normal(size=(4, 3)).astype(dtype)
    with pytest.raises(UserFunctionError) as info:
        backcheck.check_object(SoftmaxLossTakingOutputs(), z, np.array([0, 2, 1, 1]))
    assert "checked as one function" in (info.value.hint or ""), info.value.hint
