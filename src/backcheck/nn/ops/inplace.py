"""Tensor's in-place operators, as torch's: ``t += x``, ``t -= x``, ``t *= x``, ``t /= x`` and ``t[index] = v``.

Where no graph is recorded (under :func:`~backcheck.nn.autograd.no_grad`, or when neither operand requires grad)
the new values are written into ``t.data`` itself, so every holder of ``t`` (a module, an optimizer, the loop
variable of ``for p in model.parameters(): p -= lr * p.grad``) sees them, and the write is counted
(:func:`~backcheck.nn.autograd.modified`): a graph that read ``t`` before refuses to backward through the new
values. Where a graph is recorded, ``t`` becomes the output of the op (a new array in ``t.data``; the old
values stay with the graph), and a graph that read ``t`` before refuses to backward, as above.

Refused with :class:`~backcheck.nn.errors.GraphError`, as torch refuses them: a leaf that requires grad
modified while grad mode is on (write the update under ``no_grad()``), and a write under ``no_grad()`` into a
tensor whose own op saved its values for backward (``y = x.exp()`` then ``y += 1``). A result that the
tensor's dtype cannot hold (``int_tensor /= 2``) is a :class:`~backcheck.nn.errors.DTypeError`; one of another
shape (``t += x`` broadcasting ``t`` to a larger shape) a :class:`~backcheck.nn.errors.ShapeError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from backcheck.nn.autograd import GRAD_MODE, Context, modified, no_grad
from backcheck.nn.errors import DTypeError, GraphError, ShapeError
from backcheck.nn.ops import elementwise
from backcheck.nn.ops.shape import index_arrays
from backcheck.nn.tensor import Function, Tensor, as_tensor

__all__ = ["update", "setitem"]

_OPS: dict[str, tuple[str, Callable[[Any, Any], Tensor]]] = {
    "add": ("+=", elementwise.add),
    "sub": ("-=", elementwise.sub),
    "mul": ("*=", elementwise.mul),
    "div": ("/=", elementwise.div),
}


class SetItem(Function):
    """``a`` with ``a[index] = b``; the gradient of ``a`` is zero where it was overwritten."""

    name = "setitem"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray, *, index: Any) -> np.ndarray:
        out = a.copy()
        _assign(out, index, b)
        ctx.index, ctx.b_ndim = index, b.ndim
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        ga = None
        if ctx.needs_input_grad[0]:
            ga = grad.copy()
            ga[ctx.index] = 0
        gb = None
        if ctx.needs_input_grad[1]:
            gb = np.asarray(grad[ctx.index])
            if gb.ndim < ctx.b_ndim:  # numpy drops the value's leading axes of size 1
                gb = gb.reshape((1,) * (ctx.b_ndim - gb.ndim) + gb.shape)
        return ga, gb


def _assign(out: np.ndarray, index: Any, values: Any) -> None:
    try:
        out[index] = values
    except IndexError as exc:
        raise ShapeError(f"setitem: index {index!r} is invalid for shape {out.shape}: {exc}") from None
    except ValueError as exc:
        shape = np.shape(values)
        raise ShapeError(f"setitem: a value of shape {shape} cannot be written into t[{index!r}]: {exc}") from None


def _records(t: Tensor, other: Any) -> bool:
    return GRAD_MODE.enabled and (t.requires_grad or (isinstance(other, Tensor) and other.requires_grad))


def _refuse_grad_leaf(t: Tensor, what: str) -> None:
    if GRAD_MODE.enabled and t.requires_grad and t._ctx is None:
        raise GraphError(
            f"{what}: a leaf tensor that requires grad (shape {t.data.shape}) cannot be modified in place while "
            "grad mode records a graph (torch refuses it too)",
            "update parameters under `with nn.no_grad():` (e.g. `p -= lr * p.grad`), or use an optimizer; "
            "write `w = w + x` for a new tensor",
        )


def _check_writable(t: Tensor, what: str) -> None:
    """Refuse a write that would change what a recorded graph saved (by ``t``'s op, or by the op of a tensor up
    the graph whose array ``t`` is a view of: ``y.reshape(3)`` written into changes ``y``), or into a read-only
    array."""
    for held in _views_up(t):
        ctx = held._ctx
        if ctx is None or ctx.freed:
            continue
        saved = [v for v in ctx.saved().values() if isinstance(v, np.ndarray)]
        if any(np.may_share_memory(v, t.data) for v in saved):
            raise GraphError(
                f"{what}: the tensor (shape {t.data.shape}) "
                + ("was" if held is t else f"views a tensor (shape {held.data.shape}) that was")
                + f" saved by its op '{ctx.op.name}' for backward; writing into it would change the gradient that "
                "backward computes (torch refuses it too)",
                "write `y = y + x` (a new tensor) or modify a copy: `y = y.detach()` then `y += x`",
            )
    if not t.data.flags.writeable:
        raise GraphError(
            f"{what}: the tensor's array (shape {t.data.shape}) is read-only",
            "make a writable copy first: `t = Tensor(t.data.copy())`",
        )


def _become(t: Tensor, make: Callable[[Tensor], Tensor], what: str) -> Tensor:
    """Record the op on a stand-in for ``t``'s old value, then make ``t`` its output."""
    old = Tensor.__new__(Tensor)
    old.data, old.grad, old.requires_grad, old._ctx = t.data, None, t.requires_grad, t._ctx
    # as torch: hooks registered so far see the gradient of the old value; retain_grad's follows the tensor
    hooks = t._hooks or []
    kept = [h for h in hooks if getattr(h, "retains_grad", False)]
    old._hooks, old.name, old._version = [h for h in hooks if h not in kept] or None, t.name, t._version
    out = make(old)
    _check_result(t, out.data, what)
    if out.data.dtype != t.data.dtype:
        out = out.astype(t.data.dtype)
    t.data, t._ctx, t.requires_grad, t._hooks = out.data, out._ctx, out.requires_grad, kept or None
    modified(t)
    return t


