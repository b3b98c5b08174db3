"""Bad input raises typed errors whose messages name the op and the shapes or values involved."""

from __future__ import annotations

import re

import numpy as np
import pytest

from backcheck import nn
from backcheck.errors import BackcheckError, BadInputError
from backcheck.nn import (
    DTypeError,
    GraphError,
    IndexRangeError,
    LabelError,
    NNError,
    ShapeError,
    StateDictError,
    Tensor,
)
from backcheck.nn import functional as F
from backcheck.nn.data import random_shift


def t(*shape, grad=True):
    return Tensor(np.ones(shape), requires_grad=grad)


def test_error_hierarchy():
    assert issubclass(ShapeError, ValueError) and issubclass(ShapeError, NNError)
    assert issubclass(DTypeError, TypeError) and issubclass(GraphError, RuntimeError)
    assert issubclass(LabelError, ValueError) and issubclass(IndexRangeError, IndexError)


def test_matmul_shape_mismatch_names_op_and_both_shapes():
    with pytest.raises(ShapeError, match=r"matmul: shapes \(2, 3\) and \(4, 5\) are not aligned"):
        t(2, 3) @ t(4, 5)
    with pytest.raises(ShapeError, match=r"matmul: batch axes of shapes \(2, 2, 3\) and \(3, 3, 4\)"):
        t(2, 2, 3) @ t(3, 3, 4)


@pytest.mark.parametrize(
    "op,fn",
    [
        ("add", lambda a, b: a + b),
        ("sub", lambda a, b: a - b),
        ("mul", lambda a, b: a * b),
        ("div", lambda a, b: a / b),
    ],
)
def test_broadcast_mismatch_names_op_and_both_shapes(op, fn):
    with pytest.raises(ShapeError, match=rf"{op}: cannot broadcast shapes \(2, 3\) and \(4,\)"):
        fn(t(2, 3), t(4))


def test_other_shape_errors():
    with pytest.raises(
        ShapeError, match=r"reshape: cannot reshape an array of shape \(2, 3\) into shape \(4,\)"
    ):
        t(2, 3).reshape(4)
    with pytest.raises(
        ShapeError, match=r"linear: input of shape \(2, 3\) does not match weight of shape \(4, 5\)"
    ):
        F.linear(t(2, 3), t(4, 5))
    with pytest.raises(
        ShapeError, match=r"conv2d: input of shape \(1, 2, 5, 5\) and weight of shape \(3, 1, 3, 3\)"
    ):
        F.conv2d(t(1, 2, 5, 5), t(3, 1, 3, 3))
    with pytest.raises(
        ShapeError, match=r"conv2d: kernel \(7, 7\) .* does not fit an input of shape \(1, 1, 5, 5\)"
    ):
        F.conv2d(t(1, 1, 5, 5), t(1, 1, 7, 7))
    with pytest.raises(ShapeError, match=r"mse_loss: input shape \(3,\) differs from target shape \(4,\)"):
        F.mse_loss(t(3), t(4))
    with pytest.raises(
        ShapeError, match=r"concatenate: shapes \[\(2, 3\), \(2, 4\)\] cannot be joined along axis 0"
    ):
        F.concatenate([t(2, 3), t(2, 4)])
    with pytest.raises(ShapeError, match=r"layer_norm: input of shape \(2, 3\)"):
        F.layer_norm(t(2, 3), 4)
    with pytest.raises(ShapeError, match=r"backward: grad has shape \(3,\) but the tensor has shape \(2,\)"):
        (t(2) * 2.0).backward(np.ones(3))


def test_backward_on_non_scalar_without_gradient():
    with pytest.raises(GraphError, match=r"backward: .*only for a one-element output; got shape \(2, 3\)"):
        (t(2, 3) * 2.0).backward()


def test_backward_twice_through_freed_graph():
    y = (t(3).exp() * 2.0).sum()
    y.backward()
    with pytest.raises(
        GraphError, match=r"backward through the graph a second time .*'sum'.*retain_graph=True"
    ):
        y.backward()
    # a graph shared with a second output is freed too
    x = t(3)
    h = x.exp()
    a, b = h.sum(), (h * 2.0).sum()
    a.backward()
    with pytest.raises(GraphError, match="'exp'"):
        b.backward()


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(
        DTypeError, match=r"Tensor: only float32 and float64 tensors can require grad, got dtype int64"
    ):
        Tensor(np.arange(3), requires_grad=True)
    with pytest.raises(DTypeError, match="int32"):
        Tensor(np.arange(3, dtype=np.int32)).requires_grad_()
    with pytest.raises(
        DTypeError, match=r"only float32 and float64 tensors can require grad, got dtype int64"
    ):
        nn.Parameter(np.arange(3))


