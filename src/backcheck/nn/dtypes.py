"""Dtypes of tensors: the default float dtype, the dtypes that carry gradients, and promotion.

Python floats and lists of floats become :func:`default_dtype` (float32 unless changed). Promotion follows
torch where numpy's rules would widen a float32 computation silently: an integer or bool operand takes the
float operand's dtype, and a 0-d float operand (a Python-like scalar held as an array) takes the dtype of
a float operand with dimensions, so ``x * np.arange(3)`` and ``x * np.array(2.0)`` stay float32 for a
float32 ``x``. Two operands with dimensions promote as numpy does (float32 with float64 is float64).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backcheck.nn.errors import DTypeError
from backcheck.nn.validate import float_dtype

__all__ = ["GRAD_DTYPES", "TENSOR_KINDS", "default_dtype", "set_default_dtype", "to_array", "weak_to"]

#: The dtypes a tensor that requires grad may have.
GRAD_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: Numeric kinds a tensor may hold: bool, signed and unsigned integers, floats.
TENSOR_KINDS = "biuf"


class _DTypeState:
    __slots__ = ("default",)

    def __init__(self) -> None:
        self.default = np.dtype(np.float32)


DTYPE = _DTypeState()


def default_dtype() -> np.dtype:
    """The dtype given to Python floats and lists of floats (float32 unless changed)."""
    return DTYPE.default


def set_default_dtype(dtype: Any) -> None:
    """Set the dtype given to Python floats and lists of floats: float32 or float64 (the dtypes that carry
    gradients)."""
    DTYPE.default = float_dtype("set_default_dtype", "dtype", dtype)


def weak_to(data: np.ndarray, other: np.ndarray) -> np.dtype | None:
    """The dtype ``data`` is cast to beside ``other`` in a binary op, or None to leave it: ``other``'s float
    dtype where ``data`` is integer or bool, or a 0-d float beside a float with dimensions."""
    if other.dtype.kind != "f" or data.dtype == other.dtype:
        return None
    if data.dtype.kind in "biu" or (data.dtype.kind == "f" and data.ndim == 0 < other.ndim):
        return other.dtype
    return None


def to_array(data: Any, dtype: Any) -> np.ndarray:
    """``data`` (numbers, nested lists, a numpy array: a Tensor's data) as a numeric array of ``dtype``; Python floats
    as :func:`default_dtype`."""
    try:
        if isinstance(data, np.ndarray):
            arr = data if dtype is None else data.astype(dtype, copy=False)
        else:
            arr = np.asarray(data, dtype=dtype)
            python_floats = isinstance(data, float | list | tuple) and not isinstance(data, np.generic)
            if dtype is None and python_floats and arr.dtype == np.float64 and DTYPE.default != np.float64:
                arr = arr.astype(DTYPE.default)
    except (TypeError, ValueError) as exc:
        raise DTypeError(
            f"Tensor: cannot make a numeric array of {type(data).__name__} data (dtype {dtype!r}): {exc}",
            "pass numbers, a (non-ragged) nested list of numbers or a numpy array, and a numeric dtype",
        ) from None
    if arr.dtype.kind not in TENSOR_KINDS:
        raise DTypeError(
            f"Tensor: data of dtype {arr.dtype} is not numeric; a tensor holds bools, integers or floats",
            "convert strings or objects to numbers first, e.g. np.asarray(values, dtype=np.float32)",
        )
    return arr
