"""Layers at the points real code meets: tie groups, tiny gradient elements, masked inputs, random-seed arguments.

- **Tie groups**: max pooling whose windows hold ties of 2, 3 or 4 equal maxima (one layer per size, the tie
  in ``make_inputs``), and a row maximum that splits the gradient evenly among tied maxima. The bug routes the
  gradient to *every* tied element: the most common max-pool bug in real solutions. Routing it to one
  element, or splitting it evenly, is a valid subgradient: moving the whole group together (the one direction
  in which the max is differentiable) changes the output by exactly that much.
- **Tiny elements**: gradients many orders of magnitude below the largest in the same tensor (rows of norm
  1e-8 beside ordinary rows, long products, a wide softmax), with backwards wrong by a factor 10 only there.
- **Masked inputs**: a softmax and a logsumexp whose input holds -inf entries (masked logits).
- **Random arguments**: a dropout whose seed is an argument, ``forward(x, seed)``; its backward draws the same
  mask from a generator seeded the same (a backward drawing again from a ``Generator`` argument would get the
  next mask in training, and fails: see ``check_layer``).

Every bug shows at ``make_inputs``; the layers are kept out of ``LAYERS`` (their points are deliberately
extreme, and a seed is not a float array) in ``HABIT_LAYERS``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from backcheck.zoo._common import distinct, randn, softmax
from backcheck.zoo._registry import Bug, Grads, Layer

# --- max pooling over tie groups of 2, 3 and 4 ----------------------------------------------------


def _windows(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N, C, H/2, W/2, 4): the 2x2 windows, row-major inside each."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)


def _unwindow(g: np.ndarray) -> np.ndarray:
    n, c, ho, wo, _ = g.shape
    return g.reshape(n, c, ho, wo, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, 2 * ho, 2 * wo)


def maxpool_ties_forward(x: np.ndarray) -> np.ndarray:
    """2x2 max pooling, stride 2, of x (N, C, H, W)."""
    return _windows(x).max(axis=-1)


def _maxpool_ties_grad(dout: np.ndarray, x: np.ndarray, every: bool) -> np.ndarray:
    win = _windows(x)
    if every:  # every element equal to the window's maximum gets the full gradient
        chosen = win == win.max(axis=-1, keepdims=True)
    else:
        chosen = np.zeros(win.shape, dtype=bool)
        np.put_along_axis(chosen, win.argmax(axis=-1)[..., None], True, axis=-1)
    return _unwindow(chosen * dout[..., None]).astype(x.dtype)


def maxpool_ties_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """Each output gradient goes to the first maximum of its window (a valid subgradient at a tie)."""
    return (_maxpool_ties_grad(dout, x, every=False),)


def _maxpool_ties_to_all(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (_maxpool_ties_grad(dout, x, every=True),)


def _tied_pool_input(rng: np.random.Generator, dtype: DTypeLike, size: int) -> dict[str, np.ndarray]:
    """(2, 2, 4, 4) distinct values; in two windows ``size`` elements tie at the window's maximum."""
    x = distinct(rng, (2, 2, 4, 4), np.float64)
    for n, c, r, q in ((0, 0, 0, 0), (1, 1, 2, 2)):
        win = x[n, c, r : r + 2, q : q + 2].reshape(-1)
        cells = rng.permutation(4)[:size]
        win[cells] = win.max() + 0.25  # exactly representable in both dtypes
        x[n, c, r : r + 2, q : q + 2] = win.reshape(2, 2)
    return {"x": x.astype(dtype)}


def _maxpool_ties_layer(size: int) -> Layer:
    def make_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
        return _tied_pool_input(rng, dtype, size)

    return Layer(
        name=f"maxpool_tie{size}",
        family="pooling",
        forward=maxpool_ties_forward,
        backward=maxpool_ties_backward,
        make_inputs=make_inputs,
        bugs=(
            Bug(
                "ties_to_every_element",
                _maxpool_ties_to_all,
                "gross",
                f"Routes the gradient to every element equal to the window's maximum: {size} times too much "
                f"where {size} elements tie.",
                size=0.12,
            ),
        ),
    )


# --- row maximum, splitting the gradient evenly among tied maxima ---------------------------------


def rowmax_forward(x: np.ndarray) -> np.ndarray:
    """The maximum of each row: (N, D) -> (N,)."""
    return x.max(axis=-1)


def _rowmax_grad(dout: np.ndarray, x: np.ndarray, split: bool) -> Grads:
    tied = x == x.max(axis=-1, keepdims=True)
    share = 1.0 / tied.sum(axis=-1, keepdims=True) if split else 1.0
    return ((tied * share * dout[:, None]).astype(x.dtype),)