def test_cross_entropy_labels_out_of_range():
    logits = t(3, 4)
    with pytest.raises(
        LabelError, match=r"cross_entropy: label 7 \(at index 1\) is out of range for 4 classes"
    ):
        F.cross_entropy(logits, np.array([0, 7, 1]))
    with pytest.raises(
        LabelError, match=r"cross_entropy: label -1 \(at index 2\) is out of range for 4 classes"
    ):
        F.cross_entropy(logits, np.array([0, 1, -1]))
    with pytest.raises(LabelError, match=r"cross_entropy: labels must be integers, got dtype float64"):
        F.cross_entropy(logits, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(
        ShapeError, match=r"cross_entropy: labels of shape \(2,\) do not match logits of shape \(3, 4\)"
    ):
        F.cross_entropy(logits, np.array([0, 1]))


def test_embedding_index_out_of_range():
    with pytest.raises(IndexRangeError, match="embedding: index 5 is out of range for 3 embeddings"):
        F.embedding(np.array([0, 5]), t(3, 2))


def test_load_state_dict_mismatch():
    model = nn.MLP([4, 3, 2])
    state = model.state_dict()
    state["layers.1.weight"] = np.zeros((9, 9), np.float32)
    with pytest.raises(
        StateDictError, match=r"layers.1.weight has shape \(9, 9\) in the state dict but \(3, 4\)"
    ):
        model.load_state_dict(state)
    del state["layers.1.weight"]
    with pytest.raises(StateDictError, match=r"missing keys \['layers.1.weight'\]"):
        model.load_state_dict(state)


def test_bad_arguments():
    with pytest.raises(ValueError, match="gelu: approximate must be one of 'none', 'tanh', got 'fast'"):
        F.gelu(t(2), approximate="fast")
    with pytest.raises(ValueError, match="cross_entropy: reduction must be one of"):
        F.cross_entropy(t(2, 2), np.array([0, 1]), reduction="avg")
    with pytest.raises(ValueError, match="fit: check must be 'first', 'never' or 'every:N'"):
        nn.fit(
            nn.MLP([4, 2]),
            (np.zeros((4, 4), np.float32), np.zeros(4, np.int64)),
            epochs=1,
            check="every:0",
            progress=False,
        )


# ---------------------------------------------------------------------- argument checks (issue 13)
def _w():
    return [Tensor(np.ones(2), requires_grad=True)]


_x4 = Tensor(np.ones((1, 1, 4, 4)))
# (constructor call, error type, argument named in the message, allowed range named in the message)
BAD_ARGUMENTS = [
    (lambda: nn.Linear(0, 2), nn.ArgumentError, "in_features", "an integer >= 1, got 0"),
    (lambda: nn.Linear(-3, 2), nn.ArgumentError, "in_features", "an integer >= 1, got -3"),
    (lambda: nn.Linear(3, 0), nn.ArgumentError, "out_features", "an integer >= 1, got 0"),
    (lambda: nn.Linear(2.5, 2), nn.ArgumentError, "in_features", "an integer >= 1, got 2.5"),
    (lambda: nn.Linear(True, 2), nn.ArgumentError, "in_features", "an integer >= 1, got True"),
    (lambda: nn.Linear(2, 2, bias="yes"), nn.ArgumentError, "bias", "True or False"),
    (lambda: nn.Linear(2, 2, dtype=np.int64), DTypeError, "dtype", "float32 or float64"),
    (lambda: nn.Linear(2, 2, rng=0), nn.ArgumentError, "rng", "None or a numpy Generator"),
    (lambda: nn.Conv2d(1, 4, 0), nn.ArgumentError, "kernel_size", "an integer >= 1 or a pair of them, got 0"),
    (lambda: nn.Conv2d(1, 4, (3, -1)), nn.ArgumentError, "kernel_size", "an integer >= 1"),
    (lambda: nn.Conv2d(1, 4, 3, padding=-1), nn.ArgumentError, "padding", "an integer >= 0 or a pair"),
    (lambda: nn.Conv2d(1, 4, 3, stride=0), nn.ArgumentError, "stride", "an integer >= 1 or a pair of them, got 0"),
    (lambda: nn.Conv2d(1, 4, 3, stride=(1, 0)), nn.ArgumentError, "stride", "an integer >= 1"),
    (lambda: nn.Conv2d(0, 4, 3), nn.ArgumentError, "in_channels", "an integer >= 1"),
    (lambda: nn.BatchNorm1d(0), nn.ArgumentError, "num_features", "an integer >= 1"),
    (lambda: nn.BatchNorm1d(4, eps=0.0), nn.ArgumentError, "eps", "a finite number > 0"),
    (lambda: nn.BatchNorm2d(4, momentum=1.5), nn.ArgumentError, "momentum", r"a number in \[0, 1\], got 1.5"),
    (lambda: nn.BatchNorm2d(4, momentum=None), nn.ArgumentError, "momentum", r"a number in \[0, 1\]"),
    (lambda: nn.LayerNorm(0), nn.ArgumentError, "normalized_shape", "an integer >= 1"),
    (lambda: nn.LayerNorm((2, 0)), nn.ArgumentError, r"normalized_shape\[1\]", "an integer >= 1"),
    (lambda: nn.LayerNorm(4, eps=-1e-5), nn.ArgumentError, "eps", "a finite number > 0"),
    (lambda: nn.Dropout(1.0), nn.ArgumentError, "p", r"a number in \[0, 1\), got 1.0"),
    (lambda: nn.Dropout(-0.1), nn.ArgumentError, "p", r"a number in \[0, 1\)"),
    (lambda: nn.Dropout(float("nan")), nn.ArgumentError, "p", r"a number in \[0, 1\), got nan"),
    (lambda: nn.Dropout("0.5"), nn.ArgumentError, "p", r"a number in \[0, 1\), got '0.5'"),
    (lambda: nn.Embedding(0, 3), nn.ArgumentError, "num_embeddings", "an integer >= 1"),
    (lambda: nn.Embedding(3, -1), nn.ArgumentError, "embedding_dim", "an integer >= 1"),
    (lambda: nn.GELU("fast"), nn.ArgumentError, "approximate", "one of 'none', 'tanh', got 'fast'"),
    (lambda: nn.LeakyReLU(float("inf")), nn.ArgumentError, "negative_slope", "a finite number"),
    (lambda: nn.Softmax(1.5), nn.ArgumentError, "dim", "an integer"),
    (lambda: nn.Flatten("1"), nn.ArgumentError, "start_dim", "an integer"),
    (lambda: nn.MaxPool2d(0), nn.ArgumentError, "kernel_size", "an integer >= 1"),
    (lambda: nn.MaxPool2d(2, stride=0), nn.ArgumentError, "stride", "an integer >= 1"),
    (lambda: nn.MaxPool2d(2, padding=2), nn.ArgumentError, "padding", r"at most half the kernel size \(2, 2\)"),
    (lambda: nn.AvgPool2d(3, padding=-1), nn.ArgumentError, "padding", "an integer >= 0"),
    (lambda: nn.MLP([4]), nn.ArgumentError, "sizes", "a sequence of at least two integers >= 1"),
    (lambda: nn.MLP([4, 0, 2]), nn.ArgumentError, r"sizes\[1\]", "an integer >= 1, got 0"),
    (lambda: nn.MLP([4, 2], activation="swish"), nn.ArgumentError, "activation", "one of"),
    (lambda: nn.MLP([4, 8, 2], activation=nn.ReLU()), nn.ArgumentError, "activation", "callable returning a Module"),
    (lambda: nn.MLP([4, 2], dropout=1.0), nn.ArgumentError, "dropout", r"a number in \[0, 1\)"),
    (lambda: nn.SmallCNN(channels=(16,)), nn.ArgumentError, "channels", "a pair of integers >= 1"),
    (lambda: nn.SmallCNN(hidden=0), nn.ArgumentError, "hidden", "an integer >= 1"),
    (lambda: nn.Sequential(nn.Linear(2, 2), "relu"), nn.ArgumentError, "layer 1", "a Module, got 'relu'"),
    (lambda: nn.Sequential(nn.ReLU), nn.ArgumentError, "layer 0", "a Module"),
    (lambda: nn.Sequential().append("relu"), nn.ArgumentError, "layer", "a Module, got 'relu'"),
    (lambda: nn.CrossEntropyLoss("avg"), nn.ArgumentError, "reduction", "one of 'mean', 'sum', 'none'"),
    (lambda: nn.MSELoss(None), nn.ArgumentError, "reduction", "one of 'mean', 'sum', 'none'"),
    (lambda: nn.manual_seed(-1), nn.ArgumentError, "seed", "an integer >= 0"),
    (lambda: nn.SGD(_w(), lr=-0.1), nn.ArgumentError, "lr", "a finite number >= 0, got -0.1"),
    (lambda: nn.SGD(_w(), lr=float("nan")), nn.ArgumentError, "lr", "a finite number >= 0, got nan"),
    (lambda: nn.SGD(_w(), momentum=-0.9), nn.ArgumentError, "momentum", "a finite number >= 0"),
    (lambda: nn.SGD(_w(), dampening=2.0), nn.ArgumentError, "dampening", r"a number in \[0, 1\]"),
    (lambda: nn.SGD(_w(), weight_decay=-1e-4), nn.ArgumentError, "weight_decay", "a finite number >= 0"),
    (lambda: nn.SGD(_w(), nesterov=True), nn.ArgumentError, "nesterov", "Nesterov momentum requires them"),
    (lambda: nn.Adam(_w(), betas=(1.5, 0.9)), nn.ArgumentError, r"betas\[0\]", r"a number in \[0, 1\), got 1.5"),
    (lambda: nn.Adam(_w(), betas=(0.9, 1.0)), nn.ArgumentError, r"betas\[1\]", r"a number in \[0, 1\), got 1.0"),
    (lambda: nn.Adam(_w(), betas=0.9), nn.ArgumentError, "betas", r"a pair of numbers in \[0, 1\)"),
    (lambda: nn.Adam(_w(), eps=0.0), nn.ArgumentError, "eps", "a finite number > 0"),
    (lambda: nn.AdamW(_w(), weight_decay=-0.01), nn.ArgumentError, "weight_decay", "a finite number >= 0"),
    (lambda: nn.AdamW(_w(), amsgrad=1), nn.ArgumentError, "amsgrad", "True or False"),
    (lambda: nn.Adam([]), nn.ArgumentError, "params", "a non-empty iterable of tensors"),
    (lambda: nn.Adam(_w() * 2), nn.ArgumentError, "params", r"distinct tensors; params\[1\] appears more than once"),
    (lambda: nn.Adam(_w()[0]), nn.ArgumentError, "params", "an iterable of tensors"),
    (lambda: nn.SGD([Tensor(np.ones(2))]), DTypeError, "", r"params\[0\] is"),
    (lambda: nn.clip_grad_norm_(_w(), -1.0), nn.ArgumentError, "max_norm", "a finite number >= 0"),
    (lambda: nn.clip_grad_norm_(_w(), 1.0, norm_type=0), nn.ArgumentError, "norm_type", "a finite number > 0"),
    # functional entries
    (lambda: F.conv2d(_x4, t(1, 1, 3, 3), stride=0), nn.ArgumentError, "stride", "an integer >= 1"),
    (lambda: F.conv2d(_x4, t(1, 1, 3, 3), padding=-1), nn.ArgumentError, "padding", "an integer >= 0"),
    (lambda: F.max_pool2d(_x4, 2, padding=3), nn.ArgumentError, "padding", "at most half the kernel size"),
    (lambda: F.avg_pool2d(_x4, 2, stride=(2, 0)), nn.ArgumentError, "stride", "an integer >= 1"),
    (lambda: F.dropout(t(3), p=1.0), nn.ArgumentError, "p", r"a number in \[0, 1\)"),
    (lambda: F.dropout_mask((3,), 1.5, np.random.default_rng(0)), nn.ArgumentError, "p", r"\[0, 1\)"),
    (lambda: F.dropout_mask((3,), 0.5, 0), nn.ArgumentError, "rng", "None or a numpy Generator"),
    (lambda: F.batch_norm(t(4, 3), None, None, training=True, eps=0), nn.ArgumentError, "eps", "> 0"),
    (lambda: F.batch_norm(t(4, 3), None, None, training=True, momentum=2), nn.ArgumentError, "momentum", r"\[0, 1\]"),
    (lambda: F.batch_norm(t(4, 3), np.zeros(3), None, training=True), nn.ArgumentError, "", "given together"),
    (lambda: F.batch_norm(t(4, 3), None, None), nn.ArgumentError, "", "eval mode .* needs running_mean"),
    (lambda: F.layer_norm(t(2, 3), 0), nn.ArgumentError, "normalized_shape", "an integer >= 1"),
    (lambda: F.layer_norm(t(2, 3), 3, eps=0.0), nn.ArgumentError, "eps", "> 0"),
    (lambda: F.leaky_relu(t(2), float("nan")), nn.ArgumentError, "negative_slope", "a finite number"),
    (lambda: F.softplus(t(2), beta=0.0), nn.ArgumentError, "beta", "a finite number > 0"),
    (lambda: F.clip(t(2), 1.0, -1.0), nn.ArgumentError, "hi", "a finite number >= 1, got -1.0"),
    (lambda: F.pad(t(2, 2), ((1, -1), (0, 0))), nn.ArgumentError, r"pad_width\[0\]", "an integer >= 0"),
    (lambda: F.gelu(t(2), approximate="fast"), nn.ArgumentError, "approximate", "one of 'none', 'tanh'"),
    (lambda: F.cross_entropy(t(2, 2), np.array([0, 1]), reduction="avg"), nn.ArgumentError, "reduction", "one of"),
]


@pytest.mark.parametrize("make,error,argument,allowed", BAD_ARGUMENTS, ids=[str(i) for i in range(len(BAD_ARGUMENTS))])
def test_bad_argument_is_refused_naming_the_argument_and_its_range(make, error, argument, allowed):
    with pytest.raises(error, match=rf"^\w[\w.]*: (.* )?{argument}.*{allowed}") as info:
        make()
    exc = info.value
    assert isinstance(exc, NNError) and isinstance(exc, BadInputError) and isinstance(exc, ValueError)
    if isinstance(exc, nn.ArgumentError) and exc.argument is not None:
        assert re.fullmatch(argument, exc.argument) and f"{exc.argument} must be {exc.allowed}" in str(exc)


def test_argument_error_carries_a_hint_and_keeps_the_builtin_types():
    with pytest.raises(nn.ArgumentError) as info:
        nn.Dropout(1.0)
    exc = info.value
    assert exc.argument == "p" and exc.allowed == "a number in [0, 1)" and exc.value == 1.0
    assert "\nHint: p is the probability of zeroing an element" in str(exc) and exc.hint
    assert isinstance(exc, TypeError) and isinstance(exc, ValueError) and isinstance(exc, BackcheckError)
    for cls in (ShapeError, DTypeError, LabelError, IndexRangeError, StateDictError, nn.ArgumentError):
        assert issubclass(cls, BadInputError) and issubclass(cls, NNError)
    assert issubclass(GraphError, NNError) and issubclass(NNError, BackcheckError)


def test_valid_arguments_in_every_accepted_form_still_work():
    conv = nn.Conv2d(np.int64(1), 4, (3, 5), stride=(1, 2), padding=(1, 2), dtype="float64")
    assert conv(Tensor(np.zeros((2, 1, 6, 6)))).shape == (2, 4, 6, 3)
    assert nn.MaxPool2d(3, stride=1, padding=1)(Tensor(np.zeros((1, 1, 4, 4)))).shape == (1, 1, 4, 4)
    assert nn.AvgPool2d((2, 1))(Tensor(np.zeros((1, 1, 4, 4)))).shape == (1, 1, 2, 4)
    for momentum in (0.0, 1.0, 1):
        assert nn.BatchNorm1d(3, momentum=momentum).momentum == float(momentum)
    assert nn.Dropout(0).p == 0.0 and nn.LayerNorm([2, 3]).normalized_shape == (2, 3)
    assert nn.MLP((4, 8, 2), activation=nn.Tanh, dropout=0.25).sizes == (4, 8, 2)
    w = _w()
    assert nn.SGD(iter(w), lr=0, momentum=0.9, nesterov=True).lr == 0.0
    assert nn.Adam(w, betas=[0.0, 0.5]).betas == (0.0, 0.5)
    assert nn.clip_grad_norm_(w, 1.0, norm_type=float("inf")) == 0.0


# ---------------------------------------------------------------------- dtypes of inputs
def test_non_float_inputs_into_float_ops_are_refused_with_the_dtype_named():
    with pytest.raises(DTypeError, match=r"^linear: input must be a float array, got dtype int64\nHint: convert"):
        nn.Linear(3, 2)(Tensor(np.ones((4, 3), dtype=np.int64)))
    with pytest.raises(DTypeError, match=r"conv2d: input must be a float array, got dtype uint8"):
        nn.Conv2d(1, 2, 3)(np.zeros((1, 1, 5, 5), dtype=np.uint8))
    with pytest.raises(DTypeError, match=r"max_pool2d: input must be a float array, got dtype bool"):
        F.max_pool2d(Tensor(np.zeros((1, 1, 4, 4), dtype=bool)), 2)
    with pytest.raises(DTypeError, match=r"softmax: input must be a float array, got dtype int64"):
        F.softmax(Tensor([1, 2]))
    with pytest.raises(DTypeError, match=r"cross_entropy: logits must be a float array, got dtype int64"):
        F.cross_entropy(Tensor(np.zeros((2, 3), dtype=np.int64)), np.array([0, 1]))
    with pytest.raises(DTypeError, match=r"batch_norm: running_var must be a float array, got dtype int64"):
        F.batch_norm(t(4, 3), np.zeros(3), np.ones(3, dtype=np.int64), training=True)
    with pytest.raises(ShapeError, match=r"batch_norm: running_mean has shape \(4,\) but the input has 3 channels"):
        F.batch_norm(t(4, 3), np.zeros(4), np.ones(4), training=True)


@pytest.mark.parametrize(
    "data,match",
    [
        (np.array([1.0, None], dtype=object), "data of dtype object is not numeric"),
        (np.array(["a", "b"]), "data of dtype <U1 is not numeric"),
        (["1.0", "2.0"], "data of dtype <U3 is not numeric"),
        (np.array([1 + 2j]), "data of dtype complex128 is not numeric"),
        ([[1.0, 2.0], [3.0]], "cannot make a numeric array of list data"),
    ],
)
def test_tensors_hold_numbers_only(data, match):
    with pytest.raises(DTypeError, match=match):
        Tensor(data)
    with pytest.raises(DTypeError, match=match):
        nn.Linear(2, 2)(data)  # the same refusal when the layer converts its input


def test_conversions_that_numpy_refuses_are_dtype_errors():
    with pytest.raises(DTypeError, match=r"cannot make a numeric array of ndarray data .*could not convert"):
        Tensor(np.array(["a"]), dtype=np.float32)
    with pytest.raises(DTypeError, match=r"cannot make a numeric array of list data \(dtype 'bogus'\)"):
        Tensor([1.0], dtype="bogus")


def test_labels_are_checked_before_they_become_tensors():
    with pytest.raises(LabelError, match=r"cross_entropy: labels must be integers, got dtype <U1"):
        F.cross_entropy(t(2, 3), np.array(["a", "b"]))
    with pytest.raises(LabelError, match=r"nll_loss: label -1 \(at index 1\) is out of range for 3 classes"):
        nn.losses.nll_loss(F.log_softmax(t(2, 3)), np.array([0, -1]))
    with pytest.raises(LabelError, match=r"nll_loss: label 3 \(at index 0\) is out of range for 3 classes"):
        nn.losses.nll_loss(F.log_softmax(t(2, 3)), np.array([3, 0]))
    with pytest.raises(LabelError, match=r"nll_loss: labels must be integers, got dtype float64"):
        nn.losses.nll_loss(F.log_softmax(t(2, 3)), np.array([0.0, 1.0]))


def test_shape_mismatches_name_both_shapes():
    with pytest.raises(ShapeError, match=r"softmax: axis 2 is out of range for an input with 2 dimensions"):
        F.softmax(t(2, 3), axis=2)
    with pytest.raises(ShapeError, match=r"concatenate: needs at least one tensor"):
        F.concatenate([])
    with pytest.raises(ShapeError, match=r"linear: input of shape \(4, 3\) does not match weight of shape \(3, 2\)"):
        nn.Linear(2, 3)(t(4, 3))
    with pytest.raises(ShapeError, match=r"fit: the training inputs have 4 samples but the labels 3"):
        nn.fit(nn.MLP([4, 2]), (np.zeros((4, 4), np.float32), np.zeros(3, np.int64)), progress=False)
    with pytest.raises(ShapeError, match=r"batches: X has 4 samples but y has 3"):
        next(nn.batches(np.zeros((4, 2)), np.zeros(3), 2))


def _fit(**kwargs):
    data = (np.zeros((4, 4), np.float32), np.zeros(4, np.int64))
    return nn.fit(kwargs.pop("model", nn.MLP([4, 2])), kwargs.pop("data", data), progress=False, **kwargs)


@pytest.mark.parametrize(
    "kwargs,argument,allowed",
    [
        ({"epochs": -1}, "epochs", "an integer >= 0"),
        ({"batch_size": 0}, "batch_size", "an integer >= 1"),
        ({"seed": 1.5}, "seed", "an integer >= 0"),
        ({"check": None}, "check", "'first', 'never' or 'every:N'"),
        ({"check_fn": "blame"}, "check_fn", "a callable or None"),
        ({"loss_fn": None}, "loss_fn", "a callable"),
        ({"optimizer": "adam"}, "optimizer", "None or an Optimizer"),
        ({"blas_threads": 0}, "blas_threads", "an integer >= 1"),
        ({"model": "mlp"}, "model", "a Module"),
        ({"data": (np.zeros((4, 4)),)}, "data", r"Digits or \(X, y\)"),
    ],
)
def test_fit_refuses_bad_arguments(kwargs, argument, allowed):
    with pytest.raises(nn.ArgumentError, match=rf"fit: {argument} must be {allowed}"):
        _fit(**kwargs)


def test_data_helpers_refuse_bad_arguments():
    with pytest.raises(nn.ArgumentError, match=r"batches: batch_size must be an integer >= 1, got 0"):
        next(nn.batches(np.zeros((4, 2)), np.zeros(4), 0))
    with pytest.raises(nn.ArgumentError, match=r"random_shift: max_shift must be an integer >= 0, got -1"):
        random_shift(np.zeros((1, 1, 4, 4)), np.random.default_rng(0), max_shift=-1)
    with pytest.raises(nn.ArgumentError, match=r"load_digits: test_fraction must be a number in \[0, 1\), got 1.0"):
        nn.load_digits(test_fraction=1.0)
    with pytest.raises(nn.ArgumentError, match=r"evaluate: batch_size must be an integer >= 1, got 0"):
        nn.evaluate(nn.MLP([4, 2]), np.zeros((2, 4), np.float32), np.zeros(2, np.int64), batch_size=0)


def test_more_entries_refuse_bad_arguments():
    from backcheck.nn.higher import grad

    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(nn.ArgumentError, match=r"grad: inputs\[0\] must be a Tensor that requires grad"):
        grad((x * 2.0).sum(), [Tensor(np.ones(3))])
    with pytest.raises(ShapeError, match=r"grad: grad_output has shape \(2,\) but the output has shape \(3,\)"):
        grad(x * 2.0, [x], np.ones(2))
    with pytest.raises(nn.ArgumentError, match=r"Tensor: requires_grad must be True or False, got 'False'"):
        Tensor(np.ones(2), requires_grad="False")
    with pytest.raises(nn.ArgumentError, match=r"Digits.subset: n_train must be an integer >= 0, got -5"):
        nn.Digits(*(np.zeros((4, 1)),) * 4).subset(-5)
    with pytest.raises(nn.ArgumentError, match=r"scaled_dot_product_attention: scale must be a finite number"):
        F.scaled_dot_product_attention(t(2, 3), t(2, 3), t(2, 3), scale=float("nan"))
    with pytest.raises(nn.ArgumentError, match=r"fit: lr_schedule\(0\) must be a finite number >= 0, got nan"):
        _fit(lr_schedule=lambda epoch: float("nan"))


@pytest.mark.parametrize(
    "make,hint",
    [
        (lambda: t(2, 3) + t(4), "numpy broadcasting"),
        (lambda: t(2, 3) @ t(2, 3), "a transpose is often missing"),
        (lambda: nn.Linear(64, 2)(t(2, 1, 8, 8)), "flatten images first"),
        (lambda: nn.Conv2d(3, 2, 3)(t(1, 1, 5, 5)), "in_channels must equal the input's axis 1"),
        (lambda: F.cross_entropy(t(3, 4), np.array([0, 1])), r"one integer label per row of logits"),
        (lambda: F.embedding(np.array([7]), t(3, 2)), r"indices must be in \[0, 2\]"),
        (lambda: nn.MLP([4, 2]).load_state_dict({}), "strict=False"),
    ],
)
def test_common_mistakes_come_with_a_hint(make, hint):
    with pytest.raises(NNError, match=rf"\nHint: .*{hint}") as info:
        make()
    assert info.value.hint and info.value.message in str(info.value)


# ---------------------------------------------------------------------- numpy warnings stay inside
EXTREME = np.array([[1.7e308, -1.7e308, 0.0, 1e-300], [-1.7e308, 1.7e308, 3.0, -5.0], [2.0, -1.0, 0.5, 0.25]])


@pytest.mark.filterwarnings("error")
def test_softmax_and_cross_entropy_at_the_float_maximum_are_exact():
    probs = F.softmax(Tensor(np.array([1.7e308, -1.7e308]))).data
    np.testing.assert_array_equal(probs, [1.0, 0.0])
    losses = F.cross_entropy(Tensor(EXTREME[:2]), np.array([0, 0]), reduction="none").data
    np.testing.assert_array_equal(losses, [0.0, np.inf])  # 3.4e308 is beyond the float range
    mean = F.cross_entropy(Tensor(EXTREME[:1], requires_grad=True), np.array([0]))
    mean.backward()  # no graph needed: the point is that neither pass warns
    assert mean.item() == 0.0


def _normalized_reference(x, axes):
    """(x - mean) / std along ``axes`` on x / max|x| in plain numpy (eps / max|x|^2 is below resolution)."""
    xs = x / np.abs(x).max(axis=axes, keepdims=True)
    xc = xs - xs.mean(axis=axes, keepdims=True)
    return xc / np.sqrt((xc * xc).mean(axis=axes, keepdims=True))


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("scale", [1e160, 1e300, 1.7e308 / 4])
def test_norms_of_huge_values_stay_exact_and_quiet(scale):
    x = np.random.default_rng(0).uniform(-4, 4, size=(6, 5)) * scale
    rtol = 16 * np.finfo(np.float64).eps * x.shape[1]
    np.testing.assert_allclose(F.layer_norm(Tensor(x), 5).data, _normalized_reference(x, (1,)), rtol=rtol, atol=rtol)
    rm, rv = np.zeros(5), np.ones(5)
    out = F.batch_norm(Tensor(x), rm, rv, training=True)
    np.testing.assert_allclose(out.data, _normalized_reference(x, (0,)), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(rm, 0.1 * (x / len(x)).sum(axis=0), rtol=rtol)  # x.mean would overflow
    assert np.isinf(rv).all()  # a variance of values beyond 1e155 is itself beyond the float range
    xt = Tensor(x, requires_grad=True)
    F.layer_norm(xt, 5).sum().backward()  # d sum(xhat) / dx is 0: the normalized values sum to 0
    np.testing.assert_allclose(xt.grad, 0.0, atol=rtol * 4 / np.abs(x).max())  # of the size 1 / std


@pytest.mark.filterwarnings("error")
def test_mean_of_values_near_the_float_maximum_and_of_nothing():
    assert F.mean(Tensor(np.array([1.7e308, 1.5e308]))).item() == pytest.approx(1.6e308, rel=1e-15)
    assert F.mean(Tensor(np.array([np.inf, 1.0]))).item() == np.inf
    empty = F.mean(Tensor(np.zeros((0, 3)), requires_grad=True), axis=0)
    assert empty.shape == (3,) and np.isnan(empty.data).all()
    xt = Tensor(np.array([1.7e308, 1.7e308]), requires_grad=True)
    F.mean(xt).backward()
    np.testing.assert_array_equal(xt.grad, [0.5, 0.5])
