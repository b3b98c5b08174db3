"""Scaled dot-product attention, plain and with a (non-differentiable) boolean mask."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import DTypeLike

from backcheck.zoo._common import randn, softmax
from backcheck.zoo._registry import Bug, Grads, Layer, scale_bug


def _t(a: np.ndarray) -> np.ndarray:
    """Transpose the last two axes."""
    return np.swapaxes(a, -1, -2)


def _probs(q: np.ndarray, k: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    scores = (q @ _t(k)) * (1.0 / math.sqrt(q.shape[-1]))
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    return softmax(scores, axis=-1)


def _attention_grads(
    dout: np.ndarray,
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    p: np.ndarray,
    scale: bool = True,
    transpose: bool = True,
    full_jacobian: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of out = p @ v with p = softmax(q k^T / sqrt(d)) given the probabilities p."""
    dv = (_t(p) if transpose else p) @ dout
    dp = dout @ _t(v)
    # softmax Jacobian-vector product (the bug keeps only its diagonal, as if softmax were elementwise)
    ds = p * (dp - np.sum(dp * p, axis=-1, keepdims=True)) if full_jacobian else dp * p * (1 - p)
    if scale:
        ds = ds * (1.0 / math.sqrt(q.shape[-1]))
    return ds @ k, _t(ds) @ q, dv


# --- attention ------------------------------------------------------------------------------------


def attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """softmax(q k^T / sqrt(d)) v for q, k, v of shape (B, T, d)."""
    return _probs(q, k) @ v


def attention_backward(dout: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> Grads:
    """Backward through the value product, the row softmax and the scaled score product."""
    return _attention_grads(dout, q, k, v, _probs(q, k))


def _att_missing_scale(dout: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> Grads:
    return _attention_grads(dout, q, k, v, _probs(q, k), scale=False)


def _att_missing_transpose(dout: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> Grads:
    return _attention_grads(dout, q, k, v, _probs(q, k), transpose=False)


def _att_softmax_diagonal(dout: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> Grads:
    return _attention_grads(dout, q, k, v, _probs(q, k), full_jacobian=False)


def _att_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    # as many queries as keys, so using p instead of p^T for dv runs silently
    return {
        "q": randn(rng, (2, 4, 3), dtype),
        "k": randn(rng, (2, 4, 3), dtype),
        "v": randn(rng, (2, 4, 3), dtype),
    }


ATTENTION = Layer(
    name="attention",
    family="attention",
    forward=attention_forward,
    backward=attention_backward,
    make_inputs=_att_inputs,
    bugs=(
        Bug(
            "missing_scale",
            _att_missing_scale,
            "gross",
            "Forgets the 1/sqrt(d) factor when backpropagating into q and k.",
        ),
        Bug("missing_transpose", _att_missing_transpose, "gross", "dv = p @ dout instead of p^T @ dout."),
        Bug(
            "softmax_diagonal_only",
            _att_softmax_diagonal,
            "gross",
            "Treats the softmax as elementwise: ds = dp * p * (1 - p).",
        ),
        scale_bug(attention_backward, 3),
    ),
)


# --- masked attention -----------------------------------------------------------------------------


def masked_attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Attention where scores with mask == False are excluded (causal mask here)."""
    return _probs(q, k, mask) @ v


def masked_attention_backward(
    dout: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray
) -> Grads:
    """As attention; masked probabilities are exactly 0 so they receive no gradient. The mask gets None."""
    return (*_attention_grads(dout, q, k, v, _probs(q, k, mask)), None)


def _matt_mask_ignored(
    dout: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray
) -> Grads:
    return (*_attention_grads(dout, q, k, v, _probs(q, k)), None)


def _matt_missing_scale(
    dout: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray
) -> Grads:
    return (*_attention_grads(dout, q, k, v, _probs(q, k, mask), scale=False), None)


def _matt_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    inputs = _att_inputs(rng, dtype)
    inputs["mask"] = np.tril(np.ones((4, 4), dtype=bool))
    return inputs


MASKED_ATTENTION = Layer(
    name="masked_attention",
    family="attention",
    forward=masked_attention_forward,
    backward=masked_attention_backward,
    make_inputs=_matt_inputs,
    bugs=(
        Bug(
            "mask_ignored_in_backward",
            _matt_mask_ignored,
            "gross",
            "Recomputes the attention probabilities in the backward without the mask.",
        ),
        Bug(
            "missing_scale",
            _matt_missing_scale,
            "gross",
            "Forgets the 1/sqrt(d) factor in the score gradient.",
        ),
    ),
)

LAYERS: tuple[Layer, ...] = (ATTENTION, MASKED_ATTENTION)
