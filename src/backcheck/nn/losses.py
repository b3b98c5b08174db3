"""Loss functions (functional and module forms).

``cross_entropy`` and ``mse_loss`` are single fused ops; the others are compositions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backcheck.nn.autograd import Context
from backcheck.nn.errors import ShapeError
from backcheck.nn.module import Module
from backcheck.nn.ops.elementwise import _sigmoid
from backcheck.nn.ops.elementwise import abs as _abs
from backcheck.nn.ops.nnfunc import check_reduction, class_labels, cross_entropy, mse_loss
from backcheck.nn.ops.shape import getitem
from backcheck.nn.tensor import Function, Tensor, as_tensor
from backcheck.nn.validate import float_array, integer, number

__all__ = [
    "cross_entropy",
    "mse_loss",
    "nll_loss",
    "l1_loss",
    "binary_cross_entropy_with_logits",
    "CrossEntropyLoss",
    "MSELoss",
]


def _reduce(x: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    return x


def nll_loss(log_probs: Any, labels: Any, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of integer ``labels`` under ``log_probs`` (N, C) (e.g. log_softmax output).

    Examples
    --------
    >>> round(nll_loss(Tensor(np.log([[0.5, 0.5]])), np.array([1])).item(), 4)
    0.6931
    """
    check_reduction("nll_loss", reduction)
    log_probs = as_tensor(log_probs)
    float_array("nll_loss", "log_probs", log_probs.data)
    idx = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
    if log_probs.data.ndim != 2 or idx.shape != (log_probs.data.shape[0],):
        raise ShapeError(
            f"nll_loss: log_probs {log_probs.data.shape} and labels {idx.shape} need shapes (N, C) and (N,)"
        )
    class_labels("nll_loss", idx, log_probs.data.shape[1])
    return _reduce(-getitem(log_probs, (np.arange(idx.shape[0]), idx)), reduction)


def l1_loss(pred: Any, target: Any, reduction: str = "mean") -> Tensor:
    """Mean absolute error ``mean(|pred - target|)``; same-shaped inputs."""
    check_reduction("l1_loss", reduction)
    pred = as_tensor(pred)
    float_array("l1_loss", "input", pred.data)
    target = as_tensor(target, like=pred)
    if pred.data.shape != target.data.shape:
        raise ShapeError(f"l1_loss: input shape {pred.data.shape} differs from target shape {target.data.shape}")
    return _reduce(_abs(pred - target), reduction)


def binary_cross_entropy_with_logits(logits: Any, targets: Any, reduction: str = "mean") -> Tensor:
    """``-[y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))]`` to full precision (see :class:`BCEWithLogits`)."""
    check_reduction("binary_cross_entropy_with_logits", reduction)
    logits = as_tensor(logits)
    float_array("binary_cross_entropy_with_logits", "logits", logits.data)
    targets = as_tensor(targets, like=logits)
    if logits.data.shape != targets.data.shape:
        raise ShapeError(
            f"binary_cross_entropy_with_logits: logits shape {logits.data.shape} differs from "
            f"target shape {targets.data.shape}"
        )
    return _reduce(BCEWithLogits.apply(logits, targets), reduction)


class BCEWithLogits(Function):
    """The elementwise loss ``(1 - y) x + max(-x, 0) + log1p(exp(-|x|))`` (torch's form: ``softplus(x) - x y``
    cancels for a confident right logit, to 0 in float32 from x = 15), with gradient ``(1 - y) sigmoid(x) - y
    sigmoid(-x)`` (``sigmoid(x) - y`` without its cancellation) for the logits and ``-x`` for the targets."""

    name = "binary_cross_entropy_with_logits"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        y = y.astype(x.dtype, copy=False)  # (integer targets: the loss in the logits' dtype)
        ctx.x, ctx.y = x, y
        return (1 - y) * x + np.maximum(-x, 0) + np.log1p(np.exp(-np.abs(x)))

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        x, y = ctx.x, ctx.y
        gx = grad * ((1 - y) * _sigmoid(x) - y * _sigmoid(-x)) if ctx.needs_input_grad[0] else None
        gy = -grad * x if ctx.needs_input_grad[1] else None
        return gx, gy


class CrossEntropyLoss(Module):
    """Module form of :func:`cross_entropy`: ``loss_fn(logits, labels)``."""

    def __init__(self, reduction: str = "mean", ignore_index: int = -100, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.reduction = check_reduction("CrossEntropyLoss", reduction)
        self.ignore_index = integer("CrossEntropyLoss", "ignore_index", ignore_index)
        self.label_smoothing = number("CrossEntropyLoss", "label_smoothing", label_smoothing, 0.0, 1.0)

    def forward(self, logits: Tensor, labels: Any) -> Tensor:
        return cross_entropy(logits, labels, self.reduction, self.ignore_index, self.label_smoothing)


class MSELoss(Module):
    """Module form of :func:`mse_loss`: ``loss_fn(pred, target)``."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction("MSELoss", reduction)

    def forward(self, pred: Tensor, target: Any) -> Tensor:
        return mse_loss(pred, target, self.reduction)
