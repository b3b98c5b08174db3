"""explore over every op and module of backcheck.nn, through its Tensor API: shapes with free dimensions,
hyper-parameters (strides, paddings, axes, reductions), values at kinks and ties, broadcasting; no point
may fail the check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from backcheck import nn
from backcheck.explore import Array, Choice, Floats, Integers, Ints, Labels, Mask, explore
from backcheck.nn import Tensor
from backcheck.nn import functional as F

pytest.importorskip("hypothesis")

#: Points per op: enough for kinks, ties and size-1 dimensions to turn up, small enough for the suite.
POINTS = 6


def _wrap(arrays: tuple[Any, ...], grad: bool) -> list[Any]:
    return [Tensor(a, requires_grad=grad) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
            for a in arrays]


def op_layer(fn: Callable[..., Tensor]) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """forward/backward of an engine op: the forward pass on plain arrays, the backward from ``Tensor.backward``."""

    def forward(*arrays: Any, **hyper: Any) -> np.ndarray:
        return np.array(fn(*_wrap(arrays, False), **hyper).data, copy=True)

    def backward(dout: np.ndarray, *arrays: Any, **hyper: Any) -> tuple[Any, ...]:
        tensors = _wrap(arrays, True)
        fn(*tensors, **hyper).backward(dout)
        return tuple((t.grad if t.grad is not None else np.zeros_like(t.data)) if isinstance(t, Tensor) else None
                     for t in tensors)

    forward.__name__ = backward.__name__ = getattr(fn, "__name__", "op")
    return forward, backward


def module_layer(make: Callable[..., nn.Module], n_inputs: int = 1) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """forward/backward of a module built by ``make(**hyper)``: its inputs, then its parameters as arrays."""

    def build(arrays: tuple[Any, ...], hyper: dict[str, Any]) -> nn.Module:
        module = make(**hyper)
        for p, a in zip(module.parameters(), arrays[n_inputs:], strict=True):
            p.data = a.copy()
        return module

    def forward(*arrays: Any, **hyper: Any) -> np.ndarray:
        return np.array(build(arrays, hyper)(*_wrap(arrays[:n_inputs], False)).data, copy=True)

    def backward(dout: np.ndarray, *arrays: Any, **hyper: Any) -> tuple[Any, ...]:
        module = build(arrays, hyper)
        tensors = _wrap(arrays[:n_inputs], True)
        module(*tensors).backward(dout)
        leaves = [*tensors, *module.parameters()]
        return tuple((t.grad if t.grad is not None else np.zeros_like(t.data)) if isinstance(t, Tensor) else None
                     for t in leaves)

    forward.__name__ = backward.__name__ = type(make()).__name__
    return forward, backward


def module_inputs(make: Callable[..., nn.Module], **inputs: Any) -> dict[str, Any]:
    """The module's inputs, then one fixed-shape Array per parameter (named after it)."""
    params = {"p_" + name.replace(".", "_"): Array(*p.data.shape) for name, p in make().named_parameters()}
    return {**inputs, **params}


N, D = "N", "D"
X = {"x": Array(N, D)}
POSITIVE = {"x": Array(N, D, domain="positive")}
# b broadcasts against a along the rows when b_rows is True (shape (1, D))
BINARY = {"a": Array(N, D), "b": Array(lambda e: 1 if e["b_rows"] else e["N"], D)}
BCAST = {"b_rows": Choice(0, 1)}  # a dimension of the description only, not an argument
IMAGE = {"x": Array(N, "C", "H", "W")}
REDUCE = {"axis": Choice(None, 0, -1), "keepdims": Choice(False, True)}


def _clip(x: Any, c: float) -> Tensor:
    return F.clip(x, -c, c)


def _concat(a: Any, b: Any, axis: int) -> Tensor:
    return F.concatenate([a, b], axis=axis)


def _stack(a: Any, b: Any, axis: int) -> Tensor:
    return F.stack([a, b], axis=axis)


def _layer_norm(x: Any, w: Any, b: Any) -> Tensor:
    return F.layer_norm(x, x.shape[-1], w, b)


def _batch_norm(x: Any, w: Any, b: Any) -> Tensor:
    return F.batch_norm(x, None, None, w, b, training=True)


def _dropout(x: Any, keep: np.ndarray, p: float) -> Tensor:
    return F.dropout(x, p, training=True, mask=keep.astype(np.float64) / (1 - p))


def _pool_ok(e: dict[str, Any]) -> bool:
    return 2 * e["padding"] <= e["kernel_size"] <= min(e["H"], e["W"]) + 2 * e["padding"]


