"""Matrix products: ``matmul`` (batched, numpy semantics) and the fused affine map ``linear``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from backcheck.nn.autograd import Context
from backcheck.nn.errors import ShapeError
from backcheck.nn.ops.elementwise import promoted
from backcheck.nn.tensor import Function, Tensor, as_tensor
from backcheck.nn.validate import float_array

__all__ = ["matmul", "linear"]


class MatMul(Function):
    """``a @ b`` with numpy's rules: 1-D operands are promoted, leading (batch) axes broadcast."""

    name = "matmul"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.ndim == 0 or b.ndim == 0:
            raise ShapeError(f"matmul: operands must have at least one dimension, got shapes {a.shape} and {b.shape}")
        ka = a.shape[-1]
        kb = b.shape[-2] if b.ndim > 1 else b.shape[0]
        if ka != kb:
            raise ShapeError(
                f"matmul: shapes {a.shape} and {b.shape} are not aligned: "
                f"{ka} (last axis of the first) != {kb} ({'second-to-last' if b.ndim > 1 else 'only'} "
                f"axis of the second)",
                "a transpose is often missing, e.g. a @ b.T",
            )
        try:
            out = np.matmul(a, b)
        except ValueError:
            raise ShapeError(f"matmul: batch axes of shapes {a.shape} and {b.shape} cannot be broadcast") from None
        ctx.a, ctx.b = a, b
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        a, b = ctx.a, ctx.b
        need_a, need_b = ctx.needs_input_grad
        if a.ndim == 1 and b.ndim == 1:
            return (grad * b if need_a else None), (grad * a if need_b else None)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = grad
        if a.ndim == 1:
            g2 = g2[..., None, :]
        if b.ndim == 1:
            g2 = g2[..., None]
        ga = gb = None
        if need_a:
            ga = np.matmul(g2, np.swapaxes(b2, -1, -2))
            if a.ndim == 1:
                ga = ga[..., 0, :]
        if need_b:
            gb = np.matmul(np.swapaxes(a2, -1, -2), g2)
            if b.ndim == 1:
                gb = gb[..., 0]
        return ga, gb


def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product with numpy semantics (batched over leading axes).

    Parameters
    ----------
    a : Tensor, shape (..., n, k) or (k,)
    b : Tensor, shape (..., k, m) or (k,)

    Returns
    -------
    Tensor
        Shape ``(..., n, m)`` (1-D operands drop their axis).

    Raises
    ------
    ShapeError
        If the contracted axes differ or the batch axes do not broadcast; the message names
        ``matmul`` and both shapes.

    Examples
    --------
    >>> matmul(Tensor(np.ones((2, 3))), Tensor(np.ones((3, 4)))).shape
    (2, 4)
    """
    return MatMul.apply(*promoted(as_tensor(a), as_tensor(b)))  # (an integer operand: the other's float dtype)


class Linear(Function):
    """Fused ``x @ w.T + b`` for ``x`` of shape (..., in), ``w`` of shape (out, in), ``b`` (out,)."""

    name = "linear"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        if w.ndim != 2 or x.ndim == 0 or x.shape[-1] != w.shape[1]:
            raise ShapeError(
                f"linear: input of shape {x.shape} does not match weight of shape {w.shape} "
                f"(expected (..., {w.shape[-1] if w.ndim else '?'}) input and a 2-D (out, in) weight)",
                "the input's last axis must have in_features elements; flatten images first, e.g. nn.Flatten()",
            )
        if b is not None and b.shape != (w.shape[0],):
            raise ShapeError(f"linear: bias of shape {b.shape} does not match weight of shape {w.shape}")
        for name, arr in (("input", x), ("weight", w), ("bias", b)):
            if arr is not None and arr.dtype.kind != "f":
                float_array("linear", name, arr)
        ctx.x, ctx.w = x, w
        out = x @ w.T
        if b is not None:
            if b.dtype == out.dtype:
                out += b
            else:
                out = out + b
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        x, w = ctx.x, ctx.w
        needs = ctx.needs_input_grad
        rows = math.prod(grad.shape[:-1])  # (not -1, which numpy cannot infer beside 0 features)
        g2 = grad.reshape(rows, grad.shape[-1])
        gx = (grad @ w) if needs[0] else None
        gw = (g2.T @ x.reshape(rows, x.shape[-1])) if needs[1] else None
        if len(needs) == 2:
            return gx, gw
        gb = (np.ones(g2.shape[0], dtype=g2.dtype) @ g2) if needs[2] else None
        return gx, gw, gb


def linear(x: Any, weight: Any, bias: Any = None) -> Tensor:
    """Affine map ``x @ weight.T + bias`` (one fused op, as ``torch.nn.functional.linear``).

    Parameters
    ----------
    x : Tensor, shape (..., in_features)
    weight : Tensor, shape (out_features, in_features)
    bias : Tensor, shape (out_features,), optional

    Returns
    -------
    Tensor, shape (..., out_features)

    Examples
    --------
    >>> linear(Tensor(np.ones((4, 3))), Tensor(np.ones((2, 3)))).shape
    (4, 2)
    """
    if bias is None:
        return Linear.apply(as_tensor(x), as_tensor(weight))
    return Linear.apply(as_tensor(x), as_tensor(weight), as_tensor(bias))
