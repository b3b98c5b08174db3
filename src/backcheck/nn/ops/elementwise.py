"""Elementwise ops: arithmetic with broadcasting, unary maths and activations.

Each op keeps its forward and backward side by side.  Binary ops may return gradients in the
broadcast output shape: the engine sums them back to each input's shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from backcheck.nn.autograd import Context
from backcheck.nn.dtypes import default_dtype, weak_to
from backcheck.nn.errors import DTypeError, ShapeError
from backcheck.nn.tensor import Function, Tensor, as_tensor
from backcheck.nn.validate import choice, number

__all__ = [
    "add",
    "sub",
    "mul",
    "div",
    "neg",
    "pow",
    "exp",
    "log",
    "sqrt",
    "abs",
    "tanh",
    "sigmoid",
    "relu",
    "leaky_relu",
    "gelu",
    "softplus",
    "clip",
    "where",
    "cast",
    "erf",
]

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_C = 0.044715


def _broadcast(op: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        return fn(a, b)
    except ValueError as exc:
        if "negative integer powers" in str(exc):  # (numpy refuses int ** negative int, as torch does)
            raise DTypeError(
                f"{op}: an integer tensor to a negative integer power",
                "make the base a float tensor (x.astype(np.float64)) or the exponent a float",
            ) from None
        if "broadcast" not in str(exc):
            raise
        raise ShapeError(
            f"{op}: cannot broadcast shapes {a.shape} and {b.shape}",
            "trailing axes must be equal or 1 (numpy broadcasting); reshape one operand, e.g. b.reshape(-1, 1)",
        ) from None


def _pair(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    """The operands of a binary op as tensors, promoted as torch promotes them where numpy would widen a float32
    computation (:func:`backcheck.nn.dtypes.weak_to`): an integer tensor or a 0-d float tensor is cast to the
    other's float dtype, differentiably."""
    if isinstance(a, Tensor):
        b = as_tensor(b, like=a)
    else:
        b = as_tensor(b)
        a = as_tensor(a, like=b)
    return promoted(a, b)