OPS: dict[str, tuple[Callable[..., Tensor], dict[str, Any]]] = {
    "abs": (F.abs, {"inputs": X}),
    "exp": (F.exp, {"inputs": X}),
    "gelu": (F.gelu, {"inputs": X, "hyper": {"approximate": Choice("none", "tanh")}}),
    "leaky_relu": (F.leaky_relu, {"inputs": X, "hyper": {"negative_slope": Floats(0.0, 0.5, edges=(0.01,))}}),
    "log": (F.log, {"inputs": POSITIVE}),
    "neg": (F.neg, {"inputs": X}),
    "relu": (F.relu, {"inputs": X}),
    "sigmoid": (F.sigmoid, {"inputs": X}),
    "softplus": (F.softplus, {"inputs": X, "hyper": {"beta": Choice(1.0, 2.0)}}),
    "sqrt": (F.sqrt, {"inputs": POSITIVE}),
    "tanh": (F.tanh, {"inputs": X}),
    "clip": (_clip, {"inputs": {"x": Array(N, D, kinks=lambda e: (-e["c"], e["c"]))},
                     "hyper": {"c": Floats(0.1, 2.0, edges=(1.0,))}}),
    "add": (F.add, {"inputs": BINARY, "dims": BCAST}),
    "sub": (F.sub, {"inputs": BINARY, "dims": BCAST}),
    "mul": (F.mul, {"inputs": BINARY, "dims": BCAST}),
    "div": (F.div, {"inputs": {"a": Array(N, D), "b": Array(lambda e: 1 if e["b_rows"] else e["N"], D,
                                                                domain="nonzero")}, "dims": BCAST}),
    "pow": (F.pow, {"inputs": {"a": Array(N, D, domain="positive"), "b": Array(N, D)}}),
    "where": (F.where, {"inputs": {"cond": Mask(N, D), "a": Array(N, D), "b": Array(N, D)}}),
    "matmul": (F.matmul, {"inputs": {"a": Array("B", "M", "K"), "b": Array("K", "P")}}),
    "linear": (F.linear, {"inputs": {"x": Array(N, "I"), "w": Array("O", "I"), "b": Array("O")}}),
    "conv2d": (F.conv2d, {"inputs": {"x": Array(N, "C", "H", "W"), "w": Array("F", "C", "K", "K"), "b": Array("F")},
                          "hyper": {"stride": Ints(1, 2), "padding": Ints(0, 2)}, "dims": {"H": (1, 5), "W": (1, 5)},
                          "where": lambda e: min(e["H"], e["W"]) + 2 * e["padding"] >= e["K"]}),
    "max_pool2d": (F.max_pool2d, {"inputs": IMAGE, "dims": {"H": (1, 5), "W": (1, 5)}, "where": _pool_ok,
                                  "hyper": {"kernel_size": Ints(1, 3), "stride": Ints(1, 3), "padding": Ints(0, 1)}}),
    "avg_pool2d": (F.avg_pool2d, {"inputs": IMAGE, "dims": {"H": (1, 5), "W": (1, 5)}, "where": _pool_ok,
                                  "hyper": {"kernel_size": Ints(1, 3), "stride": Ints(1, 3), "padding": Ints(0, 1)}}),
    "batch_norm": (_batch_norm, {"inputs": {"x": Array(N, D), "w": Array(D), "b": Array(D)}, "dims": {N: (2, 4)}}),
    "layer_norm": (_layer_norm, {"inputs": {"x": Array(N, D), "w": Array(D), "b": Array(D)}}),
    "cross_entropy": (F.cross_entropy, {"inputs": {"logits": Array(N, "C"), "labels": Labels(N, classes="C")},
                                        "hyper": {"reduction": Choice("mean", "sum")}}),
    "mse_loss": (F.mse_loss, {"inputs": {"pred": Array(N, D), "target": Array(N, D)},
                              "hyper": {"reduction": Choice("mean", "sum")}}),
    "softmax": (F.softmax, {"inputs": X, "hyper": {"axis": Choice(-1, 0)}}),
    "log_softmax": (F.log_softmax, {"inputs": X, "hyper": {"axis": Choice(-1, 0)}}),
    "logsumexp": (F.logsumexp, {"inputs": X, "hyper": REDUCE}),
    "max": (F.max, {"inputs": X, "hyper": REDUCE}),
    "min": (F.min, {"inputs": X, "hyper": REDUCE}),
    "sum": (F.sum, {"inputs": X, "hyper": REDUCE}),
    "mean": (F.mean, {"inputs": X, "hyper": REDUCE}),
    "reshape": (F.reshape, {"inputs": X, "hyper": {"shape": Choice((-1,), (-1, 1))}}),
    "flatten": (F.flatten, {"inputs": IMAGE, "hyper": {"start_dim": Choice(1, 0, 2)}}),
    "permute": (F.permute, {"inputs": {"x": Array(N, "C", D)}, "hyper": {"axes": Choice((1, 0, 2), (2, 0, 1))}}),
    "getitem": (F.getitem, {"inputs": X, "hyper": {"index": Choice(slice(None, None, 2), 0, (slice(None), -1))}}),
    "pad": (F.pad, {"inputs": X, "hyper": {"pad_width": Ints(0, 2)}}),
    "broadcast_to": (F.broadcast_to, {"inputs": {"x": Array(1, D)}, "hyper": {"shape": Choice((3, 2), (1, 2))},
                                      "dims": {D: 2}}),
    "concatenate": (_concat, {"inputs": {"a": Array(N, D), "b": Array(N, D)}, "hyper": {"axis": Choice(0, 1)}}),
    "stack": (_stack, {"inputs": {"a": Array(N, D), "b": Array(N, D)}, "hyper": {"axis": Choice(0, 1, 2)}}),
    "embedding": (F.embedding, {"inputs": {"ids": Integers(N, "L", high="V"), "w": Array("V", D)}}),
    "dropout": (_dropout, {"inputs": {"x": Array(N, D), "keep": Mask(N, D)},
                           "hyper": {"p": Choice(0.5, 0.1)}}),
    "attention": (F.scaled_dot_product_attention,
                  {"inputs": {"q": Array("B", "T", D), "k": Array("B", "S", D), "v": Array("B", "S", "E"),
                              "mask": Mask("T", "S", each_row=True)}}),
}


