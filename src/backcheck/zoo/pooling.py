"""Pooling: max pooling (plain and with structural ties), average pooling, global pools and sort pooling."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import DTypeLike

from backcheck.zoo._common import distinct, randn
from backcheck.zoo._registry import Bug, Grads, Layer, one_wrong_element, scale_bug

# --- max pooling ----------------------------------------------------------------------------------


def _windows(x: np.ndarray, k: int, s: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield (i, j, window) with window of shape (N, C, k * k), row-major inside the window."""
    n, c, h, w = x.shape
    for i in range((h - k) // s + 1):
        for j in range((w - k) // s + 1):
            yield i, j, x[:, :, i * s : i * s + k, j * s : j * s + k].reshape(n, c, k * k)


def _maxpool(x: np.ndarray, k: int, s: int) -> np.ndarray:
    n, c, h, w = x.shape
    out = np.empty((n, c, (h - k) // s + 1, (w - k) // s + 1), dtype=x.dtype)
    for i, j, win in _windows(x, k, s):
        out[:, :, i, j] = np.max(win, axis=-1)
    return out


def _maxpool_grad(dout: np.ndarray, x: np.ndarray, k: int, s: int, route: str = "argmax") -> np.ndarray:
    """Route each output gradient into its window. ``route`` selects correct or buggy routing."""
    n, c = x.shape[:2]
    dx = np.zeros_like(x)
    nn, cc = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
    for i, j, win in _windows(x, k, s):
        g = dout[:, :, i, j]
        if route == "all_ties":  # every element equal to the maximum gets the full gradient
            mask = win == np.max(win, axis=-1, keepdims=True)
            dx[:, :, i * s : i * s + k, j * s : j * s + k] += (g[..., None] * mask).reshape(n, c, k, k)
            continue
        idx = np.zeros((n, c), dtype=np.int64) if route == "first" else np.argmax(win, axis=-1)
        r, q = np.divmod(idx, k)
        if route == "swapped":
            r, q = q, r
        np.add.at(dx, (nn, cc, i * s + r, j * s + q), g)
    return dx


MAXPOOL_K, MAXPOOL_S = 3, 2


def maxpool2d_forward(x: np.ndarray) -> np.ndarray:
    """3x3 max pooling with stride 2 (overlapping windows): x (N, C, 7, 7) -> (N, C, 3, 3)."""
    return _maxpool(x, MAXPOOL_K, MAXPOOL_S)


def maxpool2d_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """Each output gradient goes to the (first) argmax of its window; overlapping windows accumulate."""
    return (_maxpool_grad(dout, x, MAXPOOL_K, MAXPOOL_S),)


def _maxpool_first(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (_maxpool_grad(dout, x, MAXPOOL_K, MAXPOOL_S, route="first"),)


def _maxpool_swapped(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (_maxpool_grad(dout, x, MAXPOOL_K, MAXPOOL_S, route="swapped"),)


def _maxpool_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": distinct(rng, (2, 2, 7, 7), dtype)}


def _maxpool_kinks(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    x = distinct(rng, (2, 2, 7, 7), dtype)
    top = float(np.max(x)) + 1.0
    x[0, 0, 0, 0] = x[0, 0, 1, 2] = top  # a tied maximum in window (0, 0)
    x[1, 1, 3, 4] = x[1, 1, 4, 3] = top  # and one in window (1, 1)
    return {"x": x}


MAXPOOL2D = Layer(
    name="maxpool2d",
    family="pooling",
    forward=maxpool2d_forward,
    backward=maxpool2d_backward,
    make_inputs=_maxpool_inputs,
    kinks=_maxpool_kinks,
    bugs=(
        Bug(
            "grad_to_first_element",
            _maxpool_first,
            "gross",
            "Sends the gradient to the first element of each window regardless of the argmax.",
        ),
        Bug(
            "argmax_row_col_swapped",
            _maxpool_swapped,
            "gross",
            "Unravels the flat argmax as (col, row) instead of (row, col).",
        ),
        scale_bug(maxpool2d_backward, 3),
    ),
)


# --- max pooling with ties ------------------------------------------------------------------------


def maxpool2d_ties_forward(x: np.ndarray) -> np.ndarray:
    """Nearest-neighbour 2x upsampling along the width, then 2x2 max pooling with stride 2.

    Every pooling window holds each value twice, so ties are the normal case, not an accident:
    x (N, C, 6, 4) -> upsampled (N, C, 6, 8) -> pooled (N, C, 3, 4) = max over pairs of rows.
    """
    return _maxpool(np.repeat(x, 2, axis=-1), 2, 2)


def _maxpool_ties_grad(dout: np.ndarray, x: np.ndarray, route: str) -> Grads:
    dup = _maxpool_grad(dout, np.repeat(x, 2, axis=-1), 2, 2, route=route)
    return (dup.reshape(*x.shape, 2).sum(axis=-1),)  # backward of the upsampling: sum the copies


def maxpool2d_ties_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """Route to one of the tied maxima (the first), then sum the gradient of the two copies."""
    return _maxpool_ties_grad(dout, x, "argmax")


def _maxpool_ties_every(dout: np.ndarray, x: np.ndarray) -> Grads:
    return _maxpool_ties_grad(dout, x, "all_ties")


def _maxpool_ties_first(dout: np.ndarray, x: np.ndarray) -> Grads:
    return _maxpool_ties_grad(dout, x, "first")


def _maxpool_ties_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": distinct(rng, (2, 2, 6, 4), dtype)}


def _maxpool_ties_kinks(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    x = distinct(rng, (2, 2, 6, 4), dtype)
    x[0, 0, 1, 0] = x[0, 0, 0, 0]  # a genuine tie between two different inputs
    x[1, 0, 3, 2] = x[1, 0, 2, 2]
    return {"x": x}


MAXPOOL2D_TIES = Layer(
    name="maxpool2d_ties",
    family="pooling",
    forward=maxpool2d_ties_forward,
    backward=maxpool2d_ties_backward,
    make_inputs=_maxpool_ties_inputs,
    kinks=_maxpool_ties_kinks,
    bugs=(
        Bug(
            "ties_to_every_element",
            _maxpool_ties_every,
            "gross",
            "Uses the mask x == max, so every tied maximum receives the full gradient (doubling it here).",
        ),
        Bug(
            "grad_to_first_element",
            _maxpool_ties_first,
            "gross",
            "Sends the gradient to the first element of each window regardless of the argmax.",
        ),
    ),
)


# --- average pooling ------------------------------------------------------------------------------


def avgpool2d_forward(x: np.ndarray) -> np.ndarray:
    """2x2 average pooling with stride 2: x (N, C, 4, 4) -> (N, C, 2, 2)."""
    n, c, h, w = x.shape
    return np.mean(x.reshape(n, c, h // 2, 2, w // 2, 2), axis=(3, 5))


def _avgpool_grad(dout: np.ndarray, divisor: int) -> np.ndarray:
    return np.repeat(np.repeat(dout, 2, axis=2), 2, axis=3) / divisor


def avgpool2d_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """Spread each output gradient evenly over its 4 inputs."""
    return (_avgpool_grad(dout, 4),)


def _avgpool_missing_area(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (_avgpool_grad(dout, 1),)


def _avgpool_kernel_width_only(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (_avgpool_grad(dout, 2),)


def _avgpool_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": randn(rng, (2, 2, 4, 4), dtype)}


AVGPOOL2D = Layer(
    name="avgpool2d",
    family="pooling",
    forward=avgpool2d_forward,
    backward=avgpool2d_backward,
    make_inputs=_avgpool_inputs,
    bugs=(
        Bug(
            "missing_1_over_area",
            _avgpool_missing_area,
            "gross",
            "Copies dout to every element of the window without dividing by the window area.",
        ),
        Bug(
            "divided_by_kernel_width",
            _avgpool_kernel_width_only,
            "gross",
            "Divides by the kernel width k instead of the area k * k.",
        ),
        one_wrong_element(avgpool2d_backward),
    ),
)


# --- global average pooling -----------------------------------------------------------------------


def global_avgpool_forward(x: np.ndarray) -> np.ndarray:
    """Mean over the spatial axes: (N, C, H, W) -> (N, C)."""
    return np.mean(x, axis=(2, 3))


def global_avgpool_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """dout / (H W), broadcast over the spatial axes."""
    h, w = x.shape[2:]
    return (np.broadcast_to(dout[:, :, None, None] / (h * w), x.shape).copy(),)


def _gap_missing_hw(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (np.broadcast_to(dout[:, :, None, None], x.shape).copy(),)


def _gap_divides_by_h(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (np.broadcast_to(dout[:, :, None, None] / x.shape[2], x.shape).copy(),)


def _gap_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": randn(rng, (2, 3, 3, 4), dtype)}


GLOBAL_AVGPOOL = Layer(
    name="global_avgpool",
    family="pooling",
    forward=global_avgpool_forward,
    backward=global_avgpool_backward,
    make_inputs=_gap_inputs,
    bugs=(
        Bug("missing_1_over_hw", _gap_missing_hw, "gross", "Broadcasts dout without dividing by H * W."),
        Bug("divided_by_h_only", _gap_divides_by_h, "gross", "Divides by H instead of H * W."),
        scale_bug(global_avgpool_backward, 5),
    ),
)


# --- global max pooling ---------------------------------------------------------------------------


def global_maxpool_forward(x: np.ndarray) -> np.ndarray:
    """Maximum over the spatial axes: (N, C, H, W) -> (N, C)."""
    return np.max(x, axis=(2, 3))


def _gmp_grad(dout: np.ndarray, x: np.ndarray, route: str = "argmax") -> Grads:
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    if route == "spread":
        return (np.broadcast_to(dout[:, :, None, None] / (h * w), x.shape).copy(),)
    idx = np.argmax(flat, axis=-1) if route == "argmax" else np.zeros((n, c), dtype=np.int64)
    dx = np.zeros_like(flat)
    np.put_along_axis(dx, idx[..., None], dout[..., None], axis=-1)
    return (dx.reshape(x.shape),)


def global_maxpool_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """The whole gradient goes to the (first) spatial argmax of each channel."""
    return _gmp_grad(dout, x)


def _gmp_first(dout: np.ndarray, x: np.ndarray) -> Grads:
    return _gmp_grad(dout, x, route="first")


def _gmp_spread(dout: np.ndarray, x: np.ndarray) -> Grads:
    return _gmp_grad(dout, x, route="spread")


def _gmp_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": distinct(rng, (2, 3, 3, 3), dtype)}


def _gmp_kinks(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    x = distinct(rng, (2, 3, 3, 3), dtype)
    top = float(np.max(x)) + 1.0
    x[0, 1, 0, 2] = x[0, 1, 2, 1] = top
    x[1, 2, 1, 1] = x[1, 2, 2, 0] = top
    return {"x": x}


GLOBAL_MAXPOOL = Layer(
    name="global_maxpool",
    family="pooling",
    forward=global_maxpool_forward,
    backward=global_maxpool_backward,
    make_inputs=_gmp_inputs,
    kinks=_gmp_kinks,
    bugs=(
        Bug(
            "grad_to_first_element",
            _gmp_first,
            "gross",
            "Sends the gradient to the first spatial position regardless of the argmax.",
        ),
        Bug(
            "spread_like_average",
            _gmp_spread,
            "gross",
            "Copies the average-pool backward: spreads dout / (H W) over every position.",
        ),
    ),
)


# --- sort pooling ---------------------------------------------------------------------------------


def sort_forward(x: np.ndarray) -> np.ndarray:
    """Sort along the last axis (as in sort pooling); piecewise linear, with kinks at ties."""
    return np.sort(x, axis=-1)


def sort_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """Scatter: output slot k came from input position argsort[k], so dx[argsort[k]] = dout[k]."""
    order = np.argsort(x, axis=-1, kind="stable")
    dx = np.zeros_like(dout)
    np.put_along_axis(dx, order, dout, axis=-1)
    return (dx,)


def _sort_gather(dout: np.ndarray, x: np.ndarray) -> Grads:
    order = np.argsort(x, axis=-1, kind="stable")
    return (np.take_along_axis(dout, order, axis=-1),)


def _sort_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": distinct(rng, (4, 5), dtype)}


def _sort_kinks(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    x = distinct(rng, (4, 5), dtype)
    x[0, 3] = x[0, 1]
    x[2, 4] = x[2, 0]
    return {"x": x}


SORT = Layer(
    name="sort",
    family="pooling",
    forward=sort_forward,
    backward=sort_backward,
    make_inputs=_sort_inputs,
    kinks=_sort_kinks,
    bugs=(
        Bug(
            "gather_instead_of_scatter",
            _sort_gather,
            "gross",
            "Applies the permutation, not its inverse: dx = dout[argsort] instead of dx[argsort] = dout.",
        ),
        scale_bug(sort_backward, 3),
    ),
)

LAYERS: tuple[Layer, ...] = (
    MAXPOOL2D,
    MAXPOOL2D_TIES,
    AVGPOOL2D,
    GLOBAL_AVGPOOL,
    GLOBAL_MAXPOOL,
    SORT,
)
