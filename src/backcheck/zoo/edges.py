"""Layers whose wrong backward passes are right almost everywhere: wrong only at particular inputs.

Each is the kind of bug found in public layer code: a convolution whose backward breaks only when
``pad=0`` (a ``0:-0`` slice), a max pool wrong only with padding, a max pool that shares the gradient of
tied maxima as if there were never more than two, a recurrent backward right for one time step and
wrong for several. ``make_inputs`` is a convenient point where every bug hides (a check there passes
them all); ``trigger`` is a point where each shows. :func:`backcheck.explore` finds them from a
description of the inputs alone (``backcheck.zoo.spaces``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from backcheck.zoo._common import distinct, randn
from backcheck.zoo._registry import Bug, Grads, Layer

# --- conv2d with a padding hyper-parameter --------------------------------------------------------


def _conv(x: np.ndarray, w: np.ndarray, stride: int, pad: int) -> np.ndarray:
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


def conv2d_pad_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 1, pad: int = 1) -> np.ndarray:
    """Cross-correlation of x (N, C, H, W) with w (F, C, KH, KW), zero padding ``pad``, plus a bias."""
    return _conv(x, w, stride, pad) + b[None, :, None, None]


def _conv_grads(dout: np.ndarray, x: np.ndarray, w: np.ndarray, stride: int, pad: int,
                crop_by_negative_index: bool) -> Grads:
    _, _, h, wd = x.shape
    _, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            rows, cols = slice(i * stride, i * stride + kh), slice(j * stride, j * stride + kw)
            g = dout[:, :, i, j]
            dw += np.tensordot(g, xp[:, :, rows, cols], axes=([0], [0]))
            dxp[:, :, rows, cols] += np.tensordot(g, w, axes=([1], [0]))
    if crop_by_negative_index:  # dxp[pad:-pad] is empty when pad == 0
        dx = dxp[:, :, pad:-pad, pad:-pad]
    else:
        dx = dxp[:, :, pad : pad + h, pad : pad + wd]
    return dx, dw, np.sum(dout, axis=(0, 2, 3))


def conv2d_pad_backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 1,
                        pad: int = 1) -> Grads:
    """Scatter dout * w over the padded input, then crop the padding away with ``pad:pad + H``."""
    return _conv_grads(dout, x, w, stride, pad, crop_by_negative_index=False)


def _conv2d_pad_negative_crop(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 1,
                              pad: int = 1) -> Grads:
    return _conv_grads(dout, x, w, stride, pad, crop_by_negative_index=True)


def _conv2d_pad_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": randn(rng, (2, 2, 5, 5), dtype), "w": randn(rng, (3, 2, 3, 3), dtype), "b": randn(rng, (3,), dtype)}


def _conv2d_pad_trigger(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return _conv2d_pad_inputs(rng, dtype)  # with pad=0


CONV2D_PAD = Layer(
    name="conv2d_pad",
    family="conv",
    forward=conv2d_pad_forward,
    backward=conv2d_pad_backward,
    make_inputs=_conv2d_pad_inputs,
    bugs=(
        Bug(
            "crop_with_negative_index",
            _conv2d_pad_negative_crop,
            "gross",
            "Crops the padding with dxp[pad:-pad]: right for every pad > 0, an empty dx at pad=0.",
        ),
    ),
)


# --- max pooling with a padding hyper-parameter ---------------------------------------------------


def _pool_windows(x: np.ndarray, k: int, stride: int, pad: int) -> tuple[np.ndarray, int, int]:
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
    ho, wo = (xp.shape[2] - k) // stride + 1, (xp.shape[3] - k) // stride + 1
    return xp, ho, wo


def maxpool2d_pad_forward(x: np.ndarray, k: int = 2, stride: int = 2, pad: int = 0) -> np.ndarray:
    """k x k max pooling of x (N, C, H, W) with ``stride``, padded by ``pad`` with -inf."""
    xp, ho, wo = _pool_windows(x, k, stride, pad)
    out = np.empty((*x.shape[:2], ho, wo), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = np.max(xp[:, :, i * stride : i * stride + k, j * stride : j * stride + k], axis=(2, 3))
    return out


def _maxpool_pad_grad(dout: np.ndarray, x: np.ndarray, k: int, stride: int, pad: int, route: str) -> np.ndarray:
    """Route each output gradient to the window's argmax (in the unpadded input); ``route`` picks a bug."""
    n, c, h, wd = x.shape
    xp, ho, wo = _pool_windows(x, k, stride, pad)
    dx = np.zeros_like(x)
    nn, cc = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
    for i in range(ho):
        for j in range(wo):
            win = xp[:, :, i * stride : i * stride + k, j * stride : j * stride + k].reshape(n, c, k * k)
            g = dout[:, :, i, j]
            if route == "split_in_two":  # every tied maximum gets a share, as if a tie had two elements
                mask = win == np.max(win, axis=-1, keepdims=True)
                share = np.where(mask.sum(axis=-1, keepdims=True) > 1, 0.5, 1.0)
                full = np.zeros((n, c, k, k), dtype=x.dtype)
                full.reshape(n, c, k * k)[...] = g[..., None] * mask * share
                r0, c0 = i * stride - pad, j * stride - pad
                rs, cs = slice(max(r0, 0), min(r0 + k, h)), slice(max(c0, 0), min(c0 + k, wd))
                dx[:, :, rs, cs] += full[:, :, rs.start - r0 : rs.stop - r0, cs.start - c0 : cs.stop - c0]
                continue
            r, q = np.divmod(np.argmax(win, axis=-1), k)
            shift = 0 if route == "no_unpad" else pad  # the bug forgets that the argmax is in padded coordinates
            rows, cols = i * stride + r - shift, j * stride + q - shift
            inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < wd)
            np.add.at(dx, (nn[inside], cc[inside], rows[inside], cols[inside]), g[inside])
    return dx