def promoted(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Two tensors in one dtype where :func:`backcheck.nn.dtypes.weak_to` says so (an integer tensor, or a 0-d
    float one, cast to the other's float dtype, differentiably); as they are otherwise."""
    if a.data.dtype != b.data.dtype:
        to_a, to_b = weak_to(a.data, b.data), weak_to(b.data, a.data)
        a = a if to_a is None else a.astype(to_a)
        b = b if to_b is None else b.astype(to_b)
    return a, b


# ---------------------------------------------------------------------- arithmetic
class Add(Function):
    name = "add"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return _broadcast("add", np.add, a, b)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        return grad, grad


class Sub(Function):
    name = "sub"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return _broadcast("sub", np.subtract, a, b)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        return grad, (-grad if ctx.needs_input_grad[1] else None)


class Mul(Function):
    name = "mul"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.a, ctx.b = a, b
        return _broadcast("mul", np.multiply, a, b)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        need_a, need_b = ctx.needs_input_grad
        return (grad * ctx.b if need_a else None), (grad * ctx.a if need_b else None)


class Div(Function):
    name = "div"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.a, ctx.b = a, b
        return _broadcast("div", np.divide, a, b)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        ga = grad / ctx.b
        gb = -ga * ctx.a / ctx.b if ctx.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    name = "neg"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        return -a

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        return (-grad,)


class Pow(Function):
    """``a ** b``; the gradient w.r.t. ``b`` is ``out * log(a)`` (needs ``a > 0``; 0 at ``a = 0``, ``b >= 0``)."""

    name = "pow"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = _broadcast("pow", np.power, a, b)
        ctx.a, ctx.b, ctx.out = a, b, out
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        a, b = ctx.a, ctx.b
        need_a, need_b = ctx.needs_input_grad
        # as torch: d(a**0)/da is 0 even at a = 0 (not 0 * 0**-1), and d(a**b)/db is 0 at a = 0, b >= 0
        ga = np.where(b == 0, 0, grad * b * np.power(a, b - 1)) if need_a else None
        gb = np.where((a == 0) & (b >= 0), 0, grad * ctx.out * np.log(a)) if need_b else None
        return ga, gb


def add(a: Any, b: Any) -> Tensor:
    """Elementwise ``a + b`` with numpy broadcasting.

    Parameters
    ----------
    a, b : Tensor or array_like
        Operands of broadcast-compatible shapes.

    Returns
    -------
    Tensor
        Shape ``broadcast(a.shape, b.shape)``.

    Examples
    --------
    >>> add(Tensor([1.0, 2.0]), 1.0).data
    array([2., 3.], dtype=float32)
    """
    return Add.apply(*_pair(a, b))


def sub(a: Any, b: Any) -> Tensor:
    """Elementwise ``a - b`` with broadcasting.  Example: ``sub(x, 1.0)``."""
    return Sub.apply(*_pair(a, b))


def mul(a: Any, b: Any) -> Tensor:
    """Elementwise ``a * b`` with broadcasting.  Example: ``mul(x, x)``."""
    return Mul.apply(*_pair(a, b))


def div(a: Any, b: Any) -> Tensor:
    """Elementwise ``a / b`` with broadcasting.  Example: ``div(x, 2.0)``."""
    a, b = _pair(a, b)
    if a.data.dtype.kind != "f" and b.data.dtype.kind != "f":  # int / int: the default float dtype, as torch
        a, b = _floating(a), _floating(b)
    return Div.apply(a, b)


def neg(a: Any) -> Tensor:
    """Elementwise ``-a``."""
    return Neg.apply(as_tensor(a))


def pow(a: Any, b: Any) -> Tensor:
    """Elementwise ``a ** b`` with broadcasting.

    The gradient w.r.t. an exponent that requires grad is ``a**b * log(a)``, defined for ``a > 0``.

    Examples
    --------
    >>> pow(Tensor([2.0, 3.0]), 2).data
    array([4., 9.], dtype=float32)
    """
    return Pow.apply(*_pair(a, b))


# ---------------------------------------------------------------------- unary maths
class Exp(Function):
    name = "exp"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):  # exp above the float maximum is inf, as torch (no warning)
            ctx.out = np.exp(x)
        return ctx.out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        return (grad * ctx.out,)


class Log(Function):
    name = "log"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.x = x
        with np.errstate(divide="ignore"):  # log(0) is -inf, as torch; log of a negative still warns
            return np.log(x)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        return (grad / ctx.x,)


class Sqrt(Function):
    name = "sqrt"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.out = np.sqrt(x)
        return ctx.out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        return (grad / (2 * ctx.out),)


class Abs(Function):
    """``|x|``; the gradient at 0 is 0 (``sign(0)``), like torch."""

    name = "abs"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.x = x
        return np.abs(x)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        return (grad * np.sign(ctx.x),)


class Tanh(Function):
    name = "tanh"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.out = np.tanh(x)
        return ctx.out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        out = ctx.out
        return (grad * (1 - out * out),)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic sigmoid to full relative precision on both sides, without overflow.

    ``1 / (1 + e)`` for ``x >= 0`` and ``e / (1 + e)`` for ``x < 0``, with ``e = exp(-|x|)`` in ``(0, 1]``:
    nothing cancels, so sigmoid(-20) in float32 is 2.06e-9 (as torch), not 0.
    """
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1, e) / (1 + e)


class Sigmoid(Function):
    name = "sigmoid"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.out = _sigmoid(x)
        return ctx.out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        out = ctx.out
        return (grad * out * (1 - out),)


class Relu(Function):
    """``max(x, 0)``; the gradient is ``grad * (out > 0)`` (0 at 0, like torch)."""

    name = "relu"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        out = np.maximum(x, 0)
        ctx.out = out
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        return (grad * (ctx.out > 0),)


class LeakyRelu(Function):
    name = "leaky_relu"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, slope: float) -> np.ndarray:
        # slope where x <= 0, else 1; multiplying by it is much faster than np.where
        factor = (x > 0).astype(x.dtype)
        factor *= 1 - slope
        factor += slope
        ctx.factor = factor
        return x * factor

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        return (grad * ctx.factor,)


def _erf_array(x: np.ndarray) -> np.ndarray:
    try:
        from scipy.special import erf as _scipy_erf  # optional, vectorized
    except ImportError:  # pragma: no cover - scipy is optional
        return np.frompyfunc(math.erf, 1, 1)(x).astype(x.dtype)
    return _scipy_erf(x).astype(x.dtype, copy=False)


def erf(x: np.ndarray) -> np.ndarray:
    """The error function of a numpy array, to float64 accuracy.

    Uses ``scipy.special.erf`` when scipy is installed, else ``math.erf`` elementwise (slower).
    """
    return _erf_array(np.asarray(x))


class Gelu(Function):
    """GELU: ``x * Phi(x)`` exactly (``approximate='none'``) or with the tanh approximation."""

    name = "gelu"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, approximate: str) -> np.ndarray:
        ctx.x, ctx.approximate = x, approximate
        if approximate == "tanh":
            with np.errstate(over="ignore"):  # x**3 overflows only where tanh is exactly +-1 anyway
                t = np.tanh(_SQRT_2_OVER_PI * (x + _GELU_C * x**3))
            ctx.t = t
            return 0.5 * x * (1 + t)
        cdf = 0.5 * (1 + _erf_array(x * _INV_SQRT_2))
        ctx.cdf = cdf
        return x * cdf

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        x = ctx.x
        if ctx.approximate == "tanh":
            t = ctx.t
            sech2 = 1 - t * t
            dinner = _SQRT_2_OVER_PI * (1 + 3 * _GELU_C * x * x)
            # where tanh saturated, sech^2 is 0 and the term vanishes (x * dinner may be inf there)
            return (grad * (0.5 * (1 + t) + np.where(sech2 > 0, 0.5 * x * sech2 * dinner, 0)),)
        pdf = _INV_SQRT_2PI * np.exp(-0.5 * x * x)
        return (grad * (ctx.cdf + x * pdf),)


class Softplus(Function):
    """``log(1 + exp(beta x)) / beta``, and ``x`` where ``beta x > threshold`` (torch semantics)."""

    name = "softplus"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, beta: float, threshold: float) -> np.ndarray:
        with np.errstate(over="ignore"):  # beta * x overflows only far above the threshold (linear there)
            bx = x * beta
        linear = bx > threshold
        ctx.bx, ctx.linear = bx, linear
        return np.where(linear, x, np.logaddexp(0, bx) / beta)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        sig = _sigmoid(ctx.bx)
        return (np.where(ctx.linear, grad, grad * sig),)


class Clip(Function):
    """Clamp to ``[lo, hi]``; the gradient passes where ``lo <= x <= hi`` (inclusive, like torch)."""

    name = "clip"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, lo: float | None, hi: float | None) -> np.ndarray:
        inside = np.ones(x.shape, dtype=bool)
        if lo is not None:
            inside &= x >= lo
        if hi is not None:
            inside &= x <= hi
        ctx.inside = inside
        return np.clip(x, lo, hi)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        return (grad * ctx.inside,)


class Where(Function):
    """``cond ? a : b`` with broadcasting; ``cond`` gets no gradient."""

    name = "where"

    @staticmethod
    def forward(ctx: Context, cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        cond = cond.astype(bool, copy=False)
        ctx.cond = cond
        try:
            return np.where(cond, a, b)
        except ValueError:
            raise ShapeError(f"where: cannot broadcast shapes {cond.shape} (cond), {a.shape} and {b.shape}") from None

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        cond = ctx.cond
        _, need_a, need_b = ctx.needs_input_grad
        ga = grad * cond if need_a else None
        gb = grad * ~cond if need_b else None
        return None, ga, gb


class Cast(Function):
    name = "cast"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, dtype: np.dtype) -> np.ndarray:
        ctx.in_dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        return (grad.astype(ctx.in_dtype),)


def _floating(x: Any) -> Tensor:
    """The input of a float function as a float tensor: an integer or bool one in the default float dtype, as
    torch reads it (numpy would give float64, and float16 for bool)."""
    t = as_tensor(x)
    return t if t.data.dtype.kind == "f" else Tensor(t.data.astype(default_dtype()))


def exp(x: Any) -> Tensor:
    """Elementwise ``e**x``.  Example: ``exp(Tensor([0.0])).item() == 1.0``."""
    return Exp.apply(_floating(x))


def log(x: Any) -> Tensor:
    """Elementwise natural log (inputs > 0).  Example: ``log(Tensor([1.0])).item() == 0.0``."""
    return Log.apply(_floating(x))


def sqrt(x: Any) -> Tensor:
    """Elementwise square root (inputs > 0 for a finite gradient)."""
    return Sqrt.apply(_floating(x))


def abs(x: Any) -> Tensor:
    """Elementwise absolute value; gradient ``sign(x)`` (0 at 0)."""
    return Abs.apply(as_tensor(x))


def tanh(x: Any) -> Tensor:
    """Elementwise hyperbolic tangent."""
    return Tanh.apply(_floating(x))


def sigmoid(x: Any) -> Tensor:
    """Elementwise logistic sigmoid ``1 / (1 + exp(-x))``, computed without overflow."""
    return Sigmoid.apply(_floating(x))


def relu(x: Any) -> Tensor:
    """Elementwise ``max(x, 0)``.

    Examples
    --------
    >>> relu(Tensor([-1.0, 2.0])).data
    array([0., 2.], dtype=float32)
    """
    return Relu.apply(as_tensor(x))


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Tensor:
    """Elementwise ``x if x > 0 else negative_slope * x``."""
    return LeakyRelu.apply(as_tensor(x), slope=number("leaky_relu", "negative_slope", negative_slope))


def gelu(x: Any, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit, ``x * Phi(x)``.

    Parameters
    ----------
    x : Tensor
        Any shape.
    approximate : {'none', 'tanh'}
        ``'none'`` uses the exact error function, ``'tanh'`` the tanh approximation (as torch).

    Examples
    --------
    >>> round(gelu(Tensor([1.0], dtype="float64")).item(), 6)
    0.841345
    """
    return Gelu.apply(_floating(x), approximate=choice("gelu", "approximate", approximate, ("none", "tanh")))


def softplus(x: Any, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """Elementwise ``log(1 + exp(beta x)) / beta``, linear above ``threshold`` (torch semantics).

    ``beta > 0`` and ``threshold`` finite.
    """
    b = number("softplus", "beta", beta, low=0.0, interval="(]")
    return Softplus.apply(_floating(x), beta=b, threshold=number("softplus", "threshold", threshold))


def clip(x: Any, lo: float | None = None, hi: float | None = None) -> Tensor:
    """Clamp to ``[lo, hi]`` (either bound may be None; ``lo <= hi``).  Example: ``clip(x, 0.0, 1.0)``."""
    low = -math.inf if lo is None else number("clip", "lo", lo)
    if hi is not None:
        number("clip", "hi", hi, low=low)
    return Clip.apply(as_tensor(x), lo=lo, hi=hi)


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """Select ``a`` where ``cond`` is true, else ``b`` (all three broadcast together).

    Examples
    --------
    >>> where(Tensor([True, False]), Tensor([1.0, 2.0]), 0.0).data
    array([1., 0.], dtype=float32)
    """
    cond_t = as_tensor(cond)
    if isinstance(a, Tensor):
        b_t = as_tensor(b, like=a)
        a_t = a
    else:
        b_t = as_tensor(b)
        a_t = as_tensor(a, like=b_t)
    return Where.apply(cond_t, a_t, b_t)


def cast(x: Any, dtype: Any) -> Tensor:
    """Convert to ``dtype``; differentiable between float dtypes."""
    dt = np.dtype(dtype)
    x = as_tensor(x)
    if x.requires_grad and dt.kind != "f":
        raise DTypeError(f"cast: cannot cast a tensor that requires grad to non-float dtype {dt}")
    return Cast.apply(x, dtype=dt)