def _mlp(**_: Any) -> nn.Module:
    return nn.MLP([3, 4, 2], flatten=False, dtype=np.float64)


def _cnn(**_: Any) -> nn.Module:
    return nn.SmallCNN(num_classes=2, channels=(2, 2), hidden=3, dtype=np.float64)


F64 = {"dtype": np.float64}
MODULES: dict[str, tuple[Callable[..., nn.Module], dict[str, Any], int]] = {
    "Linear": (lambda: nn.Linear(3, 2, **F64), {"x": Array(N, 3)}, 8),
    "Conv2d": (lambda stride=1, padding=0: nn.Conv2d(2, 2, 2, stride=stride, padding=padding, **F64),
               {"x": Array(N, 2, "H", "W")}, 6),
    "BatchNorm1d": (lambda: nn.BatchNorm1d(3, **F64), {"x": Array(N, 3)}, 6),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(2, **F64), {"x": Array(N, 2, "H", "W")}, 6),
    "LayerNorm": (lambda: nn.LayerNorm(3, **F64), {"x": Array(N, 3)}, 6),
    "Embedding": (lambda: nn.Embedding(4, 2, **F64), {"ids": Integers(N, "L", high=4)}, 6),
    "MLP": (_mlp, {"x": Array(N, 3)}, 6),
    "Sequential": (lambda: nn.Sequential(nn.Linear(3, 2, **F64), nn.Tanh(), nn.Linear(2, 2, **F64)),
                   {"x": Array(N, 3)}, 6),
    "SmallCNN": (_cnn, {"x": Array(N, 1, 8, 8)}, 2),
    **{name: (getattr(nn, name), {"x": Array(N, D)}, 5)
       for name in ("ReLU", "GELU", "Sigmoid", "Tanh", "LeakyReLU", "Softmax", "Identity", "Flatten")},
    "MaxPool2d": (lambda: nn.MaxPool2d(2, padding=1), {"x": Array(N, "C", "H", "W")}, 6),
    "AvgPool2d": (lambda: nn.AvgPool2d(2), {"x": Array(N, "C", "H", "W")}, 6),
}
MODULE_OPTIONS: dict[str, dict[str, Any]] = {
    "Conv2d": {"hyper": {"stride": Ints(1, 2), "padding": Ints(0, 1)}, "dims": {"H": (1, 4), "W": (1, 4)},
               "where": lambda e: min(e["H"], e["W"]) + 2 * e["padding"] >= 2},
    "BatchNorm1d": {"dims": {N: (2, 4)}},
    "BatchNorm2d": {"dims": {"H": (1, 3), "W": (1, 3)}},
    "MaxPool2d": {"dims": {"H": (1, 4), "W": (1, 4)}},
    "AvgPool2d": {"dims": {"H": (2, 4), "W": (2, 4)}},
    "SmallCNN": {"dims": {N: (1, 2)}},
}


def _assert_no_failure(result: Any) -> None:
    assert result.status != "fail", result
    assert result.passed >= 1, result


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_passes_across_its_input_space(name):
    fn, space = OPS[name]
    forward, backward = op_layer(fn)
    _assert_no_failure(explore(forward, backward, **space, max_points=POINTS, shrink=False, progress=False,
                               title=f"nn.functional.{name}"))


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_passes_across_its_input_space(name):
    make, inputs, points = MODULES[name]
    forward, backward = module_layer(make)
    result = explore(forward, backward, module_inputs(make, **inputs), **MODULE_OPTIONS.get(name, {}),
                     max_points=points, shrink=False, progress=False, title=f"nn.{name}")
    _assert_no_failure(result)


def test_the_adapter_can_fail():
    """A wrong backward through the same adapter is found: the op tests could catch a broken engine op."""
    forward, backward = op_layer(F.max)

    def wrong(dout: np.ndarray, x: np.ndarray, **hyper: Any) -> tuple[Any, ...]:
        (g,) = backward(dout, x, **hyper)
        return (g * (1 + (x.shape[0] > 1)),)  # right on one row, double on more

    result = explore(forward, wrong, X, hyper=REDUCE, max_points=30, progress=False)
    assert result.status == "fail" and result.case.dims[N] == 2, result
