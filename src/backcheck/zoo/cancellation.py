"""Layers whose inner value is a small difference of large terms: rounding far above ``eps`` times the output.

A pre-activation of 1e-7 summed from terms of size 1 carries their rounding, about 1e-16, whatever its own
size: 1e-9 of itself. What it feeds then jitters by that relative amount (its square by twice as much), far
above the rounding ``eps * |output|`` a noise model built on the output's size expects, and a correct backward
pass, computed from the same rounded value, is off by as much. Each layer here sits at such a point:

- ``cancel_matmul_square``: ``(x @ w + b) ** 2`` where ``b`` cancels ``x @ w`` to about ``8 sqrt(eps)``;
- ``cancel_center_square``: ``(x - mean(x)) ** 2`` over rows of values within ``8 sqrt(eps)`` of 1 (a batch
  norm's centering);
- ``cancel_residual_square``: ``((x + r) - x) ** 2``, a residual branch ``r`` of ``8 sqrt(eps)`` added to and
  taken from a stream of size 1;
- ``cancel_softmax_shared_logit``: a softmax of ``x @ w + c`` whose logits share ``c = 1000``: their
  differences are rounded at ``eps * 1000``.

``8 sqrt(eps)`` is 1.2e-7 in float64 and 2.8e-3 in float32. Each layer has two wrong backwards: one gradient
element off by 1e-3 of the largest (``one_wrong_element``), and a term dropped. A check must pass the correct
backward (or call it inconclusive) and fail the wrong ones. The layers are kept out of ``LAYERS`` in
``CANCELLATION_LAYERS``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from backcheck.zoo._common import randn, softmax
from backcheck.zoo._registry import Bug, Grads, Layer, one_wrong_element

#: The shared logit of the softmax layer.
SHARED_LOGIT = 1000.0


def small(dtype: DTypeLike) -> float:
    """The size of the cancelled values: ``8 sqrt(eps)`` of the dtype."""
    return 8.0 * float(np.sqrt(np.finfo(np.dtype(dtype)).eps))


# --- (x @ w + b) ** 2 with b cancelling x @ w -------------------------------------------------------------


def cancel_matmul_square_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``z ** 2`` with ``z = x @ w + b``; x (N, D), w (D, M), b (N, M)."""
    z = x @ w + b
    return z * z


def _matmul_square_grads(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, bias: bool) -> Grads:
    z = x @ w + b if bias else x @ w
    dz = 2 * z * dout
    return dz @ w.T, x.T @ dz, dz


def cancel_matmul_square_backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Grads:
    """``dz = 2 z dout``; ``dx = dz w^T``, ``dw = x^T dz``, ``db = dz``."""
    return _matmul_square_grads(dout, x, w, b, bias=True)


