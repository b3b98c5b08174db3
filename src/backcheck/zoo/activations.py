"""Activation functions: relu and friends, sigmoid/tanh/gelu/softplus, softmax and log-softmax."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import DTypeLike

from backcheck.zoo._common import away_from_zero, randn, sigmoid, softmax
from backcheck.zoo._registry import Bug, Grads, Layer, one_wrong_element, scale_bug

LEAKY_SLOPE = 0.1
ELU_ALPHA = 0.5  # with alpha != 1 the ELU has a real kink at 0
GELU_C = math.sqrt(2.0 / math.pi)
GELU_K = 0.044715


def _zeros_at(x: np.ndarray, step: int = 3) -> np.ndarray:
    """A copy of ``x`` with every ``step``-th element set exactly to 0."""
    x = x.copy()
    x.reshape(-1)[::step] = 0
    return x


# --- relu ------------------------------------------------------------------------------------


def relu_forward(x: np.ndarray) -> np.ndarray:
    """max(x, 0)."""
    return np.maximum(x, 0)


def relu_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """Pass the gradient where x > 0 (subgradient 0 at x == 0)."""
    return (dout * (x > 0),)


def _relu_mask_from_dout(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (dout * (dout > 0),)


def _relu_inplace_clamp(dout: np.ndarray, x: np.ndarray) -> Grads:
    x[x < 0] = 0  # "save memory": clamps the caller's array in place
    return (dout * (x >= 0),)  # ...after which every element looks active


def _relu_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": away_from_zero(rng, (4, 6), dtype)}


def _relu_kinks(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": _zeros_at(randn(rng, (4, 6), dtype))}


RELU = Layer(
    name="relu",
    family="activation",
    forward=relu_forward,
    backward=relu_backward,
    make_inputs=_relu_inputs,
    kinks=_relu_kinks,
    bugs=(
        Bug(
            "mask_from_dout",
            _relu_mask_from_dout,
            "gross",
            "The mask is built from the upstream gradient (dout > 0) instead of the input (x > 0).",
        ),
        Bug(
            "inplace_clamp",
            _relu_inplace_clamp,
            "gross",
            "Clamps x in place to reuse its memory, then tests x >= 0, which is now true everywhere.",
            mutates=True,
        ),
    ),
)


# --- leaky relu --------------------------------------------------------------------------------


def leaky_relu_forward(x: np.ndarray) -> np.ndarray:
    """x for x > 0, LEAKY_SLOPE * x otherwise."""
    return np.where(x > 0, x, LEAKY_SLOPE * x)


def leaky_relu_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """1 on the positive side, the slope on the negative side (and at 0)."""
    return (np.where(x > 0, dout, LEAKY_SLOPE * dout),)


def _leaky_zero_slope(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (dout * (x > 0),)


def _leaky_wrong_side(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (np.where(x > 0, LEAKY_SLOPE * dout, dout),)


LEAKY_RELU = Layer(
    name="leaky_relu",
    family="activation",
    forward=leaky_relu_forward,
    backward=leaky_relu_backward,
    make_inputs=_relu_inputs,
    kinks=_relu_kinks,
    bugs=(
        Bug(
            "zero_negative_slope",
            _leaky_zero_slope,
            "gross",
            "Copy-pasted the relu backward: the negative side gets 0 instead of the slope.",
        ),
        Bug(
            "slope_on_wrong_side",
            _leaky_wrong_side,
            "gross",
            "The slope multiplies the positive side and the negative side passes unchanged.",
        ),
        scale_bug(leaky_relu_backward, 3),
    ),
)


# --- prelu ---------------------------------------------------------------------------------------


def prelu_forward(x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Leaky relu with a learned slope per feature: x of shape (N, C), alpha of shape (C,)."""
    return np.where(x > 0, x, alpha * x)


def prelu_backward(dout: np.ndarray, x: np.ndarray, alpha: np.ndarray) -> Grads:
    """dx as leaky relu; dalpha sums dout * x over the negative part and over the batch."""
    dx = np.where(x > 0, dout, alpha * dout)
    dalpha = np.sum(dout * np.minimum(x, 0), axis=0)
    return dx, dalpha


