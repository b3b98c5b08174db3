"""Normalization ops with fused backward passes: batch norm (train and eval, torch's running-statistics
convention) and layer norm."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from backcheck.nn.autograd import Context
from backcheck.nn.errors import ArgumentError, ShapeError
from backcheck.nn.tensor import Function, Tensor, as_tensor
from backcheck.nn.validate import flag, float_array, integer, number

__all__ = ["batch_norm", "layer_norm", "as_normalized_shape"]


def _eps(op: str, eps: Any) -> float:
    return number(op, "eps", eps, low=0.0, interval="(]", hint="eps keeps 1 / sqrt(var + eps) finite")


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
        running: tuple[np.ndarray, np.ndarray] | None,
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
                raise ShapeError(f"batch_norm: need more than one value per channel in training, got input {x.shape}")
            ones = np.ones(m, dtype=x.dtype)
            with np.errstate(over="ignore", invalid="ignore"):
                mean = (ones @ x2) / m
                xhat = x2 - mean
                var = (ones @ (xhat * xhat)) / m
            if np.isfinite(var).all() or not np.isfinite(x2).all():
                inv = 1.0 / np.sqrt(var + eps)
                xhat *= inv
            else:  # a sum of squares overflowed: values beyond about 1e154 (1e19 in float32)
                mean, var, xhat, inv = _scaled_moments(x2, (0,), eps)
                mean, var, inv = mean[0], var[0], inv[0]
            if running is not None:
                running_mean, running_var = running
                running_mean *= 1 - momentum
                running_mean += momentum * mean
                running_var *= 1 - momentum
                running_var += (momentum * m / (m - 1)) * var
        else:
            if running is None:
                raise ArgumentError(
                    "batch_norm: eval mode (training=False) needs running_mean and running_var",
                    "pass the running statistics, or training=True to normalize with the batch statistics",
                )
            running_mean, running_var = running
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
    float_array("batch_norm", "input", x.data)
    c = x.data.shape[1] if x.data.ndim > 1 else 0
    for name, stat in (("running_mean", running_mean), ("running_var", running_var)):
        _running_stat(name, stat, c)
    if (running_mean is None) != (running_var is None):
        raise ArgumentError(
            "batch_norm: running_mean and running_var must be given together (or both be None)",
            "both running statistics are updated in training and both are needed in eval",
        )
    w = as_tensor(weight) if weight is not None else Tensor(np.ones(c, dtype=x.data.dtype))
    b = as_tensor(bias) if bias is not None else Tensor(np.zeros(c, dtype=x.data.dtype))
    return BatchNorm.apply(
        x,
        w,
        b,
        running=None if running_mean is None or running_var is None else (running_mean, running_var),
        training=flag("batch_norm", "training", training),
        momentum=number("batch_norm", "momentum", momentum, 0.0, 1.0),
        eps=_eps("batch_norm", eps),
    )


def _running_stat(name: str, stat: Any, channels: int) -> None:
    """A running statistic is None or a float array of shape (C,) (written in place in training)."""
    if stat is None:
        return
    if not isinstance(stat, np.ndarray):
        raise ArgumentError(
            f"batch_norm: {name} must be None or a numpy array of shape ({channels},), got {type(stat).__name__}",
            "the running statistics are updated in place, so they must be numpy arrays",
            argument=name,
            allowed=f"None or a float array of shape ({channels},)",
            value=stat,
        )
    if stat.shape != (channels,):
        raise ShapeError(
            f"batch_norm: {name} has shape {stat.shape} but the input has {channels} channels (axis 1); "
            f"expected shape ({channels},)"
        )
    float_array("batch_norm", name, stat)


def _scaled_moments(
    x: np.ndarray, axes: tuple[int, ...], eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, variance, normalized ``x`` and ``1 / sqrt(var + eps)`` along ``axes`` (kept), computed on
    ``x / max|x|`` so that no square overflows: the normalized values stay exact where the variance itself
    is beyond the float range (the variance is then inf and the inverse a tiny positive number)."""
    with np.errstate(over="ignore", under="ignore"):
        s = np.abs(x).max(axis=axes, keepdims=True)
        s = np.where(s > 0, s, 1).astype(x.dtype)
        xs = x / s
        ms = xs.mean(axis=axes, keepdims=True)
        xcs = xs - ms
        root = np.sqrt(np.mean(xcs * xcs, axis=axes, keepdims=True) + eps / s / s)
        return ms * s, (root * s) ** 2 - eps, xcs / root, 1.0 / (root * s)


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
        with np.errstate(over="ignore", invalid="ignore"):
            mean = x.mean(axis=axes, keepdims=True)
            xc = x - mean
            var = np.mean(xc * xc, axis=axes, keepdims=True)
        if np.isfinite(var).all() or not np.isfinite(x).all():
            inv = 1.0 / np.sqrt(var + eps)
            xhat = xc
            xhat *= inv
        else:  # a sum of squares overflowed: values beyond about 1e154 (1e19 in float32)
            _, _, xhat, inv = _scaled_moments(x, axes, eps)
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
                dxhat - dxhat.mean(axis=axes, keepdims=True) - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True)
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
    float_array("layer_norm", "input", x.data)
    shape = as_normalized_shape("layer_norm", normalized_shape)
    w = as_tensor(weight) if weight is not None else Tensor(np.ones(shape, dtype=x.data.dtype))
    b = as_tensor(bias) if bias is not None else Tensor(np.zeros(shape, dtype=x.data.dtype))
    return LayerNorm.apply(x, w, b, ndims=len(shape), eps=_eps("layer_norm", eps))


def as_normalized_shape(owner: str, shape: Any) -> tuple[int, ...]:
    """A normalized shape (an int or a sequence of ints, each >= 1) as a tuple.

    Examples
    --------
    >>> as_normalized_shape("LayerNorm", 4), as_normalized_shape("LayerNorm", [2, 3])
    ((4,), (2, 3))
    """
    if isinstance(shape, Sequence) and not isinstance(shape, str):
        return tuple(integer(owner, f"normalized_shape[{i}]", n, minimum=1) for i, n in enumerate(shape))
    return (integer(owner, "normalized_shape", shape, minimum=1),)
