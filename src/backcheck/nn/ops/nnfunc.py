"""Neural-network ops with fused backward passes.

softmax, log_softmax, softmax cross-entropy with integer labels, mean squared error, batch norm
(train and eval, torch's running-statistics convention), layer norm, dropout (explicit mask) and
embedding lookup.  Fusing them keeps the backward short and numerically stable: e.g. the gradient
of cross-entropy w.r.t. the logits is just ``softmax - onehot``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from backcheck.nn.errors import DTypeError, IndexRangeError, LabelError, ShapeError
from backcheck.nn.tensor import Context, Function, Tensor, as_tensor

__all__ = [
    "softmax",
    "log_softmax",
    "cross_entropy",
    "mse_loss",
    "batch_norm",
    "layer_norm",
    "dropout",
    "dropout_mask",
    "embedding",
]

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(op: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


# ---------------------------------------------------------------------- softmax family
class Softmax(Function):
    name = "softmax"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, axis: int) -> np.ndarray:
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        e /= e.sum(axis=axis, keepdims=True)
        ctx.out, ctx.axis = e, axis
        return e

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        out = ctx.out
        return (out * (grad - (grad * out).sum(axis=ctx.axis, keepdims=True)),)


class LogSoftmax(Function):
    name = "log_softmax"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, axis: int) -> np.ndarray:
        z = x - x.max(axis=axis, keepdims=True)
        z -= np.log(np.exp(z).sum(axis=axis, keepdims=True))
        ctx.out, ctx.axis = z, axis
        return z

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        return (grad - np.exp(ctx.out) * grad.sum(axis=ctx.axis, keepdims=True),)


def softmax(x: Any, axis: int = -1) -> Tensor:
    """Softmax along ``axis``: ``exp(x) / sum(exp(x))``, shifted by the maximum for stability.

    Examples
    --------
    >>> softmax(Tensor([0.0, 0.0])).data
    array([0.5, 0.5], dtype=float32)
    """
    return Softmax.apply(as_tensor(x), axis=axis)


def log_softmax(x: Any, axis: int = -1) -> Tensor:
    """``x - logsumexp(x, axis)``, computed stably.  Same shape as ``x``."""
    return LogSoftmax.apply(as_tensor(x), axis=axis)


class SoftmaxCrossEntropy(Function):
    """Fused ``-log softmax(logits)[label]``; backward ``(softmax - onehot) * grad``."""

    name = "cross_entropy"

    @staticmethod
    def forward(ctx: Context, logits: np.ndarray, labels: np.ndarray, *, reduction: str) -> np.ndarray:
        if logits.ndim != 2:
            raise ShapeError(f"cross_entropy: logits must have shape (N, C), got {logits.shape}")
        n, c = logits.shape
        if labels.shape != (n,):
            raise ShapeError(
                f"cross_entropy: labels of shape {labels.shape} do not match logits of shape {logits.shape}"
            )
        if labels.dtype.kind not in "iu":
            raise LabelError(f"cross_entropy: labels must be integers, got dtype {labels.dtype}")
        if n:
            lo, hi = labels.min(), labels.max()
            if lo < 0 or hi >= c:
                bad = int(lo) if lo < 0 else int(hi)
                where = int(np.flatnonzero(labels == bad)[0])
                raise LabelError(
                    f"cross_entropy: label {bad} (at index {where}) is out of range for {c} classes; "
                    f"labels must be in [0, {c - 1}]"
                )
        z = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        rows = np.arange(n)
        losses = np.log(s[:, 0]) - z[rows, labels]
        e /= s
        ctx.probs, ctx.labels, ctx.reduction = e, labels, reduction
        if reduction == "mean":
            return np.asarray(losses.mean(), dtype=logits.dtype)
        if reduction == "sum":
            return np.asarray(losses.sum(), dtype=logits.dtype)
        return losses

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        d = ctx.probs.copy()
        n = d.shape[0]
        d[np.arange(n), ctx.labels] -= 1
        if ctx.reduction == "mean":
            d *= grad / max(n, 1)
        elif ctx.reduction == "sum":
            d *= grad
        else:
            d *= grad[:, None]
        return d, None


def cross_entropy(logits: Any, labels: Any, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy with integer class labels (one fused op).

    Parameters
    ----------
    logits : Tensor, shape (N, C)
        Unnormalized scores.
    labels : array_like of int, shape (N,)
        Class indices in ``[0, C)``.
    reduction : {'mean', 'sum', 'none'}

    Returns
    -------
    Tensor
        Shape () for 'mean' and 'sum', (N,) for 'none'.

    Raises
    ------
    LabelError
        If a label is outside ``[0, C)`` (the message names the label and ``C``) or not an integer.

    Examples
    --------
    >>> round(cross_entropy(Tensor(np.zeros((2, 4))), np.array([0, 3])).item(), 4)
    1.3863
    """
    _check_reduction("cross_entropy", reduction)
    labels_arr = labels.data if isinstance(labels, Tensor) else np.asarray(labels)
    return SoftmaxCrossEntropy.apply(as_tensor(logits), Tensor(labels_arr), reduction=reduction)


