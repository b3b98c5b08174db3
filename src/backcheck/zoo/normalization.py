"""Normalization: batch norm (training mode), layer norm, group norm and l2 normalization."""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from backcheck.zoo._common import randn
from backcheck.zoo._registry import Bug, Grads, Layer, one_wrong_element, scale_bug

EPS = 1e-5


def _normalize(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(x - mean) / sqrt(var + eps) over ``axis``; returns xhat and the std."""
    xc = x - np.mean(x, axis=axis, keepdims=True)
    std = np.sqrt(np.mean(xc * xc, axis=axis, keepdims=True) + EPS)
    return xc / std, std


def _normalize_grad(
    dxhat: np.ndarray,
    xhat: np.ndarray,
    std: np.ndarray,
    axis: int,
    mean_term: bool = True,
    var_term: bool = True,
) -> np.ndarray:
    """Gradient through xhat = (x - mean) / std given d(loss)/d(xhat).

    dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / std; the two mean terms come from the
    mean and the variance depending on x, and are what the classic bugs forget.
    """
    g = dxhat
    if mean_term:
        g = g - np.mean(dxhat, axis=axis, keepdims=True)
    if var_term:
        g = g - xhat * np.mean(dxhat * xhat, axis=axis, keepdims=True)
    return g / std


# --- batch norm -----------------------------------------------------------------------------------


def batchnorm_train_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Training-mode batch norm over the batch axis: x (N, D), gamma and beta (D,)."""
    xhat, _ = _normalize(x, 0)
    return gamma * xhat + beta


def batchnorm_train_backward(dout: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> Grads:
    """Standard batch-norm backward with batch statistics."""
    xhat, std = _normalize(x, 0)
    dx = _normalize_grad(dout * gamma, xhat, std, 0)
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def _bn_missing_mean(dout: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> Grads:
    xhat, std = _normalize(x, 0)
    dx = _normalize_grad(dout * gamma, xhat, std, 0, mean_term=False)
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def _bn_missing_variance(dout: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> Grads:
    xhat, std = _normalize(x, 0)
    dx = _normalize_grad(dout * gamma, xhat, std, 0, var_term=False)
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def _bn_eps_wrong_place(dout: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> Grads:
    xc = x - np.mean(x, axis=0)
    std = np.sqrt(np.mean(xc * xc, axis=0)) + EPS  # forward uses sqrt(var + eps)
    xhat = xc / std
    dx = _normalize_grad(dout * gamma, xhat, std, 0)
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def _bn_inplace_center(dout: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> Grads:
    mu = np.mean(x, axis=0)
    x -= mu  # centre in place to save a temporary: the caller's x is modified ...
    xc = x - mu  # ... and the old line below now subtracts the mean a second time
    std = np.sqrt(np.mean(x * x, axis=0) + EPS)
    xhat = xc / std
    dx = _normalize_grad(dout * gamma, xhat, std, 0)
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def _bn_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {
        "x": (1.0 + randn(rng, (8, 4), np.float64)).astype(dtype),  # non-zero feature means
        "gamma": (1.0 + randn(rng, (4,), np.float64, scale=0.3)).astype(dtype),
        "beta": randn(rng, (4,), dtype),
    }


BATCHNORM_TRAIN = Layer(
    name="batchnorm_train",
    family="normalization",
    forward=batchnorm_train_forward,
    backward=batchnorm_train_backward,
    make_inputs=_bn_inputs,
    bugs=(
        Bug(
            "missing_mean_term",
            _bn_missing_mean,
            "gross",
            "Forgets that the batch mean depends on x: drops the -mean(dxhat) term.",
        ),
        Bug(
            "missing_variance_term",
            _bn_missing_variance,
            "gross",
            "Forgets that the batch variance depends on x: drops the -xhat * mean(dxhat * xhat) term.",
        ),
        Bug(
            "eps_wrong_place",
            _bn_eps_wrong_place,
            "subtle",
            "Uses sqrt(var) + eps in the backward where the forward used sqrt(var + eps).",
        ),
        Bug(
            "inplace_center",
            _bn_inplace_center,
            "gross",
            "Centres x in place (x -= mean), mutating the caller's array, and then subtracts the mean again.",
            mutates=True,
        ),
    ),
)


# --- layer norm -----------------------------------------------------------------------------------


def layernorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Normalize each row over its features: x (N, D), gamma and beta (D,)."""
    xhat, _ = _normalize(x, -1)
    return gamma * xhat + beta


def layernorm_backward(dout: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> Grads:
    """The batch-norm formula along the feature axis; gamma/beta gradients sum over the batch."""
    xhat, std = _normalize(x, -1)
    dx = _normalize_grad(dout * gamma, xhat, std, -1)
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def _ln_batch_axis(dout: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> Grads:
    xhat, _ = _normalize(x, -1)
    xhat_b, std_b = _normalize(x, 0)
    dx = _normalize_grad(dout * gamma, xhat_b, std_b, 0)
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def _ln_missing_variance(dout: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> Grads:
    xhat, std = _normalize(x, -1)
    dx = _normalize_grad(dout * gamma, xhat, std, -1, var_term=False)
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def _ln_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {
        "x": randn(rng, (4, 6), dtype, scale=2.0),
        "gamma": (1.0 + randn(rng, (6,), np.float64, scale=0.3)).astype(dtype),
        "beta": randn(rng, (6,), dtype),
    }


LAYERNORM = Layer(
    name="layernorm",
    family="normalization",
    forward=layernorm_forward,
    backward=layernorm_backward,
    make_inputs=_ln_inputs,
    bugs=(
        Bug(
            "stats_over_batch_axis",
            _ln_batch_axis,
            "gross",
            "Copy-pasted from batch norm: the dx formula uses statistics over the batch axis.",
        ),
        Bug(
            "missing_variance_term",
            _ln_missing_variance,
            "gross",
            "Drops the -xhat * mean(dxhat * xhat) term.",
        ),
        scale_bug(layernorm_backward, 5),
    ),
)


# --- group norm -----------------------------------------------------------------------------------

GROUPS = 2


def _group_view(x: np.ndarray, groups: int) -> np.ndarray:
    n = x.shape[0]
    return x.reshape(n, groups, -1)


def groupnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Group norm with 2 groups: x (N, C, H, W), gamma and beta (C,)."""
    xhat, _ = _normalize(_group_view(x, GROUPS), -1)
    return gamma[None, :, None, None] * xhat.reshape(x.shape) + beta[None, :, None, None]


def _gn_backward(
    dout: np.ndarray, x: np.ndarray, gamma: np.ndarray, groups: int = GROUPS, var_term: bool = True
) -> Grads:
    xhat, std = _normalize(_group_view(x, GROUPS), -1)
    dgamma = np.sum(dout * xhat.reshape(x.shape), axis=(0, 2, 3))
    dbeta = np.sum(dout, axis=(0, 2, 3))
    dxhat = dout * gamma[None, :, None, None]
    if groups != GROUPS:  # recompute statistics with the wrong grouping
        xhat, std = _normalize(_group_view(x, groups), -1)
    dx = _normalize_grad(_group_view(dxhat, groups), xhat, std, -1, var_term=var_term)
    return dx.reshape(x.shape), dgamma, dbeta


def groupnorm_backward(dout: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> Grads:
    """The normalization gradient within each group of channels."""
    return _gn_backward(dout, x, gamma)


def _gn_per_channel(dout: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> Grads:
    return _gn_backward(dout, x, gamma, groups=x.shape[1])


def _gn_missing_variance(dout: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> Grads:
    return _gn_backward(dout, x, gamma, var_term=False)


def _gn_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {
        "x": randn(rng, (2, 4, 3, 3), dtype),
        "gamma": (1.0 + randn(rng, (4,), np.float64, scale=0.3)).astype(dtype),
        "beta": randn(rng, (4,), dtype),
    }


GROUPNORM = Layer(
    name="groupnorm",
    family="normalization",
    forward=groupnorm_forward,
    backward=groupnorm_backward,
    make_inputs=_gn_inputs,
    bugs=(
        Bug(
            "per_channel_stats",
            _gn_per_channel,
            "gross",
            "The backward normalizes per channel (instance norm) while the forward uses groups.",
        ),
        Bug(
            "missing_variance_term",
            _gn_missing_variance,
            "gross",
            "Drops the -xhat * mean(dxhat * xhat) term.",
        ),
        one_wrong_element(groupnorm_backward),
    ),
)


# --- l2 normalize ---------------------------------------------------------------------------------

L2_EPS = 1e-12


def l2_normalize_forward(x: np.ndarray) -> np.ndarray:
    """x / sqrt(sum(x**2) + eps) along the last axis."""
    return x / np.sqrt(np.sum(x * x, axis=-1, keepdims=True) + L2_EPS)


def _l2_grad(dout: np.ndarray, x: np.ndarray, sign: float = -1.0, project: bool = True) -> Grads:
    norm = np.sqrt(np.sum(x * x, axis=-1, keepdims=True) + L2_EPS)
    dx = dout / norm
    if project:
        dx = dx + sign * x * (np.sum(dout * x, axis=-1, keepdims=True) / norm**3)
    return (dx,)


def l2_normalize_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """(dout - y * sum(dout * y)) / norm: only the part of dout orthogonal to y survives."""
    return _l2_grad(dout, x)


def _l2_missing_projection(dout: np.ndarray, x: np.ndarray) -> Grads:
    return _l2_grad(dout, x, project=False)


def _l2_wrong_sign(dout: np.ndarray, x: np.ndarray) -> Grads:
    return _l2_grad(dout, x, sign=1.0)


def _l2_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": randn(rng, (4, 5), dtype)}


L2_NORMALIZE = Layer(
    name="l2_normalize",
    family="normalization",
    forward=l2_normalize_forward,
    backward=l2_normalize_backward,
    make_inputs=_l2_inputs,
    bugs=(
        Bug(
            "missing_projection",
            _l2_missing_projection,
            "gross",
            "Treats the norm as a constant: dx = dout / norm.",
        ),
        Bug("wrong_sign", _l2_wrong_sign, "gross", "Adds the projection term instead of subtracting it."),
    ),
)

LAYERS: tuple[Layer, ...] = (BATCHNORM_TRAIN, LAYERNORM, GROUPNORM, L2_NORMALIZE)
