"""Argument checks shared by the modules, ops, losses and optimizers of :mod:`backcheck.nn`.

Each check returns the value in its canonical form (a Python int, a float, a pair, a numpy dtype) or
raises :class:`~backcheck.nn.errors.ArgumentError` naming the owner, the argument, the allowed range and
the value given, e.g. ``Linear: in_features must be an integer >= 1, got 0``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from backcheck.nn.errors import ArgumentError, DTypeError, ShapeError

__all__ = [
    "integer",
    "int_pair",
    "number",
    "probability",
    "choice",
    "flag",
    "float_dtype",
    "float_array",
    "generator",
]

_PARAM_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _fail(owner: str, name: str, allowed: str, value: Any, hint: str | None = None) -> ArgumentError:
    shown = repr(value) if not isinstance(value, np.ndarray) else f"an array of shape {value.shape}"
    return ArgumentError(
        f"{owner}: {name} must be {allowed}, got {shown}", hint, argument=name, allowed=allowed, value=value
    )


def is_int(value: Any) -> bool:
    """An int or numpy integer, not a bool."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def integer(owner: str, name: str, value: Any, minimum: int | None = None, hint: str | None = None) -> int:
    """``value`` as an int (bools refused), at least ``minimum`` when given.

    Examples
    --------
    >>> integer("Linear", "in_features", 3, minimum=1)
    3
    >>> integer("Linear", "in_features", 0, minimum=1)
    Traceback (most recent call last):
    ...
    backcheck.nn.errors.ArgumentError: Linear: in_features must be an integer >= 1, got 0
    """
    allowed = "an integer" if minimum is None else f"an integer >= {minimum}"
    if not is_int(value) or (minimum is not None and value < minimum):
        raise _fail(owner, name, allowed, value, hint)
    return int(value)


def int_pair(owner: str, name: str, value: Any, minimum: int, hint: str | None = None) -> tuple[int, int]:
    """An int or a pair of ints, each at least ``minimum``, as a pair.

    Examples
    --------
    >>> int_pair("Conv2d", "stride", 2, minimum=1), int_pair("Conv2d", "padding", (0, 1), minimum=0)
    ((2, 2), (0, 1))
    """
    allowed = f"an integer >= {minimum} or a pair of them"
    if is_int(value):
        pair: tuple[Any, ...] = (value, value)
    elif isinstance(value, tuple | list) and len(value) == 2:
        pair = tuple(value)
    else:
        raise _fail(owner, name, allowed, value, hint)
    if not all(is_int(v) and v >= minimum for v in pair):
        raise _fail(owner, name, allowed, value, hint)
    return int(pair[0]), int(pair[1])


def number(
    owner: str,
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    interval: str = "[]",
    hint: str | None = None,
) -> float:
    """A finite real number in the interval from ``low`` to ``high``; ``interval`` says which ends are
    included (``'[]'``, ``'[)'``, ``'(]'``, ``'()'``).

    Examples
    --------
    >>> number("Adam", "lr", 0.01, low=0.0)
    0.01
    >>> number("BatchNorm1d", "eps", 0.0, low=0.0, interval="(]")
    Traceback (most recent call last):
    ...
    backcheck.nn.errors.ArgumentError: BatchNorm1d: eps must be a finite number > 0, got 0.0
    """
    lo_ok = (lambda v: v >= low) if interval[0] == "[" else (lambda v: v > low)
    hi_ok = (lambda v: v <= high) if interval[1] == "]" else (lambda v: v < high)
    if math.isinf(low) and math.isinf(high):
        allowed = "a finite number"
    elif math.isinf(high):
        allowed = f"a finite number {'>=' if interval[0] == '[' else '>'} {low:g}"
    elif math.isinf(low):
        allowed = f"a finite number {'<=' if interval[1] == ']' else '<'} {high:g}"
    else:
        allowed = f"a number in {interval[0]}{low:g}, {high:g}{interval[1]}"
    real = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)
    if not real or not math.isfinite(value) or not (lo_ok(value) and hi_ok(value)):
        raise _fail(owner, name, allowed, value, hint)
    return float(value)


def probability(owner: str, name: str, value: Any, hint: str | None = None) -> float:
    """A probability of zeroing, in ``[0, 1)`` (1 would leave nothing to rescale).

    Examples
    --------
    >>> probability("Dropout", "p", 0.5)
    0.5
    """
    return number(owner, name, value, 0.0, 1.0, "[)", hint)


def choice(owner: str, name: str, value: Any, options: Sequence[str]) -> str:
    """One of the strings in ``options``.

    Examples
    --------
    >>> choice("GELU", "approximate", "tanh", ("none", "tanh"))
    'tanh'
    """
    if not isinstance(value, str) or value not in options:
        allowed = "one of " + ", ".join(repr(o) for o in options)
        raise _fail(owner, name, allowed, value)
    return value


def flag(owner: str, name: str, value: Any) -> bool:
    """A bool (numpy bools accepted).

    Examples
    --------
    >>> flag("Linear", "bias", False)
    False
    """
    if not isinstance(value, bool | np.bool_):
        raise _fail(owner, name, "True or False", value)
    return bool(value)


def float_dtype(owner: str, name: str, value: Any) -> np.dtype:
    """A parameter dtype: float32 or float64 (the dtypes a gradient can flow through).

    Examples
    --------
    >>> float_dtype("Linear", "dtype", "float64")
    dtype('float64')
    """
    try:
        dt = np.dtype(value)
    except TypeError:
        dt = None
    if dt not in _PARAM_DTYPES:
        raise DTypeError(
            f"{owner}: {name} must be float32 or float64, got {value!r}",
            "parameters are trained by gradients, which exist for float32 and float64 only",
        )
    return dt


def float_array(op: str, name: str, arr: np.ndarray) -> None:
    """Refuse a non-float array where an op needs real numbers (integer images into a conv, ...).

    Examples
    --------
    >>> float_array("linear", "input", np.zeros(2, dtype=np.int64))
    Traceback (most recent call last):
    ...
    backcheck.nn.errors.DTypeError: linear: input must be a float array, got dtype int64
    Hint: convert it first, e.g. Tensor(x.astype(np.float32))
    """
    if arr.dtype.kind != "f":
        raise DTypeError(
            f"{op}: {name} must be a float array, got dtype {arr.dtype}",
            "convert it first, e.g. Tensor(x.astype(np.float32))",
        )


def generator(owner: str, name: str, value: Any) -> np.random.Generator | None:
    """None or a numpy Generator.

    Examples
    --------
    >>> generator("Linear", "rng", None) is None
    True
    """
    if value is not None and not isinstance(value, np.random.Generator):
        raise _fail(owner, name, "None or a numpy Generator", value, "e.g. rng=np.random.default_rng(0)")
    return value


def dim_of(op: str, dim: int, ndim: int) -> int:
    """``dim`` of a tensor of ``ndim`` dimensions, counted from 0, or :class:`ShapeError` out of range (a 0-d
    tensor takes 0 and -1, as torch)."""
    top = max(ndim, 1)
    if not -top <= dim < top:
        raise ShapeError(
            f"{op}: dim {dim} is out of range for a tensor with {ndim} dimensions", f"use dims in [{-top}, {top - 1}]"
        )
    return int(dim) % top
