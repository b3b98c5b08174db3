"""Shape ops: reshape, permute, indexing, concatenate, stack, pad and broadcast_to."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from backcheck.nn.autograd import Context
from backcheck.nn.errors import ShapeError
from backcheck.nn.tensor import Function, Tensor, as_tensor
from backcheck.nn.validate import integer

__all__ = [
    "reshape",
    "permute",
    "getitem",
    "concatenate",
    "stack",
    "pad",
    "broadcast_to",
    "flatten",
    "squeeze",
    "unsqueeze",
]


class Reshape(Function):
    name = "reshape"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, shape: tuple[int, ...]) -> np.ndarray:
        ctx.in_shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ShapeError(f"reshape: cannot reshape an array of shape {x.shape} into shape {shape}") from None

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        return (grad.reshape(ctx.in_shape),)


class Permute(Function):
    name = "permute"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, axes: tuple[int, ...]) -> np.ndarray:
        # negative axes count from the end; stored non-negative so argsort inverts the permutation
        ctx.axes = _normalised_axes(axes, x.shape)
        return x.transpose(ctx.axes)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        return (grad.transpose(np.argsort(ctx.axes)),)


def _normalised_axes(axes: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """``axes`` with negative entries counted from the end; a ShapeError unless they permute ``shape``'s axes."""
    nd = len(shape)
    normal = tuple(a + nd if -nd <= a < 0 else a for a in axes)
    if sorted(normal) != list(range(nd)):
        raise ShapeError(
            f"permute: axes {axes} are not a permutation of the axes of shape {shape}",
            f"give each of the {nd} axes once, as 0..{nd - 1} or counted from the end as -{nd}..-1",
        )
    return normal


def _is_basic(index: Any) -> bool:
    """True if ``index`` selects without advanced indexing (so no element is picked twice)."""
    items = index if isinstance(index, tuple) else (index,)
    return all(
        i is None or i is Ellipsis or isinstance(i, slice | int | np.integer) and not isinstance(i, bool) for i in items
    )


class GetItem(Function):
    """``x[index]``; advanced (integer-array) indices scatter-add their gradient with ``np.add.at``."""

    name = "getitem"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, index: Any) -> np.ndarray:
        try:
            out = x[index]
        except IndexError as exc:
            raise ShapeError(f"getitem: index {index!r} is invalid for shape {x.shape}: {exc}") from None
        ctx.shape, ctx.dtype, ctx.index = x.shape, x.dtype, index
        return np.asarray(out)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        full = np.zeros(ctx.shape, dtype=ctx.dtype)
        if _is_basic(ctx.index):
            full[ctx.index] = grad
        else:
            np.add.at(full, ctx.index, grad)
        return (full,)


class Concatenate(Function):
    name = "concatenate"

    @staticmethod
    def forward(ctx: Context, *xs: np.ndarray, axis: int) -> np.ndarray:
        try:
            out = np.concatenate(xs, axis=axis)
        except (ValueError, np.exceptions.AxisError):
            raise ShapeError(
                f"concatenate: shapes {[x.shape for x in xs]} cannot be joined along axis {axis}"
            ) from None
        ax = axis % out.ndim
        ctx.axis, ctx.splits = ax, np.cumsum([x.shape[ax] for x in xs])[:-1]
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        return tuple(np.split(grad, ctx.splits, axis=ctx.axis))


class Stack(Function):
    name = "stack"

    @staticmethod
    def forward(ctx: Context, *xs: np.ndarray, axis: int) -> np.ndarray:
        try:
            out = np.stack(xs, axis=axis)
        except (ValueError, np.exceptions.AxisError):
            raise ShapeError(f"stack: shapes {[x.shape for x in xs]} cannot be stacked along axis {axis}") from None
        ctx.axis, ctx.n = axis % out.ndim, len(xs)
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        return tuple(np.take(grad, i, axis=ctx.axis) for i in range(ctx.n))


class Pad(Function):
    """Constant padding; ``pad_width`` as for ``np.pad``: one ``(before, after)`` pair per axis."""

    name = "pad"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, pad_width: tuple[tuple[int, int], ...], value: float) -> np.ndarray:
        if len(pad_width) != x.ndim:
            raise ShapeError(f"pad: {len(pad_width)} (before, after) pairs given for an input of shape {x.shape}")
        ctx.slices = tuple(slice(b, b + n) for (b, _), n in zip(pad_width, x.shape, strict=True))
        return np.pad(x, pad_width, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        return (grad[ctx.slices],)


class BroadcastTo(Function):
    name = "broadcast_to"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, shape: tuple[int, ...]) -> np.ndarray:
        try:
            return np.broadcast_to(x, shape)
        except ValueError:
            raise ShapeError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}") from None

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        return (grad,)  # the engine sums it back to the input shape


def reshape(x: Any, shape: Sequence[int]) -> Tensor:
    """The same values in a new shape (``-1`` infers one axis).

    Examples
    --------
    >>> reshape(Tensor(np.zeros(6)), (2, 3)).shape
    (2, 3)
    """
    return Reshape.apply(as_tensor(x), shape=tuple(int(s) for s in shape))


def flatten(x: Any, start_dim: int = 1) -> Tensor:
    """Collapse axes ``start_dim..`` into one: (N, C, H, W) -> (N, C*H*W) for ``start_dim=1``."""
    x = as_tensor(x)
    ndim = x.data.ndim
    start_dim = integer("flatten", "start_dim", start_dim)
    if ndim and not -ndim <= start_dim < ndim:
        raise ShapeError(
            f"flatten: start_dim {start_dim} is out of range for an input of shape {x.data.shape} ({ndim} axes)",
            "a batch axis is expected first: pass x[None] for one unbatched sample (as torch, which refuses it too)",
        )
    return Reshape.apply(x, shape=flat_shape(x.data.shape, start_dim % max(ndim, 1)))