class MSE(Function):
    name = "mse_loss"

    @staticmethod
    def forward(ctx: Context, pred: np.ndarray, target: np.ndarray, *, reduction: str) -> np.ndarray:
        if pred.shape != target.shape:
            raise ShapeError(f"mse_loss: input shape {pred.shape} differs from target shape {target.shape}")
        diff = pred - target
        ctx.diff, ctx.reduction = diff, reduction
        sq = diff * diff
        if reduction == "mean":
            return np.asarray(sq.mean())
        if reduction == "sum":
            return np.asarray(sq.sum())
        return sq

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        diff = ctx.diff
        scale = 2.0 / diff.size if ctx.reduction == "mean" and diff.size else 2.0
        g = diff * (grad * scale)
        return g, (-g if ctx.needs_input_grad[1] else None)


def mse_loss(pred: Any, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error ``mean((pred - target) ** 2)`` (one fused op).

    Parameters
    ----------
    pred, target : Tensor, same shape
    reduction : {'mean', 'sum', 'none'}

    Examples
    --------
    >>> mse_loss(Tensor([1.0, 3.0]), Tensor([1.0, 1.0])).item()
    2.0
    """
    _check_reduction("mse_loss", reduction)
    pred = as_tensor(pred)
    return MSE.apply(pred, as_tensor(target, like=pred), reduction=reduction)


# ---------------------------------------------------------------------- normalization
def _channels_last_2d(a: np.ndarray) -> tuple[np.ndarray, tuple[int, ...], tuple[int, ...]]:
    """View (N, C, *S) as a C-contiguous (N * prod(S), C) matrix (copying only if needed).

    Returns the matrix, the channels-last shape and the permutation that restores (N, C, *S).
    """
    if a.ndim == 2:
        return np.ascontiguousarray(a), a.shape, (0, 1)
    perm = (0, *range(2, a.ndim), 1)
    t = a.transpose(perm)
    inverse = tuple(int(i) for i in np.argsort(perm))
    return np.ascontiguousarray(t).reshape(-1, a.shape[1]), t.shape, inverse


class BatchNorm(Function):
    """Batch normalization over every axis but the channel axis 1 (``x`` is (N, C) or (N, C, ...)).

    The work is done on an (M, C) channels-last matrix (M = N * H * W): the per-channel sums are then
    matrix-vector products, and an NCHW view of channels-last memory (as produced by conv2d)
    needs no copy at all.
    """

    name = "batch_norm"

    @staticmethod
    def forward(
        ctx: Context,
        x: np.ndarray,
        weight: np.ndarray,
        bias: np.ndarray,
        *,
        running_mean: np.ndarray | None,
        running_var: np.ndarray | None,
        training: bool,
        momentum: float,
        eps: float,
    ) -> np.ndarray:
        if x.ndim < 2 or weight.shape != (x.shape[1],) or bias.shape != (x.shape[1],):
            raise ShapeError(
                f"batch_norm: input of shape {x.shape} needs (N, C, ...) with weight and bias of shape "
                f"(C,); got weight {weight.shape}, bias {bias.shape}"
            )
        x2, tshape, inverse = _channels_last_2d(x)
        m = x2.shape[0]
        if training:
            if m <= 1:
                raise ShapeError(
                    f"batch_norm: need more than one value per channel in training, got input {x.shape}"
                )
            ones = np.ones(m, dtype=x.dtype)
            mean = (ones @ x2) / m
            xhat = x2 - mean
            var = (ones @ (xhat * xhat)) / m
            inv = 1.0 / np.sqrt(var + eps)
            if running_mean is not None and running_var is not None:
                running_mean *= 1 - momentum
                running_mean += momentum * mean
                running_var *= 1 - momentum
                running_var += (momentum * m / (m - 1)) * var
            xhat *= inv
        else:
            if running_mean is None or running_var is None:
                raise ValueError("batch_norm: eval mode needs running_mean and running_var")
            inv = (1.0 / np.sqrt(running_var + eps)).astype(x.dtype)
            xhat = (x2 - running_mean.astype(x.dtype)) * inv
        out = xhat * weight
        out += bias
        ctx.xhat, ctx.inv, ctx.w, ctx.m, ctx.training = xhat, inv, weight, m, training
        ctx.nhwc_shape, ctx.to_nchw = tshape, inverse
        return out.reshape(tshape).transpose(inverse)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        xhat, m = ctx.xhat, ctx.m
        tshape, inverse = ctx.nhwc_shape, ctx.to_nchw
        g2, _, _ = _channels_last_2d(grad)
        ones = np.ones(m, dtype=g2.dtype)
        gbeta = ones @ g2
        ggamma = ones @ (g2 * xhat)
        scale = ctx.w * ctx.inv
        if ctx.training:
            t = xhat * ggamma
            t += gbeta
            t *= 1.0 / m
            gx = g2 - t
            gx *= scale
        else:
            gx = g2 * scale
        return gx.reshape(tshape).transpose(inverse), ggamma, gbeta


def batch_norm(
    x: Any,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalization, as ``torch.nn.functional.batch_norm``.

    In training the batch statistics (biased variance) normalize ``x`` and, when given, the running
    statistics are updated in place: ``r = (1 - momentum) * r + momentum * stat`` with the
    *unbiased* variance for ``running_var`` (torch's convention).  In eval the running statistics
    normalize ``x``.

    Parameters
    ----------
    x : Tensor, shape (N, C) or (N, C, H, W) (any trailing axes)
    running_mean, running_var : numpy.ndarray, shape (C,), or None
    weight, bias : Tensor, shape (C,), optional
        Default to ones and zeros.
    training : bool
    momentum, eps : float

    Returns
    -------
    Tensor, same shape as ``x``

    Examples
    --------
    >>> x = Tensor(np.random.default_rng(0).normal(size=(8, 3)))
    >>> rm, rv = np.zeros(3), np.ones(3)
    >>> y = batch_norm(x, rm, rv, training=True)
    >>> np.allclose(y.data.mean(0), 0)
    True
    """
    x = as_tensor(x)
    c = x.data.shape[1] if x.data.ndim > 1 else 0
    w = as_tensor(weight) if weight is not None else Tensor(np.ones(c, dtype=x.data.dtype))
    b = as_tensor(bias) if bias is not None else Tensor(np.zeros(c, dtype=x.data.dtype))
    return BatchNorm.apply(
        x,
        w,
        b,
        running_mean=running_mean,
        running_var=running_var,
        training=training,
        momentum=momentum,
        eps=eps,
    )


class LayerNorm(Function):
    """Normalize over the trailing axes ``axes``, then scale and shift elementwise."""

    name = "layer_norm"

    @staticmethod
    def forward(
        ctx: Context, x: np.ndarray, weight: np.ndarray, bias: np.ndarray, *, ndims: int, eps: float
    ) -> np.ndarray:
        shape = x.shape[x.ndim - ndims :]
        if ndims > x.ndim or weight.shape != shape or bias.shape != shape:
            raise ShapeError(
                f"layer_norm: input of shape {x.shape} does not end with the normalized shape "
                f"{weight.shape} of the weight (bias {bias.shape})"
            )
        axes = tuple(range(x.ndim - ndims, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        xc = x - mean
        var = np.mean(xc * xc, axis=axes, keepdims=True)
        inv = 1.0 / np.sqrt(var + eps)
        xhat = xc
        xhat *= inv
        ctx.xhat, ctx.inv, ctx.w, ctx.axes = xhat, inv, weight, axes
        return xhat * weight + bias

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        xhat, axes = ctx.xhat, ctx.axes
        lead = tuple(range(xhat.ndim - len(axes)))
        gw = (grad * xhat).sum(axis=lead) if ctx.needs_input_grad[1] else None
        gb = grad.sum(axis=lead) if ctx.needs_input_grad[2] else None
        gx = None
        if ctx.needs_input_grad[0]:
            dxhat = grad * ctx.w
            gx = (
                dxhat
                - dxhat.mean(axis=axes, keepdims=True)
                - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True)
            ) * ctx.inv
        return gx, gw, gb


def layer_norm(
    x: Any, normalized_shape: int | Sequence[int], weight: Any = None, bias: Any = None, eps: float = 1e-5
) -> Tensor:
    """Layer normalization over the trailing ``normalized_shape`` axes (biased variance).

    Parameters
    ----------
    x : Tensor, shape (..., *normalized_shape)
    normalized_shape : int or tuple of int
    weight, bias : Tensor, shape normalized_shape, optional
        Default to ones and zeros.
    eps : float

    Examples
    --------
    >>> y = layer_norm(Tensor(np.arange(6.0).reshape(2, 3)), 3)
    >>> np.allclose(y.data.mean(-1), 0)
    True
    """
    x = as_tensor(x)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    w = as_tensor(weight) if weight is not None else Tensor(np.ones(shape, dtype=x.data.dtype))
    b = as_tensor(bias) if bias is not None else Tensor(np.zeros(shape, dtype=x.data.dtype))
    return LayerNorm.apply(x, w, b, ndims=len(shape), eps=eps)


# ---------------------------------------------------------------------- dropout and embedding
class Dropout(Function):
    """Multiply by a fixed mask (zeros and ``1 / (1 - p)``), kept on the node as ``ctx.mask``."""

    name = "dropout"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, mask: np.ndarray) -> np.ndarray:
        if mask.shape != x.shape:
            raise ShapeError(f"dropout: mask of shape {mask.shape} does not match input of shape {x.shape}")
        ctx.mask = mask
        return x * mask

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        return (grad * ctx.mask,)


def dropout_mask(
    shape: Sequence[int], p: float, rng: np.random.Generator, dtype: Any = np.float32
) -> np.ndarray:
    """A dropout mask: 0 with probability ``p``, else ``1 / (1 - p)`` (inverted dropout).

    Examples
    --------
    >>> m = dropout_mask((1000,), 0.5, np.random.default_rng(0))
    >>> sorted(set(m.tolist()))
    [0.0, 2.0]
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    keep = rng.random(tuple(shape), dtype=np.float64) >= p
    return keep.astype(dtype) * np.asarray(1.0 / (1.0 - p), dtype=dtype)


def dropout(
    x: Any,
    p: float = 0.5,
    training: bool = True,
    rng: np.random.Generator | None = None,
    mask: np.ndarray | None = None,
) -> Tensor:
    """Inverted dropout.

    Parameters
    ----------
    x : Tensor, any shape
    p : float
        Probability of zeroing an element.
    training : bool
        If False, return ``x`` unchanged.
    rng : numpy.random.Generator, optional
        Source of the mask (a fresh unseeded generator if omitted).
    mask : numpy.ndarray, optional
        Use this mask (as from :func:`dropout_mask`) instead of drawing one; this replays a pass.

    Returns
    -------
    Tensor, same shape as ``x``; the mask is ``out.ctx.mask`` while the graph is alive.

    Examples
    --------
    >>> y = dropout(Tensor(np.ones(4)), 0.5, rng=np.random.default_rng(0))
    >>> sorted(set(y.data.tolist())) <= [0.0, 2.0]
    True
    """
    x = as_tensor(x)
    if not training or (p == 0.0 and mask is None):
        return x
    if mask is None:
        mask = dropout_mask(
            x.data.shape, p, rng if rng is not None else np.random.default_rng(), x.data.dtype
        )
    return Dropout.apply(x, mask=mask)


class Embedding(Function):
    """Rows of ``weight`` picked by integer ``indices``; backward scatter-adds with ``np.add.at``."""

    name = "embedding"

    @staticmethod
    def forward(ctx: Context, weight: np.ndarray, *, indices: np.ndarray) -> np.ndarray:
        ctx.indices, ctx.shape = indices, weight.shape
        return weight[indices]

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        gw = np.zeros(ctx.shape, dtype=grad.dtype)
        np.add.at(gw, ctx.indices.reshape(-1), grad.reshape(-1, ctx.shape[1]))
        return (gw,)


def embedding(indices: Any, weight: Any) -> Tensor:
    """Look up rows of ``weight``.

    Parameters
    ----------
    indices : array_like of int, any shape S
    weight : Tensor, shape (num_embeddings, dim)

    Returns
    -------
    Tensor, shape S + (dim,)

    Raises
    ------
    IndexRangeError
        If an index is outside ``[0, num_embeddings)``.

    Examples
    --------
    >>> embedding(np.array([[0, 2]]), Tensor(np.eye(3))).shape
    (1, 2, 3)
    """
    idx = indices.data if isinstance(indices, Tensor) else np.asarray(indices)
    weight = as_tensor(weight)
    if idx.dtype.kind not in "iu":
        raise DTypeError(f"embedding: indices must be integers, got dtype {idx.dtype}")
    if weight.data.ndim != 2:
        raise ShapeError(
            f"embedding: weight must be 2-D (num_embeddings, dim), got shape {weight.data.shape}"
        )
    num = weight.data.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= num):
        bad = int(idx.min()) if idx.min() < 0 else int(idx.max())
        raise IndexRangeError(f"embedding: index {bad} is out of range for {num} embeddings")
    return Embedding.apply(weight, indices=idx)
