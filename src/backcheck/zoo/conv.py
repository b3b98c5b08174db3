"""Convolutions (cross-correlation, as in deep-learning libraries), written as loops over output positions."""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from backcheck.zoo._common import randn, resample
from backcheck.zoo._registry import Bug, Grads, Layer, one_wrong_element, scale_bug

# --- conv2d ---------------------------------------------------------------------------------------

STRIDE, PAD = 2, 1


def _conv2d(x: np.ndarray, w: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """Cross-correlation without bias: x (N, C, H, W), w (F, C, KH, KW)."""
    n, _, h, wd = x.shape
    f, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = np.empty((n, f, ho, wo), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            window = xp[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3]))
    return out


def _conv2d_grads(
    dout: np.ndarray, x: np.ndarray, w: np.ndarray, stride: int, pad: int, flip: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """dx and dw of the cross-correlation; ``pad`` and ``flip`` let bugs go wrong in realistic ways."""
    _, _, h, wd = x.shape
    _, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    wk = w[:, :, ::-1, ::-1] if flip else w
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            rows = slice(i * stride, i * stride + kh)
            cols = slice(j * stride, j * stride + kw)
            g = dout[:, :, i, j]  # (N, F)
            dw += np.tensordot(g, xp[:, :, rows, cols], axes=([0], [0]))
            dxp[:, :, rows, cols] += np.tensordot(g, wk, axes=([1], [0]))
    return dxp[:, :, pad : pad + h, pad : pad + wd], dw


def conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross-correlation with stride 2 and zero padding 1, plus a per-filter bias."""
    return _conv2d(x, w, STRIDE, PAD) + b[None, :, None, None]


def conv2d_backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Grads:
    """Scatter dout * w back over each window for dx, correlate dout with the windows for dw."""
    dx, dw = _conv2d_grads(dout, x, w, STRIDE, PAD)
    return dx, dw, np.sum(dout, axis=(0, 2, 3))


def _conv2d_padding_off_by_one(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Grads:
    dx, dw = _conv2d_grads(dout, x, w, STRIDE, PAD + 1)
    return dx, dw, np.sum(dout, axis=(0, 2, 3))


def _conv2d_missing_flip(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Grads:
    dx, dw = _conv2d_grads(dout, x, w, STRIDE, PAD, flip=True)
    return dx, dw, np.sum(dout, axis=(0, 2, 3))


def _conv2d_bias_not_summed(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Grads:
    dx, dw = _conv2d_grads(dout, x, w, STRIDE, PAD)
    return dx, dw, np.sum(dout[0], axis=(1, 2))


def _conv2d_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {
        "x": randn(rng, (2, 2, 5, 5), dtype),
        "w": randn(rng, (3, 2, 3, 3), dtype),
        "b": randn(rng, (3,), dtype),
    }


CONV2D = Layer(
    name="conv2d",
    family="conv",
    forward=conv2d_forward,
    backward=conv2d_backward,
    make_inputs=_conv2d_inputs,
    bugs=(
        Bug(
            "padding_off_by_one",
            _conv2d_padding_off_by_one,
            "gross",
            "The backward pads by pad + 1, so every window is shifted by one pixel.",
        ),
        Bug(
            "missing_flip",
            _conv2d_missing_flip,
            "gross",
            "Mixes up convolution and cross-correlation: dx uses the kernel rotated by 180 degrees.",
        ),
        Bug(
            "bias_not_summed",
            _conv2d_bias_not_summed,
            "gross",
            "db sums dout over the spatial positions of the first example only, not over the batch.",
        ),
        scale_bug(conv2d_backward, 5),
    ),
)


# --- conv2d + relu --------------------------------------------------------------------------------


def conv2d_relu_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """relu(conv2d(x, w) + b) with stride 1 and padding 1."""
    return np.maximum(_conv2d(x, w, 1, 1) + b[None, :, None, None], 0)


def _conv2d_relu_backward(
    dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, mask: str = "output"
) -> Grads:
    z = _conv2d(x, w, 1, 1)
    if mask == "output":
        dz = dout * (z + b[None, :, None, None] > 0)
    elif mask == "before_bias":
        dz = dout * (z > 0)
    else:
        dz = dout
    dx, dw = _conv2d_grads(dz, x, w, 1, 1)
    return dx, dw, np.sum(dz, axis=(0, 2, 3))


def conv2d_relu_backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Grads:
    """Mask dout with the relu derivative, then the conv2d backward."""
    return _conv2d_relu_backward(dout, x, w, b)


def _conv2d_relu_missing_mask(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Grads:
    return _conv2d_relu_backward(dout, x, w, b, mask="none")


def _conv2d_relu_mask_before_bias(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Grads:
    return _conv2d_relu_backward(dout, x, w, b, mask="before_bias")


def _conv2d_relu_draw(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {
        "x": randn(rng, (2, 2, 4, 4), dtype),
        "w": randn(rng, (2, 2, 3, 3), dtype, scale=0.5),
        "b": randn(rng, (2,), dtype),
    }


def _conv2d_relu_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    def ok(inp):
        z = _conv2d(inp["x"], inp["w"], 1, 1) + inp["b"][None, :, None, None]
        zb = _conv2d(inp["x"], inp["w"], 1, 1)
        return bool(np.min(np.abs(z)) > 0.02 and 0.25 < np.mean(z > 0) < 0.75 and np.any((z > 0) != (zb > 0)))

    return resample(rng, lambda: _conv2d_relu_draw(rng, dtype), ok)


def _conv2d_relu_kinks(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    inputs = _conv2d_relu_inputs(rng, dtype)
    inputs["x"][0, :, :2, :2] = 0  # the window of output (0, :, 0, 0) sees only zeros (and padding) ...
    inputs["b"][0] = 0  # ... so output (0, 0, 0, 0) is exactly 0
    return inputs


CONV2D_RELU = Layer(
    name="conv2d_relu",
    family="conv",
    forward=conv2d_relu_forward,
    backward=conv2d_relu_backward,
    make_inputs=_conv2d_relu_inputs,
    kinks=_conv2d_relu_kinks,
    bugs=(
        Bug(
            "missing_relu_mask",
            _conv2d_relu_missing_mask,
            "gross",
            "Forgets the relu derivative after the conv.",
        ),
        Bug(
            "relu_mask_before_bias",
            _conv2d_relu_mask_before_bias,
            "gross",
            "Builds the relu mask from the conv output before the bias is added.",
        ),
    ),
)


# --- conv1d ---------------------------------------------------------------------------------------


def _conv1d(x: np.ndarray, w: np.ndarray, pad: int) -> np.ndarray:
    _, _, length = x.shape
    k = w.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad)))
    lo = length + 2 * pad - k + 1
    out = np.empty((x.shape[0], w.shape[0], lo), dtype=x.dtype)
    for i in range(lo):
        out[:, :, i] = np.tensordot(xp[:, :, i : i + k], w, axes=([1, 2], [1, 2]))
    return out


def _conv1d_grads(
    dout: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    pad: int = 1,
    transpose: bool = True,
    positions: int | None = None,
) -> Grads:
    length, k = x.shape[2], w.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    wt = w if transpose else w.transpose(1, 0, 2)
    for i in range(dout.shape[2] if positions is None else positions):
        g = dout[:, :, i]  # (N, F)
        dw += np.tensordot(g, xp[:, :, i : i + k], axes=([0], [0]))
        dxp[:, :, i : i + k] += np.tensordot(g, wt, axes=([1], [0]))
    return dxp[:, :, pad : pad + length], dw, np.sum(dout, axis=(0, 2))


def conv1d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1-D cross-correlation, stride 1, padding 1: x (N, C, L), w (F, C, K), b (F,)."""
    return _conv1d(x, w, 1) + b[None, :, None]


def conv1d_backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Grads:
    """Loop over output positions, scattering into dx and accumulating dw."""
    return _conv1d_grads(dout, x, w, b)


def _conv1d_missing_transpose(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Grads:
    return _conv1d_grads(dout, x, w, b, transpose=False)


def _conv1d_last_position(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Grads:
    return _conv1d_grads(dout, x, w, b, positions=dout.shape[2] - 1)


def _conv1d_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    # in channels == out channels: swapping the two weight axes runs silently
    return {
        "x": randn(rng, (2, 3, 8), dtype),
        "w": randn(rng, (3, 3, 3), dtype),
        "b": randn(rng, (3,), dtype),
    }


CONV1D = Layer(
    name="conv1d",
    family="conv",
    forward=conv1d_forward,
    backward=conv1d_backward,
    make_inputs=_conv1d_inputs,
    bugs=(
        Bug(
            "missing_transpose",
            _conv1d_missing_transpose,
            "gross",
            "Swaps the in- and out-channel axes of w when computing dx (silent when they are equal).",
        ),
        Bug(
            "last_position_dropped",
            _conv1d_last_position,
            "gross",
            "The backward loop stops one output position early (range(L_out - 1)).",
        ),
        scale_bug(conv1d_backward, 3),
    ),
)


# --- depthwise conv2d -----------------------------------------------------------------------------


def _depthwise(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    _, _, h, wd = x.shape
    k = w.shape[1]
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros_like(x)
    for di in range(k):
        for dj in range(k):
            out += xp[:, :, di : di + h, dj : dj + wd] * w[None, :, di, dj, None, None]
    return out


def depthwise_conv2d_forward(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Each channel is cross-correlated with its own kernel: x (N, C, H, W), w (C, 3, 3), padding 1."""
    return _depthwise(x, w)


def _depthwise_grads(
    dout: np.ndarray, x: np.ndarray, w: np.ndarray, flip: bool = False, share: bool = False
) -> Grads:
    _, _, h, wd = x.shape
    k = w.shape[1]
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    wk = w[:, ::-1, ::-1] if flip else w
    for di in range(k):
        for dj in range(k):
            dw[:, di, dj] = np.sum(dout * xp[:, :, di : di + h, dj : dj + wd], axis=(0, 2, 3))
            dxp[:, :, di : di + h, dj : dj + wd] += dout * wk[None, :, di, dj, None, None]
    if share:
        dw = np.broadcast_to(np.sum(dw, axis=0), dw.shape).copy()
    return dxp[:, :, 1 : 1 + h, 1 : 1 + wd], dw


def depthwise_conv2d_backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray) -> Grads:
    """Per-channel version of the conv2d backward."""
    return _depthwise_grads(dout, x, w)


def _depthwise_summed_over_channels(dout: np.ndarray, x: np.ndarray, w: np.ndarray) -> Grads:
    return _depthwise_grads(dout, x, w, share=True)


def _depthwise_missing_flip(dout: np.ndarray, x: np.ndarray, w: np.ndarray) -> Grads:
    return _depthwise_grads(dout, x, w, flip=True)


def _depthwise_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": randn(rng, (2, 3, 4, 4), dtype), "w": randn(rng, (3, 3, 3), dtype)}


DEPTHWISE_CONV2D = Layer(
    name="depthwise_conv2d",
    family="conv",
    forward=depthwise_conv2d_forward,
    backward=depthwise_conv2d_backward,
    make_inputs=_depthwise_inputs,
    bugs=(
        Bug(
            "summed_over_channels",
            _depthwise_summed_over_channels,
            "gross",
            "Sums dw over channels as in a regular conv, giving every channel the same kernel gradient.",
        ),
        Bug("missing_flip", _depthwise_missing_flip, "gross", "dx uses the kernel rotated by 180 degrees."),
        one_wrong_element(depthwise_conv2d_backward, which=1),
    ),
)

LAYERS: tuple[Layer, ...] = (CONV2D, CONV2D_RELU, CONV1D, DEPTHWISE_CONV2D)