def flat_shape(shape: tuple[int, ...], start: int) -> tuple[int, ...]:
    """``shape`` with the axes from ``start`` on collapsed into one, their product (numpy cannot infer a -1
    beside an axis of length 0: an empty batch (0, C, H, W) flattens to (0, C*H*W), as torch)."""
    return shape[:start] + (math.prod(shape[start:]),)


def unsqueeze(x: Any, axis: int) -> Tensor:
    """Insert an axis of size 1 at position ``axis`` of the result (as torch; ``-1`` appends one).

    Examples
    --------
    >>> unsqueeze(Tensor(np.zeros((2, 3))), 1).shape, unsqueeze(Tensor(np.zeros((2, 3))), -1).shape
    ((2, 1, 3), (2, 3, 1))
    """
    x = as_tensor(x)
    shape, nd = x.data.shape, x.data.ndim
    axis = integer("unsqueeze", "axis", axis)
    if not -nd - 1 <= axis <= nd:
        raise ShapeError(
            f"unsqueeze: axis {axis} is out of range for an input with {nd} dimensions",
            f"the new axis goes at a position in [{-nd - 1}, {nd}]",
        )
    at = axis % (nd + 1)
    return Reshape.apply(x, shape=shape[:at] + (1,) + shape[at:])


def squeeze(x: Any, axis: int | Sequence[int] | None = None) -> Tensor:
    """Remove axes of size 1: all of them (``axis=None``) or those among ``axis`` (as torch, an axis
    given whose size is not 1 is kept).

    Examples
    --------
    >>> squeeze(Tensor(np.zeros((2, 1, 3, 1)))).shape, squeeze(Tensor(np.zeros((2, 1, 3))), (0, 1)).shape
    ((2, 3), (2, 3))
    """
    x = as_tensor(x)
    shape, nd = x.data.shape, x.data.ndim
    if axis is None:
        axes = set(range(nd))
    else:
        given = (axis,) if not isinstance(axis, tuple | list) else tuple(axis)
        axes = {integer("squeeze", "axis", a) for a in given}
        bad = [a for a in axes if not -max(nd, 1) <= a < max(nd, 1)]
        if bad:
            raise ShapeError(
                f"squeeze: axis {bad[0]} is out of range for an input with {nd} dimensions",
                f"use axes in [{-max(nd, 1)}, {max(nd, 1) - 1}]",
            )
        axes = {a % max(nd, 1) for a in axes}
    return Reshape.apply(x, shape=tuple(n for i, n in enumerate(shape) if not (i in axes and n == 1)))


def permute(x: Any, axes: Sequence[int]) -> Tensor:
    """Reorder the axes: output axis ``i`` is input axis ``axes[i]``.

    Examples
    --------
    >>> permute(Tensor(np.zeros((2, 3, 4))), (2, 0, 1)).shape
    (4, 2, 3)
    """
    return Permute.apply(as_tensor(x), axes=tuple(int(a) for a in axes))


def getitem(x: Any, index: Any) -> Tensor:
    """``x[index]`` with numpy semantics: ints, slices, None, Ellipsis, integer or boolean arrays.

    Repeated integer indices accumulate their gradients.

    Examples
    --------
    >>> getitem(Tensor(np.arange(5.0)), np.array([0, 0, 3])).data
    array([0., 0., 3.])
    """
    return GetItem.apply(as_tensor(x), index=index_arrays(index))


def index_arrays(index: Any) -> Any:
    """An index with its tensors replaced by their arrays and a list by an array (numpy's reading of it)."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


def concatenate(xs: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis.

    Examples
    --------
    >>> concatenate([Tensor(np.zeros((2, 3))), Tensor(np.ones((1, 3)))]).shape
    (3, 3)
    """
    return Concatenate.apply(*_some("concatenate", xs), axis=integer("concatenate", "axis", axis))


def stack(xs: Sequence[Any], axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis.  Example: ``stack([a, b], axis=1)``."""
    return Stack.apply(*_some("stack", xs), axis=integer("stack", "axis", axis))


def _some(op: str, xs: Sequence[Any]) -> list[Tensor]:
    tensors = [as_tensor(x) for x in xs]
    if not tensors:
        raise ShapeError(f"{op}: needs at least one tensor, got none", "pass a non-empty list of tensors")
    return tensors


def pad(x: Any, pad_width: Sequence[tuple[int, int]] | int, value: float = 0.0) -> Tensor:
    """Pad with a constant.

    Parameters
    ----------
    x : Tensor, any shape
    pad_width : int or sequence of (before, after)
        One pair per axis, or one int for every side of every axis.
    value : float
        The fill value.

    Examples
    --------
    >>> pad(Tensor(np.ones((2, 2))), ((1, 1), (0, 2))).shape
    (4, 4)
    """
    x = as_tensor(x)
    if not isinstance(pad_width, Sequence):
        pad_width = [(pad_width, pad_width)] * x.data.ndim
    pw = tuple(
        (integer("pad", f"pad_width[{i}]", b, minimum=0), integer("pad", f"pad_width[{i}]", a, minimum=0))
        for i, (b, a) in enumerate(pad_width)
    )
    return Pad.apply(x, pad_width=pw, value=value)


def broadcast_to(x: Any, shape: Sequence[int]) -> Tensor:
    """Broadcast to ``shape`` (a read-only view); the gradient is summed back."""
    return BroadcastTo.apply(as_tensor(x), shape=tuple(shape))
