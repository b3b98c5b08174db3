"""Gradients that are themselves differentiable (double backward), for the ops that have a tensor rule.

:meth:`Tensor.backward` runs each op's numpy ``backward``; that is fast, but its result carries no graph.
:func:`grad` walks the same graph and runs, per op, a *tensor rule*: the same local gradient written with
engine ops, so the gradient it returns can be differentiated again (Hessian-vector products, gradient
penalties). Ops without a rule raise :class:`DoubleBackwardError` naming the op.

Each rule sits here beside the others rather than in the op's file, so the first-order engine stays as it
is; ``TENSOR_RULES`` lists the ops that support double backward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from backcheck.nn.autograd import Context, check_versions, topo_order
from backcheck.nn.errors import ArgumentError, GraphError, ShapeError
from backcheck.nn.ops import elementwise as ew
from backcheck.nn.ops import linalg, reduce, shape
from backcheck.nn.tensor import Function, Tensor


class DoubleBackwardError(GraphError):
    """An op on the path has no tensor rule, so its gradient cannot be differentiated again."""


Rule = Callable[[Context, Tensor], tuple[Tensor | None, ...]]


def _parents(ctx: Context) -> tuple[Tensor, ...]:
    return ctx.parents


def _expand(g: Tensor, ctx: Context) -> Tensor:
    """A reduction's output gradient broadcast back over the reduced axes."""
    full = list(ctx.shape)
    kept = [1 if i in ctx.axes else n for i, n in enumerate(full)] if not ctx.keepdims else list(g.shape)
    return g.reshape(tuple(kept)) * Tensor(np.ones(ctx.shape, dtype=g.dtype))


def _matmul(ctx: Context, g: Tensor) -> tuple[Tensor | None, ...]:
    a, b = _parents(ctx)
    if a.ndim != 2 or b.ndim != 2:
        raise DoubleBackwardError(f"matmul: double backward supports 2-D operands, got {a.shape} and {b.shape}")
    return g @ b.T, a.T @ g


def _pow(ctx: Context, g: Tensor) -> tuple[Tensor | None, ...]:
    a, b = _parents(ctx)
    # 0 where Pow.backward (and torch) give 0: for b == 0 the exponent b - 1 becomes 0 (so 0 * a**0, not
    # 0 * 0**-1), and for the exponent's gradient at a == 0, b >= 0 the log's argument becomes 1
    b_zero = Tensor((b.data == 0).astype(g.dtype))
    a_zero = Tensor(((a.data == 0) & (b.data >= 0)).astype(g.dtype))
    ga = g * b * a ** (b - 1.0 + b_zero)
    gb = g * (a**b) * (a + a_zero).log() if b.requires_grad else None
    return ga, gb


def _std_root(ctx: Context, g: Tensor) -> tuple[Tensor | None, ...]:
    """sqrt's rule with a gradient of 0 where the deviation is 0 (the mask is constant: no derivative of its own)."""
    zero = ctx.out == 0
    at_zero, elsewhere = Tensor(zero.astype(g.dtype)), Tensor((~zero).astype(g.dtype))
    return (g * elsewhere / (reduce.StdRoot.apply(_parents(ctx)[0]) * 2.0 + at_zero),)


TENSOR_RULES: dict[type[Function], Rule] = {
    ew.Add: lambda ctx, g: (g, g),
    ew.Sub: lambda ctx, g: (g, -g),
    ew.Mul: lambda ctx, g: (g * _parents(ctx)[1], g * _parents(ctx)[0]),
    ew.Div: lambda ctx, g: (
        g / _parents(ctx)[1],
        -g * _parents(ctx)[0] / (_parents(ctx)[1] * _parents(ctx)[1]),
    ),
    ew.Neg: lambda ctx, g: (-g,),
    ew.Pow: _pow,
    ew.Exp: lambda ctx, g: (g * _parents(ctx)[0].exp(),),
    ew.Log: lambda ctx, g: (g / _parents(ctx)[0],),
    ew.Sqrt: lambda ctx, g: (g / (_parents(ctx)[0].sqrt() * 2.0),),
    reduce.StdRoot: _std_root,
    ew.Tanh: lambda ctx, g: (g * (1.0 - _parents(ctx)[0].tanh() ** 2),),
    ew.Sigmoid: lambda ctx, g: (g * _parents(ctx)[0].sigmoid() * (1.0 - _parents(ctx)[0].sigmoid()),),
    # the mask is piecewise constant in the input: its own derivative is zero wherever it exists
    ew.Relu: lambda ctx, g: (g * Tensor((_parents(ctx)[0].data > 0).astype(g.dtype)),),
    reduce.Sum: lambda ctx, g: (_expand(g, ctx),),
    reduce.Mean: lambda ctx, g: (_expand(g, ctx) / float(ctx.count),),
    linalg.MatMul: _matmul,
    shape.Reshape: lambda ctx, g: (g.reshape(ctx.in_shape),),
    shape.Permute: lambda ctx, g: (shape.permute(g, tuple(int(i) for i in np.argsort(ctx.axes))),),
}