def rowmax_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """Tied maxima share the row's gradient evenly (a valid subgradient: the shares sum to one)."""
    return _rowmax_grad(dout, x, split=True)


def _rowmax_to_all(dout: np.ndarray, x: np.ndarray) -> Grads:
    return _rowmax_grad(dout, x, split=False)


def _rowmax_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    x = distinct(rng, (4, 6), np.float64)
    for row, size in ((0, 2), (1, 3), (2, 4)):  # row 3 has no tie
        x[row, rng.permutation(6)[:size]] = x[row].max() + 0.5
    return {"x": x.astype(dtype)}


ROWMAX_TIES = Layer(
    name="rowmax_ties",
    family="reduction",
    forward=rowmax_forward,
    backward=rowmax_backward,
    make_inputs=_rowmax_inputs,
    bugs=(
        Bug(
            "ties_to_every_element",
            _rowmax_to_all,
            "gross",
            "Gives every tied maximum the full gradient (np.where(x == x.max()) without dividing by the count): "
            "2, 3 and 4 times too much in the rows with ties of 2, 3 and 4.",
            size=3.0,
        ),
    ),
)


# --- tiny elements: rows of norm 1e-8 beside ordinary rows ----------------------------------------

TINY_NORM = 1e-8


def normalize_rows_forward(x: np.ndarray) -> np.ndarray:
    """Each row divided by its Euclidean norm: (N, D) -> (N, D)."""
    return x / np.sqrt(np.sum(x * x, axis=-1, keepdims=True))


def _normalize_rows_grad(dout: np.ndarray, x: np.ndarray, clamp: float = 0.0, ordinary: float = 1.0) -> Grads:
    norm = np.sqrt(np.sum(x * x, axis=-1, keepdims=True))
    y = x / norm
    g = (dout - y * np.sum(dout * y, axis=-1, keepdims=True)) / np.maximum(norm, clamp)
    return ((g * np.where(norm > 1e-4, ordinary, 1.0)).astype(x.dtype),)


def normalize_rows_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """(dout - y <dout, y>) / |x| per row, y = x / |x|."""
    return _normalize_rows_grad(dout, x)


def _normalize_rows_clamped(dout: np.ndarray, x: np.ndarray) -> Grads:
    return _normalize_rows_grad(dout, x, clamp=1e-7)


def _normalize_rows_ordinary_10x(dout: np.ndarray, x: np.ndarray) -> Grads:
    return _normalize_rows_grad(dout, x, ordinary=10.0)


def _normalize_rows_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    x = rng.standard_normal((4, 5))
    x[[1, 3]] *= TINY_NORM / np.linalg.norm(x[[1, 3]], axis=-1, keepdims=True)
    return {"x": x.astype(dtype)}


NORMALIZE_TINY_ROWS = Layer(
    name="normalize_tiny_rows",
    family="normalization",
    forward=normalize_rows_forward,
    backward=normalize_rows_backward,
    make_inputs=_normalize_rows_inputs,
    bugs=(
        Bug(
            "norm_clamped_in_backward",
            _normalize_rows_clamped,
            "gross",
            "Divides by max(|x|, 1e-7) in the backward only: 10 times too small on the rows of norm 1e-8.",
            size=0.9,
        ),
        Bug(
            "ordinary_rows_10x",
            _normalize_rows_ordinary_10x,
            "subtle",
            "10 times too large on the rows of ordinary norm, whose gradients are 1e-8 of the tiny rows' ones "
            "(the error is about 4e-8 of the tensor's largest element).",
            size=4.2e-8,
        ),
    ),
)


# --- tiny elements: long products -----------------------------------------------------------------


def row_product_forward(x: np.ndarray) -> np.ndarray:
    """The product of each row: (N, D) -> (N,)."""
    return np.prod(x, axis=-1)


def _row_product_grad(dout: np.ndarray, x: np.ndarray, clamp: float = 0.0) -> Grads:
    p = np.prod(x, axis=-1, keepdims=True)
    safe = np.where(np.abs(p) < clamp, np.sign(p) * clamp, p)  # a floor meant to keep p / x away from 0
    return ((dout[:, None] * safe / x).astype(x.dtype),)


def row_product_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """d prod / d x_i = prod / x_i (no zero entries)."""
    return _row_product_grad(dout, x)


def _row_product_floored(dout: np.ndarray, x: np.ndarray) -> Grads:
    return _row_product_grad(dout, x, clamp=1e-9)


def _row_product_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    scales = np.array([[0.95], [0.6], [0.45]])  # products about 0.1, 1e-9 and 1e-14
    x = scales * rng.uniform(0.9, 1.1, (3, 40)) * np.where(rng.random((3, 40)) < 0.2, -1.0, 1.0)
    return {"x": x.astype(dtype)}