def maxpool2d_pad_backward(dout: np.ndarray, x: np.ndarray, k: int = 2, stride: int = 2, pad: int = 0) -> Grads:
    """Each output gradient goes to the (first) argmax of its window, mapped back to unpadded coordinates."""
    return (_maxpool_pad_grad(dout, x, k, stride, pad, "argmax"),)


def _maxpool_pad_no_unpad(dout: np.ndarray, x: np.ndarray, k: int = 2, stride: int = 2, pad: int = 0) -> Grads:
    return (_maxpool_pad_grad(dout, x, k, stride, pad, "no_unpad"),)


def _maxpool_pad_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": distinct(rng, (2, 2, 4, 4), dtype)}


MAXPOOL2D_PAD = Layer(
    name="maxpool2d_pad",
    family="pooling",
    forward=maxpool2d_pad_forward,
    backward=maxpool2d_pad_backward,
    make_inputs=_maxpool_pad_inputs,
    bugs=(
        Bug(
            "argmax_not_unpadded",
            _maxpool_pad_no_unpad,
            "gross",
            "Writes the gradient at the argmax's position in the padded input into the unpadded dx: right at "
            "pad=0, shifted by pad otherwise.",
        ),
    ),
)


# --- max pooling sharing the gradient of tied maxima ----------------------------------------------


def maxpool2d_share_forward(x: np.ndarray, k: int = 2, stride: int = 2) -> np.ndarray:
    """k x k max pooling with ``stride`` (no padding)."""
    return maxpool2d_pad_forward(x, k, stride, 0)


def maxpool2d_share_backward(dout: np.ndarray, x: np.ndarray, k: int = 2, stride: int = 2) -> Grads:
    """The gradient goes to the first maximum of each window (a valid subgradient at ties)."""
    return (_maxpool_pad_grad(dout, x, k, stride, 0, "argmax"),)


def _maxpool_share_split_in_two(dout: np.ndarray, x: np.ndarray, k: int = 2, stride: int = 2) -> Grads:
    return (_maxpool_pad_grad(dout, x, k, stride, 0, "split_in_two"),)