def _check_result(t: Tensor, result: np.ndarray, what: str) -> None:
    if result.shape != t.data.shape:
        raise ShapeError(
            f"{what}: the result has shape {result.shape}, the tensor written into has shape {t.data.shape}",
            "an in-place operator cannot change the tensor's shape; write `t = t + x` for a new tensor",
        )
    if not np.can_cast(result.dtype, t.data.dtype, casting="same_kind"):
        raise DTypeError(
            f"{what}: the result's dtype {result.dtype} cannot be stored in a tensor of dtype {t.data.dtype}",
            "write `t = t / x` for a new tensor, or convert the tensor first: `t = t.astype(np.float32)`",
        )


def update(t: Tensor, other: Any, op: str) -> Tensor:
    """``t <op>= other`` in place (the ``__iadd__``, ``__isub__``, ``__imul__`` and ``__itruediv__`` of Tensor)."""
    symbol, fn = _OPS[op]
    what = f"{symbol} (in place {op})"
    _refuse_grad_leaf(t, what)
    if _records(t, other):
        return _become(t, lambda old: fn(old, old if other is t else other), what)
    with no_grad():
        result = fn(t, other).data
    _check_result(t, result, what)
    _check_writable(t, what)
    np.copyto(t.data, result, casting="same_kind")
    _count_write(t)
    return t


def _count_write(t: Tensor) -> None:
    """:func:`modified` for ``t`` and for the tensors up its graph whose arrays it is a view of (a reshape, a
    transpose, basic indexing share the input's memory: the write changed them too)."""
    for held in _views_up(t):
        modified(held)


def _views_up(t: Tensor) -> Iterator[Tensor]:
    """``t``, then the tensors up its graph whose arrays share its memory (each once)."""
    seen, stack = {id(t)}, [t]
    yield t
    while stack:
        ctx = stack.pop()._ctx
        for parent in ctx.parents if ctx is not None else ():
            if id(parent) not in seen and np.may_share_memory(parent.data, t.data):
                seen.add(id(parent))
                yield parent
                stack.append(parent)


def setitem(t: Tensor, index: Any, value: Any) -> None:
    """``t[index] = value`` in place (the ``__setitem__`` of Tensor)."""
    index = index_arrays(index)
    what = "setitem (t[index] = value)"
    _refuse_grad_leaf(t, what)
    if _records(t, value):
        _become(t, lambda old: SetItem.apply(old, as_tensor(value, like=old), index=index), what)
        return
    _check_writable(t, what)
    _assign(t.data, index, value.data if isinstance(value, Tensor) else value)
    _count_write(t)