ROW_PRODUCT = Layer(
    name="long_product",
    family="reduction",
    forward=row_product_forward,
    backward=row_product_backward,
    make_inputs=_row_product_inputs,
    bugs=(
        Bug(
            "product_floored",
            _row_product_floored,
            "subtle",
            "Floors |prod| at 1e-9 before dividing by x_i: right on the rows whose product is larger, wrong by "
            "up to 1e5 on the row of product 1e-14, whose gradients are 1e-13 of the largest.",
            size=9.5e-8,
        ),
    ),
)


# --- tiny elements: a wide softmax ----------------------------------------------------------------


def wide_softmax_forward(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis of logits spanning about 20 nats."""
    return softmax(x)


def _wide_softmax_grad(dout: np.ndarray, x: np.ndarray, floor: float = 0.0) -> Grads:
    p = np.maximum(softmax(x), floor)  # np.clip(p, 1e-7, 1): the probability floor of cross-entropy code
    return ((p * (dout - np.sum(p * dout, axis=-1, keepdims=True))).astype(x.dtype),)


def wide_softmax_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """p * (dout - <p, dout>) per row."""
    return _wide_softmax_grad(dout, x)


def _wide_softmax_clipped(dout: np.ndarray, x: np.ndarray) -> Grads:
    return _wide_softmax_grad(dout, x, floor=1e-7)


def _wide_softmax_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    x = rng.standard_normal((3, 10))
    x[:, :4] -= 18.0  # probabilities near 1e-8 beside ones near 1
    return {"x": x.astype(dtype)}


WIDE_SOFTMAX = Layer(
    name="wide_softmax",
    family="activation",
    forward=wide_softmax_forward,
    backward=wide_softmax_backward,
    make_inputs=_wide_softmax_inputs,
    bugs=(
        Bug(
            "probability_clipped",
            _wide_softmax_clipped,
            "subtle",
            "Clips p at 1e-7 in the backward (np.clip(p, 1e-7, 1)): about 10 times too large on the entries of "
            "probability 1e-8, whose gradients are 1e-8 of the largest.",
            size=5e-7,
        ),
    ),
)


# --- masked inputs: softmax and logsumexp of logits holding -inf ----------------------------------


def _masked_logits(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    x = randn(rng, (4, 8), np.float64)
    mask = rng.random((4, 8)) < 0.3
    mask[:, 0] = False  # every row keeps at least one entry
    x[mask] = -np.inf
    return {"x": x.astype(dtype)}


def masked_softmax_forward(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis; -inf entries (masked) get probability 0."""
    return softmax(x)


def _masked_softmax_grad(dout: np.ndarray, x: np.ndarray, fill: bool = False, drop_sum: bool = False) -> Grads:
    p = softmax(np.where(np.isfinite(x), x, 0.0) if fill else x)
    s = 0.0 if drop_sum else np.sum(p * dout, axis=-1, keepdims=True)
    return ((p * (dout - s)).astype(x.dtype),)


def masked_softmax_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """p * (dout - <p, dout>); 0 at masked entries, where p is 0."""
    return _masked_softmax_grad(dout, x)


def _masked_softmax_filled(dout: np.ndarray, x: np.ndarray) -> Grads:
    return _masked_softmax_grad(dout, x, fill=True)


def _masked_softmax_no_sum(dout: np.ndarray, x: np.ndarray) -> Grads:
    return _masked_softmax_grad(dout, x, drop_sum=True)


MASKED_SOFTMAX = Layer(
    name="masked_softmax",
    family="activation",
    forward=masked_softmax_forward,
    backward=masked_softmax_backward,
    make_inputs=_masked_logits,
    bugs=(
        Bug(
            "mask_filled_with_zero",
            _masked_softmax_filled,
            "gross",
            "Recomputes p in the backward from logits whose masked entries were filled with 0 (np.nan_to_num "
            "style) instead of -inf: the masked entries take probability mass.",
            size=0.4,
        ),
        Bug(
            "mean_term_dropped",
            _masked_softmax_no_sum,
            "gross",
            "Returns p * dout, dropping the - p <p, dout> term of the softmax Jacobian.",
            size=0.2,
        ),
    ),
)


def masked_logsumexp_forward(x: np.ndarray) -> np.ndarray:
    """log(sum(exp(x))) of each row, -inf entries (masked) contributing nothing: (N, D) -> (N,)."""
    m = np.max(x, axis=-1, keepdims=True)
    return (m + np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True)))[:, 0]


