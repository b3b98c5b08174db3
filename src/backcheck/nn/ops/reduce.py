"""Reductions over axes: sum, mean, max, min and logsumexp (all with ``keepdims``).

Max and min split the gradient *evenly among ties* (like ``torch.amax``/``torch.amin``): if ``k``
entries share the extreme value, each receives ``grad / k``.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from backcheck.nn.autograd import Context
from backcheck.nn.errors import ArgumentError, ShapeError
from backcheck.nn.ops import elementwise as ew
from backcheck.nn.tensor import Function, Tensor, as_tensor
from backcheck.nn.validate import integer, is_int

__all__ = ["sum", "mean", "max", "min", "logsumexp", "var", "std", "kept_max"]

Axis = int | Sequence[int] | None


def _axis_tuple(op: str, axis: Any) -> tuple[int, ...]:
    """``axis`` as a tuple of ints, or an ArgumentError naming the op and the value given."""
    if is_int(axis):
        return (int(axis),)
    if isinstance(axis, tuple | list) and all(is_int(ax) for ax in axis):
        return tuple(int(ax) for ax in axis)
    allowed = "an int, a tuple of ints or None"
    raise ArgumentError(
        f"{op}: axis must be {allowed}, got {axis!r}",
        "e.g. axis=1, axis=-1 or axis=(0, 2); float axes such as 1.0 are not accepted",
        argument="axis",
        allowed=allowed,
        value=axis,
    )


def _norm_axis(op: str, axis: Axis, ndim: int) -> tuple[int, ...]:
    """The reduced axes, sorted; a 0-d input takes axis 0 or -1 (as torch), which reduce nothing: ``()``."""
    if axis is None:
        return tuple(range(ndim))
    axes = _axis_tuple(op, axis)
    out = []
    for ax in axes:
        if not -builtins.max(ndim, 1) <= ax < builtins.max(ndim, 1):
            raise ShapeError(
                f"{op}: axis {ax} is out of range for an input with {ndim} dimensions",
                f"use axes in [{-ndim}, {ndim - 1}]" if ndim else "a 0-d input takes axis 0 or -1 (as torch)",
            )
        out.append(int(ax) % builtins.max(ndim, 1))
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: repeated axis in {axes}")
    return tuple(sorted(out)) if ndim else ()


def kept_max(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """The maximum over ``axes`` with the axes kept, as a shift before ``exp``: 0 for slices that are
    empty or all -inf (their exp is 0 whatever the shift), so no ``-inf - -inf`` appears."""
    if any(x.shape[ax] == 0 for ax in axes):
        return np.zeros([1 if i in axes else n for i, n in enumerate(x.shape)], dtype=x.dtype)
    m = x.max(axis=axes, keepdims=True)
    return np.where(m == -np.inf, 0, m)


def _expand(grad: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """Reinsert reduced axes as size-1 axes so ``grad`` broadcasts against the input."""
    return grad if keepdims or not axes else np.expand_dims(grad, axes)


class Sum(Function):
    name = "sum"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
        ctx.shape, ctx.axes, ctx.keepdims = x.shape, axes, keepdims
        return np.asarray(x.sum(axis=axes, keepdims=keepdims))

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        return (np.broadcast_to(_expand(grad, ctx.axes, ctx.keepdims), ctx.shape),)


class Mean(Function):
    name = "mean"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
        count = 1
        for ax in axes:
            count *= x.shape[ax]
        ctx.shape, ctx.axes, ctx.keepdims, ctx.count = x.shape, axes, keepdims, count
        if count == 0:  # the mean of nothing is NaN, said without numpy's warning
            total = np.asarray(x.sum(axis=axes, keepdims=keepdims))
            return np.full(total.shape, np.nan, dtype=x.dtype if x.dtype.kind == "f" else np.float64)
        with np.errstate(over="ignore"):
            out = np.asarray(x.mean(axis=axes, keepdims=keepdims))
            if out.dtype.kind == "f" and np.isinf(out).any():
                # the sum overflowed; the mean of finite values is within range, so sum them pre-divided
                out = np.asarray((x / count).sum(axis=axes, keepdims=keepdims))
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        g = _expand(grad, ctx.axes, ctx.keepdims) / ctx.count
        return (np.broadcast_to(g, ctx.shape),)


class _Extreme(Function):
    """Shared forward/backward of Max and Min: gradient split evenly among ties."""

    reducer: Any = staticmethod(np.max)

    @classmethod
    def _forward(cls, ctx: Context, x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
        empty = [ax for ax in axes if x.shape[ax] == 0] if x.ndim else []
        if empty:  # as torch: other axes may be empty (the result is then empty), a reduced one may not
            raise ShapeError(
                f"{cls.name}: cannot reduce over axis {empty[0]} of length 0 (input shape {x.shape})",
                "an empty slice has no extreme value; reduce over non-empty axes only",
            )
        kept = cls.reducer(x, axis=axes, keepdims=True)
        ctx.x, ctx.kept, ctx.axes, ctx.keepdims = x, kept, axes, keepdims
        return kept if keepdims else np.asarray(kept.reshape([s for i, s in enumerate(x.shape) if i not in axes]))

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        mask = ctx.x == ctx.kept
        count = mask.sum(axis=ctx.axes, keepdims=True)
        g = _expand(grad, ctx.axes, ctx.keepdims) / count
        return (g * mask,)


class Max(_Extreme):
    name = "max"
    reducer = staticmethod(np.max)

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
        return Max._forward(ctx, x, axes, keepdims)


class Min(_Extreme):
    name = "min"
    reducer = staticmethod(np.min)

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
        return Min._forward(ctx, x, axes, keepdims)


class LogSumExp(Function):
    """``log(sum(exp(x)))`` over axes, shifted by the maximum for stability."""

    name = "logsumexp"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
        m = kept_max(x, axes)
        m = np.where(np.isfinite(m), m, 0)
        # x - m <= 0; it overflows to -inf only where exp gives the exact 0, and the log of an empty or
        # all -inf slice's sum 0 is the intended -inf (as torch)
        with np.errstate(over="ignore", divide="ignore"):
            out = np.log(np.exp(x - m).sum(axis=axes, keepdims=True)) + m
        ctx.x, ctx.out, ctx.axes, ctx.keepdims = x, out, axes, keepdims
        return out if keepdims else np.asarray(out.reshape([s for i, s in enumerate(x.shape) if i not in axes]))

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        return (_expand(grad, ctx.axes, ctx.keepdims) * np.exp(ctx.x - ctx.out),)


def sum(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Sum over ``axis`` (an int, a tuple of ints or None for all axes).

    Parameters
    ----------
    x : Tensor, any shape
    axis : int or tuple of int, optional
    keepdims : bool
        Keep the reduced axes with size 1.

    Examples
    --------
    >>> sum(Tensor(np.ones((2, 3))), axis=1).data
    array([3., 3.])
    """
    x = as_tensor(x)
    return Sum.apply(x, axes=_norm_axis("sum", axis, x.data.ndim), keepdims=keepdims)


