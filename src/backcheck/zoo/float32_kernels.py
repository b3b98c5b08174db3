"""Kernels that compute in float32 whatever dtype they are handed, with wrong backwards at 1e-2, 1e-3, 1e-4.

Real kernels cast their inputs to float32, accumulate in float32 and return float32, in the forward and in the
backward alike: a float64 input buys no precision. Each layer here does exactly that (its outputs and
gradients are float32 for float32 and float64 inputs), and each has three wrong backwards, realistic formula
errors whose size (``Bug.size``: max|g_bug - g| / max|g| at seed 0) is about 1e-2, 1e-3 and 1e-4: a factor
dropped from a derivative, a constant rounded or copied from another framework, a saved value kept in half
precision, an epsilon that differs between forward and backward, a stray weight-decay term.

Their correct backwards agree with float64 central differences to float32's precision only; they are kept
out of ``LAYERS`` (whose tests hold float64 gradients to 1e-6) in ``FLOAT32_LAYERS``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from backcheck.zoo._common import randn
from backcheck.zoo._registry import Bug, Grads, Layer

F = np.float32


def _f32(*arrays: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(a, dtype=F) for a in arrays]


# --- GELU, tanh form ------------------------------------------------------------------------------

GELU_C, GELU_A = 0.7978845608028654, 0.044715


def gelu32_forward(x: np.ndarray) -> np.ndarray:
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), computed in float32."""
    (x,) = _f32(x)
    return F(0.5) * x * (F(1) + np.tanh(F(GELU_C) * (x + F(GELU_A) * x**3)))


def _gelu32_grad(dout: np.ndarray, x: np.ndarray, c: float = GELU_C, a: float = GELU_A,
                 cube: float = 3.0) -> Grads:
    d, x = _f32(dout, x)
    t = np.tanh(F(GELU_C) * (x + F(GELU_A) * x**3))  # the forward's tanh, as a saved activation would be
    g = F(0.5) * (F(1) + t) + F(0.5) * x * (F(1) - t * t) * F(c) * (F(1) + F(cube * a) * x * x)
    return (d * g,)


def gelu32_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x^2) with t the forward's tanh, in float32."""
    return _gelu32_grad(dout, x)


def _gelu32_cube_factor_dropped(dout: np.ndarray, x: np.ndarray) -> Grads:
    return _gelu32_grad(dout, x, cube=1.0)


def _gelu32_c_rounded(dout: np.ndarray, x: np.ndarray) -> Grads:
    return _gelu32_grad(dout, x, c=0.8)


def _gelu32_a_rounded(dout: np.ndarray, x: np.ndarray) -> Grads:
    return _gelu32_grad(dout, x, a=0.0446)


def _gelu32_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": randn(rng, (8, 16), dtype, scale=1.5)}


GELU32 = Layer(
    name="gelu_f32",
    family="activation",
    forward=gelu32_forward,
    backward=gelu32_backward,
    make_inputs=_gelu32_inputs,
    bugs=(
        Bug("cube_factor_dropped", _gelu32_cube_factor_dropped, "gross",
            "Differentiates 0.044715 x^3 as 0.044715 x^2 (the factor 3 dropped) inside the tanh's argument.",
            size=2.5e-2),
        Bug("constant_rounded_1e-3", _gelu32_c_rounded, "subtle",
            "Writes sqrt(2/pi) as 0.8 in the backward (0.79788 in the forward).", size=6.5e-4),
        Bug("constant_rounded_1e-4", _gelu32_a_rounded, "subtle",
            "Writes 0.044715 as 0.0446 in the backward's derivative of the cubic term.", size=1e-4),
    ),
)


# --- layer normalization over the last axis -------------------------------------------------------

LN_EPS = 1e-5


def layernorm32_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """gamma * (x - mean) / sqrt(var + 1e-5) + beta over the last axis, computed in float32."""
    x, gamma, beta = _f32(x, gamma, beta)
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return gamma * (x - mu) / np.sqrt(var + F(LN_EPS)) + beta


def _layernorm32_grad(dout: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                      eps: float = LN_EPS, ddof: int = 0) -> Grads:
    d, x, gamma = _f32(dout, x, gamma)
    n = x.shape[-1]
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).sum(axis=-1, keepdims=True) / F(n - ddof)
    inv = F(1) / np.sqrt(var + F(eps))
    xh = (x - mu) * inv
    dxh = d * gamma
    dx = inv * (dxh - dxh.mean(axis=-1, keepdims=True) - xh * (dxh * xh).mean(axis=-1, keepdims=True))
    return dx, (d * xh).sum(axis=0), d.sum(axis=0)