def _matmul_square_without_bias(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Grads:
    return _matmul_square_grads(dout, x, w, b, bias=False)


def _matmul_square_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    x, w = randn(rng, (4, 8), dtype), randn(rng, (8, 3), dtype)
    wide = x.astype(np.float64) @ w.astype(np.float64)
    b = (-wide + small(dtype) * rng.standard_normal(wide.shape)).astype(dtype)
    return {"x": x, "w": w, "b": b}


# --- (x - mean(x)) ** 2 over rows near 1 -------------------------------------------------------------------


def cancel_center_square_forward(x: np.ndarray) -> np.ndarray:
    """``c ** 2`` with ``c = x - mean(x)`` per row; x (N, D)."""
    c = x - x.mean(axis=1, keepdims=True)
    return c * c


def _center_square_grads(dout: np.ndarray, x: np.ndarray, centred: bool) -> Grads:
    d = 2 * (x - x.mean(axis=1, keepdims=True)) * dout
    return (d - d.mean(axis=1, keepdims=True) if centred else d,)


def cancel_center_square_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """``d = 2 c dout``, centred per row: ``d - mean(d)``."""
    return _center_square_grads(dout, x, centred=True)


def _center_square_mean_dropped(dout: np.ndarray, x: np.ndarray) -> Grads:
    return _center_square_grads(dout, x, centred=False)


def _center_square_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": (1.0 + small(dtype) * rng.standard_normal((3, 8))).astype(dtype)}


# --- ((x + r) - x) ** 2: a small residual branch -------------------------------------------------------------


def cancel_residual_square_forward(x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``y ** 2`` with ``y = (x + r) - x``; x, r (N,)."""
    y = (x + r) - x
    return y * y


def cancel_residual_square_backward(dout: np.ndarray, x: np.ndarray, r: np.ndarray) -> Grads:
    """``dx = 0`` (the stream cancels), ``dr = 2 y dout``."""
    y = (x + r) - x
    return np.zeros_like(x), 2 * y * dout


def _residual_square_stream_kept(dout: np.ndarray, x: np.ndarray, r: np.ndarray) -> Grads:
    y = (x + r) - x
    return 2 * y * dout, 2 * y * dout  # the stream's gradient through x + r, without its - x


def _residual_square_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": randn(rng, (12,), dtype), "r": randn(rng, (12,), dtype, scale=small(dtype))}


# --- softmax with a large shared logit ---------------------------------------------------------------------


def cancel_softmax_shared_logit_forward(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``softmax(x @ w + 1000)`` per row; x (N, D), w (D, M)."""
    return softmax(x @ w + x.dtype.type(SHARED_LOGIT))


def _softmax_grads(dout: np.ndarray, x: np.ndarray, w: np.ndarray, jacobian: bool) -> Grads:
    p = softmax(x @ w + x.dtype.type(SHARED_LOGIT))
    dz = p * (dout - np.sum(dout * p, axis=1, keepdims=True)) if jacobian else p * dout
    return dz @ w.T, x.T @ dz


def cancel_softmax_shared_logit_backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray) -> Grads:
    """``dz = p (dout - sum(dout p))``; ``dx = dz w^T``, ``dw = x^T dz``."""
    return _softmax_grads(dout, x, w, jacobian=True)


def _softmax_diagonal_only(dout: np.ndarray, x: np.ndarray, w: np.ndarray) -> Grads:
    return _softmax_grads(dout, x, w, jacobian=False)


def _softmax_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": randn(rng, (3, 6), dtype), "w": randn(rng, (6, 5), dtype)}


LAYERS: tuple[Layer, ...] = (
    Layer(
        name="cancel_matmul_square",
        family="linear",
        forward=cancel_matmul_square_forward,
        backward=cancel_matmul_square_backward,
        make_inputs=_matmul_square_inputs,
        bugs=(
            one_wrong_element(cancel_matmul_square_backward, which=0, index=1),
            Bug(
                "bias_dropped_in_backward",
                _matmul_square_without_bias,
                "gross",
                "The backward recomputes the pre-activation without its bias: 2 (x @ w) instead of 2 (x @ w + b).",
            ),
        ),
    ),
    Layer(
        name="cancel_center_square",
        family="normalization",
        forward=cancel_center_square_forward,
        backward=cancel_center_square_backward,
        make_inputs=_center_square_inputs,
        bugs=(
            one_wrong_element(cancel_center_square_backward, which=0, index=1),
            Bug(
                "mean_term_dropped",
                _center_square_mean_dropped,
                "gross",
                "The centering's backward forgets the mean term: d instead of d - mean(d).",
            ),
        ),
    ),
    Layer(
        name="cancel_residual_square",
        family="elementwise",
        forward=cancel_residual_square_forward,
        backward=cancel_residual_square_backward,
        make_inputs=_residual_square_inputs,
        bugs=(
            one_wrong_element(cancel_residual_square_backward, which=1, index=1),
            Bug(
                "stream_not_cancelled",
                _residual_square_stream_kept,
                "gross",
                "The stream x gets the gradient of x + r, without that of the - x that cancels it.",
            ),
        ),
    ),
    Layer(
        name="cancel_softmax_shared_logit",
        family="activation",
        forward=cancel_softmax_shared_logit_forward,
        backward=cancel_softmax_shared_logit_backward,
        make_inputs=_softmax_inputs,
        bugs=(
            one_wrong_element(cancel_softmax_shared_logit_backward, which=0, index=1),
            Bug(
                "softmax_jacobian_diagonal_only",
                _softmax_diagonal_only,
                "gross",
                "The softmax backward keeps the Jacobian's diagonal p * dout and drops - p sum(dout p).",
            ),
        ),
    ),
)
