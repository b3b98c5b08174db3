"""Regularization: inverted dropout with an explicit mask, and L2 / L1 weight penalties."""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from backcheck.zoo._common import away_from_zero, randn
from backcheck.zoo._registry import Bug, Grads, Layer, scale_bug

KEEP = 0.6  # keep probability
LAMBDA = 0.1  # penalty strength

# --- dropout --------------------------------------------------------------------------------------


def dropout_forward(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Inverted dropout x * mask / KEEP; the random mask is an explicit (non-differentiable) input."""
    return x * mask / KEEP


def dropout_backward(dout: np.ndarray, x: np.ndarray, mask: np.ndarray) -> Grads:
    """dout * mask / KEEP; no gradient for the mask."""
    return dout * mask / KEEP, None


def _dropout_mask_missing(dout: np.ndarray, x: np.ndarray, mask: np.ndarray) -> Grads:
    return dout / KEEP, None


def _dropout_missing_scale(dout: np.ndarray, x: np.ndarray, mask: np.ndarray) -> Grads:
    return dout * mask, None


def _dropout_scaled_by_keep(dout: np.ndarray, x: np.ndarray, mask: np.ndarray) -> Grads:
    return dout * mask * KEEP, None


def _dropout_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    mask = rng.random((4, 6)) < KEEP
    mask[0, :2] = (True, False)  # at least one kept and one dropped element
    return {"x": randn(rng, (4, 6), dtype), "mask": mask}


DROPOUT = Layer(
    name="dropout",
    family="regularization",
    forward=dropout_forward,
    backward=dropout_backward,
    make_inputs=_dropout_inputs,
    bugs=(
        Bug(
            "mask_missing",
            _dropout_mask_missing,
            "gross",
            "Forgets the mask in the backward, so dropped units still receive gradient.",
        ),
        Bug(
            "missing_scale",
            _dropout_missing_scale,
            "gross",
            "Forgets the 1/keep_prob scale of inverted dropout.",
        ),
        Bug(
            "scaled_by_keep_prob",
            _dropout_scaled_by_keep,
            "gross",
            "Multiplies by keep_prob instead of dividing.",
        ),
    ),
)


# --- L2 weight decay ------------------------------------------------------------------------------


def weight_decay_l2_forward(w: np.ndarray) -> np.floating:
    """0.5 * lambda * sum(w**2)."""
    return 0.5 * LAMBDA * np.sum(w * w)


def weight_decay_l2_backward(dout: float, w: np.ndarray) -> Grads:
    """lambda * w."""
    return (w * (LAMBDA * float(dout)),)


def _wd_missing_half(dout: float, w: np.ndarray) -> Grads:
    return (w * (2 * LAMBDA * float(dout)),)


def _wd_wrong_sign(dout: float, w: np.ndarray) -> Grads:
    return (w * (-LAMBDA * float(dout)),)


def _wd_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"w": randn(rng, (5, 4), dtype)}


WEIGHT_DECAY_L2 = Layer(
    name="weight_decay_l2",
    family="regularization",
    forward=weight_decay_l2_forward,
    backward=weight_decay_l2_backward,
    make_inputs=_wd_inputs,
    loss=True,
    bugs=(
        Bug(
            "missing_half",
            _wd_missing_half,
            "gross",
            "Writes 2 * lambda * w, forgetting that the 0.5 in the penalty cancels the 2.",
        ),
        Bug("wrong_sign", _wd_wrong_sign, "gross", "Returns -lambda * w: decay turns into growth."),
        scale_bug(weight_decay_l2_backward, 5),
    ),
)


# --- L1 penalty -----------------------------------------------------------------------------------


def weight_decay_l1_forward(w: np.ndarray) -> np.floating:
    """lambda * sum(|w|)."""
    return LAMBDA * np.sum(np.abs(w))


def weight_decay_l1_backward(dout: float, w: np.ndarray) -> Grads:
    """lambda * sign(w) (subgradient 0 at w == 0)."""
    return (np.sign(w) * (LAMBDA * float(dout)),)


def _l1_uses_l2(dout: float, w: np.ndarray) -> Grads:
    return (w * (LAMBDA * float(dout)),)


def _l1_missing_lambda(dout: float, w: np.ndarray) -> Grads:
    return (np.sign(w) * float(dout),)


def _l1_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"w": away_from_zero(rng, (5, 4), dtype)}


def _l1_kinks(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    w = away_from_zero(rng, (5, 4), dtype)
    w.reshape(-1)[::3] = 0
    return {"w": w}


WEIGHT_DECAY_L1 = Layer(
    name="weight_decay_l1",
    family="regularization",
    forward=weight_decay_l1_forward,
    backward=weight_decay_l1_backward,
    make_inputs=_l1_inputs,
    kinks=_l1_kinks,
    loss=True,
    bugs=(
        Bug("uses_l2_gradient", _l1_uses_l2, "gross", "Returns lambda * w, the gradient of the L2 penalty."),
        Bug("missing_lambda", _l1_missing_lambda, "gross", "Forgets to multiply sign(w) by lambda."),
    ),
)

LAYERS: tuple[Layer, ...] = (DROPOUT, WEIGHT_DECAY_L2, WEIGHT_DECAY_L1)