def layernorm32_backward(dout: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> Grads:
    """dx = inv (dxh - mean(dxh) - xh mean(dxh xh)), dgamma = sum(dout xh), dbeta = sum(dout), in float32."""
    return _layernorm32_grad(dout, x, gamma, beta)


def _layernorm32_unbiased_var(dout: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> Grads:
    return _layernorm32_grad(dout, x, gamma, beta, ddof=1)


def _layernorm32_eps_1e3(dout: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> Grads:
    return _layernorm32_grad(dout, x, gamma, beta, eps=2e-3)


def _layernorm32_eps_1e4(dout: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> Grads:
    return _layernorm32_grad(dout, x, gamma, beta, eps=2e-4)


def _layernorm32_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {
        "x": randn(rng, (6, 24), dtype),
        "gamma": (1.0 + 0.3 * rng.standard_normal(24)).astype(dtype),
        "beta": randn(rng, (24,), dtype, scale=0.3),
    }


LAYERNORM32 = Layer(
    name="layernorm_f32",
    family="normalization",
    forward=layernorm32_forward,
    backward=layernorm32_backward,
    make_inputs=_layernorm32_inputs,
    bugs=(
        Bug("unbiased_variance", _layernorm32_unbiased_var, "gross",
            "Recomputes the variance with N - 1 (np.var(ddof=1), torch.var's default) in the backward; "
            "the forward divides by N.", size=2.3e-2),
        Bug("eps_mismatch_1e-3", _layernorm32_eps_1e3, "subtle",
            "Uses eps = 2e-3 in the backward (copied from another framework's default), 1e-5 in the forward.",
            size=1.4e-3),
        Bug("eps_mismatch_1e-4", _layernorm32_eps_1e4, "subtle",
            "Uses eps = 2e-4 in the backward, 1e-5 in the forward.", size=1.3e-4),
    ),
)


# --- affine x @ w + b ----------------------------------------------------------------------------


def affine32_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x @ w + b, computed in float32."""
    x, w, b = _f32(x, w, b)
    return x @ w + b


def _affine32_grad(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, decay: float = 0.0,
                   half_w: bool = False) -> Grads:
    d, x, w = _f32(dout, x, w)
    w_saved = w.astype(np.float16).astype(F) if half_w else w  # a weight kept in half precision for the backward
    dw = x.T @ d + F(2 * decay) * w
    return d @ w_saved.T, dw, d.sum(axis=0)


def affine32_backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Grads:
    """dx = dout w^T, dw = x^T dout, db = sum(dout), in float32."""
    return _affine32_grad(dout, x, w, b)


def _affine32_stray_decay(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Grads:
    return _affine32_grad(dout, x, w, b, decay=5e-2)


def _affine32_half_weight(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Grads:
    return _affine32_grad(dout, x, w, b, half_w=True)


def _affine32_small_decay(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Grads:
    return _affine32_grad(dout, x, w, b, decay=5e-3)


def _affine32_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": randn(rng, (8, 12), dtype), "w": randn(rng, (12, 10), dtype, scale=0.5),
            "b": randn(rng, (10,), dtype, scale=0.1)}


AFFINE32 = Layer(
    name="affine_f32",
    family="linear",
    forward=affine32_forward,
    backward=affine32_backward,
    make_inputs=_affine32_inputs,
    bugs=(
        Bug("stray_weight_decay", _affine32_stray_decay, "gross",
            "Adds a weight-decay term 2 * 0.05 * w to dw that the loss does not have (the optimizer's decay "
            "folded into the layer).", size=1.4e-2),
        Bug("stray_weight_decay_1e-3", _affine32_small_decay, "subtle",
            "Adds a weight-decay term 2 * 5e-3 * w to dw that the loss does not have.", size=1.4e-3),
        Bug("weight_in_half_precision", _affine32_half_weight, "subtle",
            "Computes dx with a float16 copy of w saved for the backward (a mixed-precision cache).", size=1.7e-4),
    ),
)


# --- logsumexp over rows (a reduction) ------------------------------------------------------------


def logsumexp32_forward(x: np.ndarray) -> np.ndarray:
    """log(sum(exp(x), axis=-1)) with the row maximum subtracted first, computed in float32: (N, D) -> (N,)."""
    (x,) = _f32(x)
    m = x.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))[..., 0]


def _logsumexp32_grad(dout: np.ndarray, x: np.ndarray, eps: float = 0.0, half_saved: bool = False) -> Grads:
    d, x = _f32(dout, x)
    m = x.max(axis=-1, keepdims=True)
    e = np.exp(x - m)
    if half_saved:  # p = exp(x - y) with the output y saved in float16
        y = logsumexp32_forward(x)[..., None].astype(np.float16).astype(F)
        p = np.exp(x - y)
    else:
        p = e / (e.sum(axis=-1, keepdims=True) + F(eps))
    return (d[..., None] * p,)


def logsumexp32_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """dx = dout * softmax(x) over each row, in float32."""
    return _logsumexp32_grad(dout, x)


def _logsumexp32_eps(dout: np.ndarray, x: np.ndarray) -> Grads:
    return _logsumexp32_grad(dout, x, eps=4e-2)


def _logsumexp32_half_output(dout: np.ndarray, x: np.ndarray) -> Grads:
    return _logsumexp32_grad(dout, x, half_saved=True)


def _logsumexp32_eps_1e4(dout: np.ndarray, x: np.ndarray) -> Grads:
    return _logsumexp32_grad(dout, x, eps=4e-4)


def _logsumexp32_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": randn(rng, (6, 16), dtype, scale=1.5)}


LOGSUMEXP32 = Layer(
    name="logsumexp_f32",
    family="reduction",
    forward=logsumexp32_forward,
    backward=logsumexp32_backward,
    make_inputs=_logsumexp32_inputs,
    bugs=(
        Bug("eps_in_denominator", _logsumexp32_eps, "gross",
            "Normalizes the softmax with sum(exp) + 0.04 (a 'safe division' epsilon the forward does not have).",
            size=1.1e-2),
        Bug("output_saved_in_half", _logsumexp32_half_output, "subtle",
            "Computes softmax as exp(x - y) with the output y saved in float16.", size=1.7e-3),
        Bug("eps_in_denominator_1e-4", _logsumexp32_eps_1e4, "subtle",
            "Normalizes the softmax with sum(exp) + 4e-4.", size=1.1e-4),
    ),
)

#: Kernels computing in float32 whatever they are handed, with bugs of about 1e-2, 1e-3 and 1e-4.
LAYERS: tuple[Layer, ...] = (GELU32, LAYERNORM32, AFFINE32, LOGSUMEXP32)