def mean(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis``.  Example: ``mean(x, axis=0)``; shapes as :func:`sum`."""
    x = as_tensor(x)
    return Mean.apply(x, axes=_norm_axis("mean", axis, x.data.ndim), keepdims=keepdims)


def max(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Maximum over ``axis``; the gradient is split evenly among tied maxima.

    Examples
    --------
    >>> max(Tensor([[1.0, 5.0], [7.0, 2.0]]), axis=1).data
    array([5., 7.], dtype=float32)
    """
    x = as_tensor(x)
    return Max.apply(x, axes=_norm_axis("max", axis, x.data.ndim), keepdims=keepdims)


def min(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Minimum over ``axis``; the gradient is split evenly among tied minima."""
    x = as_tensor(x)
    return Min.apply(x, axes=_norm_axis("min", axis, x.data.ndim), keepdims=keepdims)


def logsumexp(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Numerically stable ``log(sum(exp(x), axis))``; its gradient is ``softmax(x)``.

    Examples
    --------
    >>> round(logsumexp(Tensor([0.0, 0.0], dtype="float64")).item(), 6)
    0.693147
    """
    x = as_tensor(x)
    return LogSumExp.apply(x, axes=_norm_axis("logsumexp", axis, x.data.ndim), keepdims=keepdims)


def var(x: Any, axis: Axis = None, correction: int = 1, keepdims: bool = False) -> Tensor:
    """Variance over ``axis``: the sum of squared deviations from the mean divided by ``n - correction``
    (``correction=1``, the unbiased estimate, is torch's default; 0 gives the population variance).

    Composed from engine ops, so its gradient is theirs. With ``n - correction <= 0`` the result is NaN
    (or inf), as torch.

    Examples
    --------
    >>> var(Tensor([1.0, 2.0, 3.0, 4.0], dtype="float64")).item(), var(Tensor([1.0, 3.0]), correction=0).item()
    (1.6666666666666667, 1.0)
    """
    x = as_tensor(x)
    axes = _norm_axis("var", axis, x.data.ndim)
    correction = integer("var", "correction", correction, minimum=0)
    count = 1
    for ax in axes:
        count *= x.data.shape[ax]
    dev = x - mean(x, axes, keepdims=True)
    total = sum(dev * dev, axes, keepdims=keepdims)
    dof = count - correction
    if dof > 0:
        return total / float(dof)
    with np.errstate(invalid="ignore"):  # no degrees of freedom: 0 * inf is NaN, as torch's 0/0
        return total * np.inf


def std(x: Any, axis: Axis = None, correction: int = 1, keepdims: bool = False) -> Tensor:
    """Standard deviation ``sqrt(var(x, axis, correction))``; see :func:`var` (torch's unbiased default).

    Examples
    --------
    >>> std(Tensor([1.0, 3.0], dtype="float64")).item()
    1.4142135623730951
    """
    return StdRoot.apply(var(x, axis, correction, keepdims))


class StdRoot(ew.Sqrt):
    """The square root that makes :func:`std` of the variance, with torch's rule where the deviation is 0: a
    gradient of 0 there (sqrt's ``g / (2 * 0)`` times the zero deviations of a constant slice is NaN). Its own
    op (the double-backward rules look ops up by exact type: sqrt's is not this one's)."""

    name = "std"

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        return (grad / np.where(ctx.out == 0, np.inf, 2 * ctx.out),)