def _unbroadcast(g: Tensor, target: tuple[int, ...]) -> Tensor:
    extra = g.ndim - len(target)
    axes = tuple(range(extra)) + tuple(i + extra for i, n in enumerate(target) if n == 1 and g.shape[i + extra] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(target) if g.shape != target else g


def grad(output: Tensor, inputs: Sequence[Tensor], grad_output: Any = None) -> list[Tensor]:
    """Gradients of ``output`` with respect to ``inputs``, as tensors with a graph of their own.

    Parameters
    ----------
    output : Tensor
        What to differentiate; it must have one element unless ``grad_output`` is given.
    inputs : sequence of Tensor
        Tensors that require grad.
    grad_output : Tensor or array_like, optional
        The upstream gradient (like ``output``); a Tensor that requires grad is differentiated through too.

    Returns
    -------
    list of Tensor
        One gradient per input (zeros for inputs the output does not depend on).

    Examples
    --------
    >>> import numpy as np
    >>> from backcheck.nn import Tensor
    >>> from backcheck.nn.higher import grad
    >>> x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    >>> (g,) = grad((x * x * x).sum(), [x])          # 3 x**2, with a graph
    >>> (h,) = grad(g.sum(), [x])                    # 6 x
    >>> h.numpy()
    array([ 6., 12.])
    """
    if not isinstance(output, Tensor):
        raise ArgumentError(
            f"grad: output must be a Tensor, got {type(output).__name__}", argument="output", allowed="a Tensor"
        )
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor) or not x.requires_grad:
            raise ArgumentError(
                f"grad: inputs[{i}] must be a Tensor that requires grad, got {x!r}",
                "make the inputs with requires_grad=True before computing the output from them",
                argument=f"inputs[{i}]",
                allowed="a Tensor that requires grad",
                value=x,
            )
    if grad_output is None:
        if output.data.size != 1:
            raise GraphError(f"grad: output has shape {output.shape}; pass grad_output for a non-scalar output")
        grad_output = Tensor(np.ones_like(output.data))
    elif not isinstance(grad_output, Tensor):
        grad_output = Tensor(np.asarray(grad_output, dtype=output.dtype))
    if grad_output.shape != output.shape:
        raise ShapeError(f"grad: grad_output has shape {grad_output.shape} but the output has shape {output.shape}")
    grads: dict[int, Tensor] = {id(output): grad_output}
    for node in topo_order(output):
        g = grads.get(id(node))
        ctx = node._ctx
        if g is None or ctx is None:
            continue
        if ctx.freed:
            raise GraphError(
                f"grad: the graph was freed by an earlier backward (the saved state of op '{ctx.op.name}' is "
                "gone), so it cannot be walked again",
                "pass retain_graph=True to that backward, or compute the output again before calling grad",
            )
        check_versions(ctx)  # (a rule reads its inputs' data as they are now: refused where written since)
        rule = TENSOR_RULES.get(ctx.op)
        if rule is None:
            raise DoubleBackwardError(
                f"{ctx.op.name}: no tensor rule, so its gradient cannot be differentiated again; ops with one: "
                f"{sorted(op.name for op in TENSOR_RULES)}"
            )
        for parent, pg in zip(ctx.parents, rule(ctx, g), strict=True):
            if pg is None or not parent.requires_grad:
                continue
            pg = _unbroadcast(pg, parent.shape)
            grads[id(parent)] = grads[id(parent)] + pg if id(parent) in grads else pg
    # each in its input's dtype, as backward() leaves it (a float32 input beside a float64 tensor)
    out = [grads.get(id(x), Tensor(np.zeros_like(x.data))) for x in inputs]
    return [g if g.dtype == x.dtype else g.astype(x.dtype) for g, x in zip(out, inputs, strict=True)]