def _prelu_alpha_not_summed(dout: np.ndarray, x: np.ndarray, alpha: np.ndarray) -> Grads:
    dx = np.where(x > 0, dout, alpha * dout)
    return dx, (dout * np.minimum(x, 0))[0]


def _prelu_alpha_positive_part(dout: np.ndarray, x: np.ndarray, alpha: np.ndarray) -> Grads:
    dx = np.where(x > 0, dout, alpha * dout)
    return dx, np.sum(dout * x, axis=0)


def _prelu_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": away_from_zero(rng, (5, 4), dtype), "alpha": (0.1 + 0.2 * rng.random(4)).astype(dtype)}


def _prelu_kinks(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    inputs = _prelu_inputs(rng, dtype)
    inputs["x"] = _zeros_at(inputs["x"])
    return inputs


PRELU = Layer(
    name="prelu",
    family="activation",
    forward=prelu_forward,
    backward=prelu_backward,
    make_inputs=_prelu_inputs,
    kinks=_prelu_kinks,
    bugs=(
        Bug(
            "alpha_grad_not_summed",
            _prelu_alpha_not_summed,
            "gross",
            "The slope gradient is taken from the first example only instead of summed over the batch.",
        ),
        Bug(
            "alpha_grad_positive_part",
            _prelu_alpha_positive_part,
            "gross",
            "The slope gradient sums dout * x over all elements, not only the negative ones.",
        ),
    ),
)


# --- sigmoid --------------------------------------------------------------------------------------


def sigmoid_forward(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x))."""
    return sigmoid(x)


def sigmoid_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """s * (1 - s) with s the output."""
    s = sigmoid(x)
    return (dout * s * (1 - s),)


def _sigmoid_from_input(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (dout * x * (1 - x),)


def _sigmoid_missing_one_minus(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (dout * sigmoid(x),)


def _smooth_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": randn(rng, (4, 6), dtype, scale=1.5)}


SIGMOID = Layer(
    name="sigmoid",
    family="activation",
    forward=sigmoid_forward,
    backward=sigmoid_backward,
    make_inputs=_smooth_inputs,
    bugs=(
        Bug(
            "derivative_from_input",
            _sigmoid_from_input,
            "gross",
            "Uses x * (1 - x) instead of s * (1 - s): the derivative formula is applied to the input.",
        ),
        Bug(
            "missing_one_minus",
            _sigmoid_missing_one_minus,
            "gross",
            "Forgets the (1 - s) factor of the sigmoid derivative.",
        ),
        scale_bug(sigmoid_backward, 3),
    ),
)


# --- tanh -----------------------------------------------------------------------------------------


def tanh_forward(x: np.ndarray) -> np.ndarray:
    """tanh(x)."""
    return np.tanh(x)


def tanh_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """1 - t**2 with t the output."""
    t = np.tanh(x)
    return (dout * (1 - t * t),)


def _tanh_from_input(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (dout * (1 - x * x),)


def _tanh_missing_square(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (dout * (1 - np.tanh(x)),)


TANH = Layer(
    name="tanh",
    family="activation",
    forward=tanh_forward,
    backward=tanh_backward,
    make_inputs=_smooth_inputs,
    bugs=(
        Bug(
            "derivative_from_input",
            _tanh_from_input,
            "gross",
            "Uses 1 - x**2 instead of 1 - tanh(x)**2: the derivative formula is applied to the input.",
        ),
        Bug("missing_square", _tanh_missing_square, "gross", "Writes 1 - t instead of 1 - t**2."),
        scale_bug(tanh_backward, 5),
    ),
)


# --- gelu (tanh approximation) ----------------------------------------------------------------


def gelu_forward(x: np.ndarray) -> np.ndarray:
    """0.5 x (1 + tanh(c (x + k x**3))), the tanh approximation of GELU."""
    return 0.5 * x * (1 + np.tanh(GELU_C * (x + GELU_K * x**3)))


def _gelu_grad(
    x: np.ndarray, inner_slope: np.ndarray | float, half: float = 0.5, from_input: bool = False
) -> np.ndarray:
    u = GELU_C * (x + GELU_K * x**3)
    t = np.tanh(u)
    dt = 1 - (u * u if from_input else t * t)
    return half * (1 + t) + 0.5 * x * dt * inner_slope


def gelu_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """Product rule, with the chain rule through the cubic inside the tanh."""
    return (dout * _gelu_grad(x, GELU_C * (1 + 3 * GELU_K * x * x)),)


def _gelu_missing_half(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (dout * _gelu_grad(x, GELU_C * (1 + 3 * GELU_K * x * x), half=1.0),)


def _gelu_tanh_from_input(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (dout * _gelu_grad(x, GELU_C * (1 + 3 * GELU_K * x * x), from_input=True),)


def _gelu_missing_cubic(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (dout * _gelu_grad(x, GELU_C),)


GELU = Layer(
    name="gelu",
    family="activation",
    forward=gelu_forward,
    backward=gelu_backward,
    make_inputs=_smooth_inputs,
    bugs=(
        Bug("missing_half", _gelu_missing_half, "gross", "Forgets the 0.5 in front of (1 + tanh(u))."),
        Bug(
            "derivative_from_input",
            _gelu_tanh_from_input,
            "gross",
            "Uses 1 - u**2 for the tanh derivative instead of 1 - tanh(u)**2.",
        ),
        Bug(
            "missing_cubic_term",
            _gelu_missing_cubic,
            "gross",
            "Differentiates the inner c * (x + k x**3) as if it were c * x.",
        ),
    ),
)


# --- softplus -------------------------------------------------------------------------------------


def softplus_forward(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)), computed stably."""
    return np.logaddexp(0, x)