def _masked_logsumexp_grad(dout: np.ndarray, x: np.ndarray, unmasked_mean: bool = False) -> Grads:
    if unmasked_mean:  # as if every kept entry had the same weight
        kept = np.isfinite(x)
        return ((dout[:, None] * kept / kept.sum(axis=-1, keepdims=True)).astype(x.dtype),)
    return ((dout[:, None] * softmax(x)).astype(x.dtype),)


def masked_logsumexp_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """dout * softmax(x) per row; 0 at masked entries."""
    return _masked_logsumexp_grad(dout, x)


def _masked_logsumexp_mean(dout: np.ndarray, x: np.ndarray) -> Grads:
    return _masked_logsumexp_grad(dout, x, unmasked_mean=True)


MASKED_LOGSUMEXP = Layer(
    name="masked_logsumexp",
    family="reduction",
    forward=masked_logsumexp_forward,
    backward=masked_logsumexp_backward,
    make_inputs=_masked_logits,
    bugs=(
        Bug(
            "uniform_weights",
            _masked_logsumexp_mean,
            "gross",
            "Spreads each row's gradient evenly over the unmasked entries (the gradient of a masked mean), "
            "not by their softmax weights.",
            size=0.44,
        ),
    ),
)


# --- a dropout whose random seed is an argument -----------------------------------------------------

DROP_P = 0.4


def dropout_rng_forward(x: np.ndarray, seed: int) -> np.ndarray:
    """Inverted dropout: x * mask / (1 - p), the mask drawn from a generator seeded with ``seed`` (p = 0.4), as a
    layer taking its seed as an argument does (CS231n's ``dropout_param['seed']``)."""
    mask = np.random.default_rng(seed).random(x.shape) >= DROP_P
    return x * mask / (1 - DROP_P)


def _dropout_rng_grad(
    dout: np.ndarray, x: np.ndarray, seed: int, apply_mask: bool = True, scale: float = 1 / (1 - DROP_P)
) -> Grads:
    mask = np.random.default_rng(seed).random(x.shape) >= DROP_P  # the forward's draw: the same seed
    return ((dout * (mask if apply_mask else 1.0) * scale).astype(x.dtype), None)


def dropout_rng_backward(dout: np.ndarray, x: np.ndarray, seed: int) -> Grads:
    """dout * mask / (1 - p) with the mask drawn again from the same seed; no gradient for the seed."""
    return _dropout_rng_grad(dout, x, seed)


def _dropout_rng_no_mask(dout: np.ndarray, x: np.ndarray, seed: int) -> Grads:
    return _dropout_rng_grad(dout, x, seed, apply_mask=False)


def _dropout_rng_keep_scale(dout: np.ndarray, x: np.ndarray, seed: int) -> Grads:
    return _dropout_rng_grad(dout, x, seed, scale=1 / DROP_P)


def _dropout_rng_other_stream(dout: np.ndarray, x: np.ndarray, seed: int) -> Grads:
    mask = np.random.default_rng(seed + 1).random(x.shape) >= DROP_P  # another stream: not the forward's mask
    return ((dout * mask / (1 - DROP_P)).astype(x.dtype), None)


def _dropout_rng_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, object]:
    return {"x": randn(rng, (5, 6), dtype), "seed": int(rng.integers(2**31))}


DROPOUT_RNG = Layer(
    name="dropout_rng",
    family="regularization",
    forward=dropout_rng_forward,
    backward=dropout_rng_backward,
    make_inputs=_dropout_rng_inputs,  # type: ignore[arg-type]
    bugs=(
        Bug(
            "mask_not_applied",
            _dropout_rng_no_mask,
            "gross",
            "Scales dout by 1 / (1 - p) but forgets the mask: dropped units get a gradient.",
            size=1.5,
        ),
        Bug(
            "scale_of_dropped_fraction",
            _dropout_rng_keep_scale,
            "gross",
            "Scales by 1 / p (the dropped fraction) instead of 1 / (1 - p).",
            size=0.5,
        ),
        Bug(
            "mask_from_another_stream",
            _dropout_rng_other_stream,
            "gross",
            "Draws the backward's mask from another seed than the forward's: another mask.",
            size=1.5,
        ),
    ),
)

#: Layers at tie groups, tiny elements, masked inputs and random-seed arguments; every bug shows at make_inputs.
LAYERS: tuple[Layer, ...] = (
    _maxpool_ties_layer(2),
    _maxpool_ties_layer(3),
    _maxpool_ties_layer(4),
    ROWMAX_TIES,
    NORMALIZE_TINY_ROWS,
    ROW_PRODUCT,
    WIDE_SOFTMAX,
    MASKED_SOFTMAX,
    MASKED_LOGSUMEXP,
    DROPOUT_RNG,
)
