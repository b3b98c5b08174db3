"""Small private helpers shared by the zoo modules (input generation, stable softmax)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import DTypeLike


def randn(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: DTypeLike, scale: float = 1.0
) -> np.ndarray:
    """Standard normal values (drawn in float64 so both dtypes see the same numbers)."""
    return (scale * rng.standard_normal(shape)).astype(dtype)


def uniform(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: DTypeLike, low: float, high: float
) -> np.ndarray:
    """Uniform values in ``[low, high)``."""
    return rng.uniform(low, high, shape).astype(dtype)


def away_from_zero(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: DTypeLike, margin: float = 0.1
) -> np.ndarray:
    """Normal-ish values with ``|x| >= margin``: safe for finite differences around a kink at 0."""
    z = rng.standard_normal(shape)
    sign = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    return (sign * (margin + np.abs(z))).astype(dtype)


def distinct(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: DTypeLike, spacing: float = 0.05
) -> np.ndarray:
    """Values that differ pairwise by at least ``spacing`` (no ties, no near ties)."""
    n = int(np.prod(shape))
    values = (rng.permutation(n) - n / 2) * spacing
    return values.reshape(shape).astype(dtype)


def resample(rng: np.random.Generator, draw: Callable[[], dict], ok: Callable[[dict], bool]) -> dict:
    """Draw inputs until ``ok`` accepts them (used to keep pre-activations away from kinks)."""
    for _ in range(1000):
        inputs = draw()
        if ok(inputs):
            return inputs
    raise RuntimeError("could not draw inputs away from the kinks")  # pragma: no cover


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis`` (in the dtype of ``x``)."""
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic sigmoid, stable for large ``|x|``."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