def softplus_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """The derivative of softplus is the sigmoid."""
    return (dout * sigmoid(x),)


def _softplus_exp(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (dout * np.exp(x),)


def _softplus_from_output(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (dout * sigmoid(np.logaddexp(0, x)),)


SOFTPLUS = Layer(
    name="softplus",
    family="activation",
    forward=softplus_forward,
    backward=softplus_backward,
    make_inputs=_smooth_inputs,
    bugs=(
        Bug(
            "uses_exp",
            _softplus_exp,
            "gross",
            "Differentiates log(1 + e^x) as e^x, forgetting the 1/(1 + e^x).",
        ),
        Bug(
            "derivative_from_output",
            _softplus_from_output,
            "gross",
            "Applies sigmoid to the output instead of the input.",
        ),
    ),
)


# --- elu ------------------------------------------------------------------------------------------


def elu_forward(x: np.ndarray) -> np.ndarray:
    """x for x > 0, alpha (exp(x) - 1) otherwise (alpha = 0.5)."""
    return np.where(x > 0, x, ELU_ALPHA * np.expm1(np.minimum(x, 0)))


def elu_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """1 on the positive side, alpha exp(x) = out + alpha on the negative side (and at 0)."""
    return (np.where(x > 0, dout, dout * (ELU_ALPHA * np.exp(np.minimum(x, 0)))),)


def _elu_missing_alpha(dout: np.ndarray, x: np.ndarray) -> Grads:
    out = elu_forward(x)
    return (np.where(x > 0, dout, dout * out),)


def _elu_exp_without_alpha(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (np.where(x > 0, dout, dout * np.exp(np.minimum(x, 0))),)


ELU = Layer(
    name="elu",
    family="activation",
    forward=elu_forward,
    backward=elu_backward,
    make_inputs=_relu_inputs,
    kinks=_relu_kinks,
    bugs=(
        Bug(
            "derivative_from_output_missing_alpha",
            _elu_missing_alpha,
            "gross",
            "Writes the negative-side derivative as out instead of out + alpha.",
        ),
        Bug(
            "exp_without_alpha",
            _elu_exp_without_alpha,
            "gross",
            "Uses exp(x) on the negative side and forgets the factor alpha.",
        ),
        one_wrong_element(elu_backward),
    ),
)


# --- softmax --------------------------------------------------------------------------------------


def softmax_forward(x: np.ndarray) -> np.ndarray:
    """Softmax along the last axis."""
    return softmax(x, axis=-1)


def softmax_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """Jacobian-vector product: s * (dout - sum(dout * s))."""
    s = softmax(x, axis=-1)
    return (s * (dout - np.sum(dout * s, axis=-1, keepdims=True)),)


def _softmax_diagonal_only(dout: np.ndarray, x: np.ndarray) -> Grads:
    s = softmax(x, axis=-1)
    return (dout * s * (1 - s),)


def _softmax_wrong_axis(dout: np.ndarray, x: np.ndarray) -> Grads:
    s = softmax(x, axis=-1)
    return (s * (dout - np.sum(dout * s, axis=0, keepdims=True)),)


def _softmax_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": randn(rng, (4, 5), dtype)}


SOFTMAX = Layer(
    name="softmax",
    family="activation",
    forward=softmax_forward,
    backward=softmax_backward,
    make_inputs=_softmax_inputs,
    bugs=(
        Bug(
            "diagonal_only",
            _softmax_diagonal_only,
            "gross",
            "Keeps only the diagonal s * (1 - s) of the softmax Jacobian, as if it were elementwise.",
        ),
        Bug(
            "sum_over_wrong_axis",
            _softmax_wrong_axis,
            "gross",
            "Sums dout * s over the batch axis instead of the class axis.",
        ),
        scale_bug(softmax_backward, 5),
    ),
)


# --- log-softmax ----------------------------------------------------------------------------------


def log_softmax_forward(x: np.ndarray) -> np.ndarray:
    """x - logsumexp(x) along the last axis."""
    m = np.max(x, axis=-1, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True))


def log_softmax_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """dout - softmax(x) * sum(dout)."""
    s = softmax(x, axis=-1)
    return (dout - s * np.sum(dout, axis=-1, keepdims=True),)


def _log_softmax_missing_term(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (dout.copy(),)


def _log_softmax_uses_log_probs(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (dout - log_softmax_forward(x) * np.sum(dout, axis=-1, keepdims=True),)


LOG_SOFTMAX = Layer(
    name="log_softmax",
    family="activation",
    forward=log_softmax_forward,
    backward=log_softmax_backward,
    make_inputs=_softmax_inputs,
    bugs=(
        Bug(
            "missing_softmax_term",
            _log_softmax_missing_term,
            "gross",
            "Treats the logsumexp as a constant and returns dout unchanged.",
        ),
        Bug(
            "uses_log_probs",
            _log_softmax_uses_log_probs,
            "gross",
            "Uses the output log-probabilities where the probabilities softmax(x) belong.",
        ),
    ),
)


# --- hardtanh (clip to [-1, 1]) -------------------------------------------------------------------


def hardtanh_forward(x: np.ndarray) -> np.ndarray:
    """clip(x, -1, 1)."""
    return np.clip(x, -1, 1)


def hardtanh_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """Pass the gradient strictly inside (-1, 1); 0 at and beyond the bounds."""
    return (dout * ((x > -1) & (x < 1)),)


def _hardtanh_straight_through(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (dout.copy(),)


def _hardtanh_inverted(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (dout * ((x <= -1) | (x >= 1)),)


def _hardtanh_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    u = rng.uniform(0.0, 1.9, (4, 6))
    magnitude = np.where(u < 0.95, u, u + 0.1)  # in [0, 0.95) or [1.05, 2): away from the bounds
    sign = np.where(rng.random((4, 6)) < 0.5, -1.0, 1.0)
    return {"x": (sign * magnitude).astype(dtype)}


def _hardtanh_kinks(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    x = randn(rng, (4, 6), dtype, scale=1.5)
    x.reshape(-1)[::4] = 1
    x.reshape(-1)[2::4] = -1
    return {"x": x}


HARDTANH = Layer(
    name="hardtanh",
    family="activation",
    forward=hardtanh_forward,
    backward=hardtanh_backward,
    make_inputs=_hardtanh_inputs,
    kinks=_hardtanh_kinks,
    bugs=(
        Bug(
            "straight_through",
            _hardtanh_straight_through,
            "gross",
            "Passes the gradient everywhere, ignoring that clipped elements have zero derivative.",
        ),
        Bug(
            "inverted_mask", _hardtanh_inverted, "gross", "The mask is inverted: only clipped elements pass."
        ),
    ),
)

LAYERS: tuple[Layer, ...] = (
    RELU,
    LEAKY_RELU,
    PRELU,
    SIGMOID,
    TANH,
    GELU,
    SOFTPLUS,
    ELU,
    SOFTMAX,
    LOG_SOFTMAX,
    HARDTANH,
)