def _maxpool_share_trigger(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    x = distinct(rng, (2, 2, 4, 4), dtype)
    x[0, 0, 0, 0] = x[0, 0, 0, 1] = x[0, 0, 1, 0] = float(np.max(x)) + 1.0  # three tied maxima in one window
    return {"x": x}


MAXPOOL2D_SHARE = Layer(
    name="maxpool2d_share",
    family="pooling",
    forward=maxpool2d_share_forward,
    backward=maxpool2d_share_backward,
    make_inputs=_maxpool_pad_inputs,
    kinks=_maxpool_share_trigger,
    bugs=(
        Bug(
            "ties_split_in_two",
            _maxpool_share_split_in_two,
            "gross",
            "Gives every tied maximum half of the gradient, written for a pair: a valid subgradient for two tied "
            "elements, 1.5 times too much for three.",
        ),
    ),
)


# --- a tanh RNN over a sequence -------------------------------------------------------------------


def rnn_seq_forward(x: np.ndarray, h0: np.ndarray, wx: np.ndarray, wh: np.ndarray, b: np.ndarray) -> np.ndarray:
    """h_t = tanh(x_t wx + h_{t-1} wh + b) over x (N, T, D), from h0 (N, H): every state, (N, T, H)."""
    n, t_len, _ = x.shape
    hs = np.empty((n, t_len, h0.shape[1]), dtype=x.dtype)
    h = h0
    for t in range(t_len):
        h = np.tanh(x[:, t] @ wx + h @ wh + b)
        hs[:, t] = h
    return hs


def _rnn_seq_grads(dout: np.ndarray, x: np.ndarray, h0: np.ndarray, wx: np.ndarray, wh: np.ndarray,
                   b: np.ndarray, carry: bool) -> Grads:
    hs = rnn_seq_forward(x, h0, wx, wh, b)
    dx, dwx, dwh, db = np.zeros_like(x), np.zeros_like(wx), np.zeros_like(wh), np.zeros_like(b)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(x.shape[1])):
        h_prev = hs[:, t - 1] if t > 0 else h0
        dz = (dout[:, t] + (dh_next if carry else 0)) * (1 - hs[:, t] ** 2)
        dx[:, t] = dz @ wx.T
        dwx += x[:, t].T @ dz
        dwh += h_prev.T @ dz
        db += dz.sum(axis=0)
        dh_next = dz @ wh.T
    return dx, dh_next, dwx, dwh, db


def rnn_seq_backward(dout: np.ndarray, x: np.ndarray, h0: np.ndarray, wx: np.ndarray, wh: np.ndarray,
                     b: np.ndarray) -> Grads:
    """Backpropagation through time: each step adds the gradient carried back from the next one."""
    return _rnn_seq_grads(dout, x, h0, wx, wh, b, carry=True)


def _rnn_seq_no_carry(dout: np.ndarray, x: np.ndarray, h0: np.ndarray, wx: np.ndarray, wh: np.ndarray,
                      b: np.ndarray) -> Grads:
    return _rnn_seq_grads(dout, x, h0, wx, wh, b, carry=False)


def _rnn_seq_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {
        "x": randn(rng, (3, 1, 4), dtype),
        "h0": randn(rng, (3, 5), dtype, scale=0.5),
        "wx": randn(rng, (4, 5), dtype, scale=0.5),
        "wh": randn(rng, (5, 5), dtype, scale=0.5),
        "b": randn(rng, (5,), dtype, scale=0.3),
    }


def _rnn_seq_trigger(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    inputs = _rnn_seq_inputs(rng, dtype)
    inputs["x"] = randn(rng, (3, 3, 4), dtype)
    return inputs


RNN_SEQ = Layer(
    name="rnn_seq",
    family="recurrent",
    forward=rnn_seq_forward,
    backward=rnn_seq_backward,
    make_inputs=_rnn_seq_inputs,
    bugs=(
        Bug(
            "gradient_not_carried",
            _rnn_seq_no_carry,
            "gross",
            "Backpropagates each step from its own output only, dropping the gradient carried back from the next "
            "step: right for one time step, wrong for several.",
        ),
    ),
)

#: Layers whose bugs show only at particular inputs, with a point where each shows.
EDGE_LAYERS: tuple[Layer, ...] = (CONV2D_PAD, MAXPOOL2D_PAD, MAXPOOL2D_SHARE, RNN_SEQ)

#: Keyword hyper-parameters and inputs at which each layer's bugs show (``make_inputs`` hides them).
TRIGGERS = {
    "conv2d_pad": ({"pad": 0}, _conv2d_pad_trigger),
    "maxpool2d_pad": ({"pad": 1}, _maxpool_pad_inputs),
    "maxpool2d_share": ({}, _maxpool_share_trigger),
    "rnn_seq": ({}, _rnn_seq_trigger),
}
