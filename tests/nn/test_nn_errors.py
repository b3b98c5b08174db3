"""Bad input raises typed errors whose messages name the op and the shapes or values involved."""

from __future__ import annotations

import numpy as np
import pytest

from backcheck import nn
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
