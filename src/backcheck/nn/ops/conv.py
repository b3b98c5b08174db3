"""2-D convolution (im2col + one matrix product) and max / average pooling.

Tensors are NCHW as in torch, but internally the ops work channels-last (NHWC): the im2col matrix
is then a plain strided view whose innermost axis is contiguous, the convolution output is written
channels-last and returned as an NCHW *view*, so consecutive layers never transpose data back and
forth.  The backward of the convolution scatters the column gradient back with one strided
``+=`` per kernel position (``kh * kw`` vectorized adds, faster than ``np.add.at``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from backcheck.nn.autograd import Context
from backcheck.nn.errors import ArgumentError, ShapeError
from backcheck.nn.tensor import Function, Tensor, as_tensor
from backcheck.nn.validate import float_array, int_pair

__all__ = ["conv2d", "max_pool2d", "avg_pool2d", "im2col", "pool_geometry"]

IntPair = int | tuple[int, int]


def pool_geometry(
    owner: str, kernel_size: Any, stride: Any, padding: Any
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Checked ``(kernel, stride, padding)`` pairs of a pooling op; ``stride=None`` means the kernel size.

    The kernel and the stride are at least 1; the padding is at least 0 and at most half the kernel
    (as torch), so that no window lies entirely in the padding.

    Examples
    --------
    >>> pool_geometry("max_pool2d", 2, None, 0)
    ((2, 2), (2, 2), (0, 0))
    """
    k = int_pair(owner, "kernel_size", kernel_size, minimum=1)
    s = k if stride is None else int_pair(owner, "stride", stride, minimum=1)
    p = int_pair(owner, "padding", padding, minimum=0)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        allowed = f"at most half the kernel size {k}, i.e. <= {(k[0] // 2, k[1] // 2)}"
        raise ArgumentError(
            f"{owner}: padding must be {allowed}, got {padding!r}",
            "a window made only of padding has no input element to pool",
            argument="padding",
            allowed=allowed,
            value=padding,
        )
    return k, s, p


def _out_size(
    op: str,
    size: tuple[int, int],
    k: tuple[int, int],
    s: tuple[int, int],
    p: tuple[int, int],
    shape: tuple[int, ...],
) -> tuple[int, int]:
    if min(s) <= 0 or min(p) < 0:
        raise ArgumentError(f"{op}: stride must be >= 1 and padding >= 0, got stride {s} and padding {p}")
    ho = (size[0] + 2 * p[0] - k[0]) // s[0] + 1
    wo = (size[1] + 2 * p[1] - k[1]) // s[1] + 1
    if ho <= 0 or wo <= 0:
        raise ShapeError(
            f"{op}: kernel {k} with stride {s} and padding {p} does not fit an input of shape {shape}",
            "the padded input must be at least as large as the kernel along H and W",
        )
    return ho, wo


def _pad_nhwc(xh: np.ndarray, p: tuple[int, int], value: float) -> np.ndarray:
    if p == (0, 0):
        return xh
    n, h, w, c = xh.shape
    xp = np.full((n, h + 2 * p[0], w + 2 * p[1], c), value, dtype=xh.dtype)
    xp[:, p[0] : p[0] + h, p[1] : p[1] + w, :] = xh
    return xp


def im2col(xp: np.ndarray, k: tuple[int, int], s: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """Windows of a padded NHWC array as a read-only view of shape (N, Ho, Wo, kh, kw, C)."""
    sn, sh, sw, sc = xp.strides
    n, c = xp.shape[0], xp.shape[3]
    return as_strided(
        xp, (n, out_hw[0], out_hw[1], k[0], k[1], c), (sn, sh * s[0], sw * s[1], sh, sw, sc), writeable=False
    )


def _window(a: np.ndarray, i: int, j: int, s: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """The (N, Ho, Wo, C) strided slice of an NHWC array seen by kernel position (i, j)."""
    return a[:, i : i + s[0] * (out_hw[0] - 1) + 1 : s[0], j : j + s[1] * (out_hw[1] - 1) + 1 : s[1], :]


class Conv2d(Function):
    """Cross-correlation of x (N, C, H, W) with w (F, C, kh, kw), plus an optional bias (F,)."""

    name = "conv2d"

    @staticmethod
    def forward(
        ctx: Context,
        x: np.ndarray,
        w: np.ndarray,
        b: np.ndarray | None = None,
        *,
        stride: tuple[int, int],
        padding: tuple[int, int],
    ) -> np.ndarray:
        if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1]:
            raise ShapeError(
                f"conv2d: input of shape {x.shape} and weight of shape {w.shape} do not match "
                f"(expected (N, C, H, W) and (F, C, kh, kw) with the same C)",
                "in_channels must equal the input's axis 1; a single image needs a batch axis, x[None]",
            )
        if b is not None and b.shape != (w.shape[0],):
            raise ShapeError(f"conv2d: bias of shape {b.shape} does not match weight of shape {w.shape}")
        for name, arr in (("input", x), ("weight", w), ("bias", b)):
            if arr is not None:
                float_array("conv2d", name, arr)
        n, c, h, wd = x.shape
        f, _, kh, kw = w.shape
        ho, wo = _out_size("conv2d", (h, wd), (kh, kw), stride, padding, x.shape)
        xp = _pad_nhwc(x.transpose(0, 2, 3, 1), padding, 0.0)
        cols = im2col(xp, (kh, kw), stride, (ho, wo)).reshape(n * ho * wo, kh * kw * c)
        wmat = w.transpose(0, 2, 3, 1).reshape(f, kh * kw * c)
        out = cols @ wmat.T
        if b is not None:
            out += b
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        ctx.cols = cols if need_w else None
        ctx.wmat = wmat if need_x else None
        ctx.x_shape, ctx.w_shape, ctx.padded_shape = x.shape, w.shape, xp.shape
        ctx.stride, ctx.padding, ctx.out_hw = stride, padding, (ho, wo)
        return out.reshape(n, ho, wo, f).transpose(0, 3, 1, 2)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        n, c, h, wd = ctx.x_shape
        f, _, kh, kw = ctx.w_shape
        s, p, (ho, wo), xp_shape = ctx.stride, ctx.padding, ctx.out_hw, ctx.padded_shape
        needs = ctx.needs_input_grad
        g2 = grad.transpose(0, 2, 3, 1).reshape(n * ho * wo, f)
        gx = gw = gb = None
        if needs[1]:
            gw = (g2.T @ ctx.cols).reshape(f, kh, kw, c).transpose(0, 3, 1, 2)
        if len(needs) == 3 and needs[2]:
            gb = np.ones(g2.shape[0], dtype=g2.dtype) @ g2  # column sums as a matrix-vector product
        if needs[0]:
            wmat = ctx.wmat
            if s == (1, 1) and p[0] < kh and p[1] < kw:
                # stride 1: the input gradient is a "full" convolution of the output gradient with
                # the flipped kernel, i.e. one more im2col + matrix product (no scatter needed)
                q = (kh - 1 - p[0], kw - 1 - p[1])
                gp = _pad_nhwc(g2.reshape(n, ho, wo, f), q, 0.0)
                gcols = im2col(gp, (kh, kw), (1, 1), (h, wd)).reshape(n * h * wd, kh * kw * f)
                wflip = wmat.reshape(f, kh, kw, c)[:, ::-1, ::-1, :].transpose(1, 2, 0, 3).reshape(kh * kw * f, c)
                gx = (gcols @ wflip).reshape(n, h, wd, c).transpose(0, 3, 1, 2)
            else:
                dcols = (g2 @ wmat).reshape(n, ho, wo, kh, kw, c)
                dxp = np.zeros(xp_shape, dtype=grad.dtype)
                for i in range(kh):
                    for j in range(kw):
                        _window(dxp, i, j, s, (ho, wo))[...] += dcols[:, :, :, i, j, :]
                gx = dxp[:, p[0] : p[0] + h, p[1] : p[1] + wd, :].transpose(0, 3, 1, 2)
        return (gx, gw) if len(needs) == 2 else (gx, gw, gb)


class MaxPool2d(Function):
    """Max over windows; the gradient goes to the first maximum of each window that is an input element,
    not padding, and where the maximum is NaN to the window's last NaN (as torch)."""

    name = "max_pool2d"

    @staticmethod
    def forward(
        ctx: Context,
        x: np.ndarray,
        *,
        kernel: tuple[int, int],
        stride: tuple[int, int],
        padding: tuple[int, int],
    ) -> np.ndarray:
        if x.ndim != 4:
            raise ShapeError(f"max_pool2d: expected an (N, C, H, W) input, got shape {x.shape}")
        float_array("max_pool2d", "input", x)
        ho, wo = _out_size("max_pool2d", x.shape[2:], kernel, stride, padding, x.shape)
        xp = _pad_nhwc(x.transpose(0, 2, 3, 1), padding, -np.inf)
        out = _window(xp, 0, 0, stride, (ho, wo)).copy()
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                if i or j:
                    np.maximum(out, _window(xp, i, j, stride, (ho, wo)), out=out)
        ctx.padded, ctx.out_nhwc, ctx.x_shape = xp, out, x.shape
        ctx.kernel, ctx.stride, ctx.padding, ctx.out_hw = kernel, stride, padding, (ho, wo)
        return out.transpose(0, 3, 1, 2)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        n, c, h, w = ctx.x_shape
        k, s, p, hw = ctx.kernel, ctx.stride, ctx.padding, ctx.out_hw
        xp, out = ctx.padded, ctx.out_nhwc
        g = np.ascontiguousarray(grad.transpose(0, 2, 3, 1))
        dxp = np.zeros(xp.shape, dtype=grad.dtype)
        free = np.ones(out.shape, dtype=bool)  # windows whose maximum has not been routed yet
        # padding cells never take the gradient, even when a window's maximum is -inf like them
        inside = _pad_nhwc(np.ones((1, h, w, 1), dtype=bool), p, False)
        for i in range(k[0]):
            for j in range(k[1]):
                hit = _window(xp, i, j, s, hw) == out
                hit &= _window(inside, i, j, s, hw)
                hit &= free
                free ^= hit
                _window(dxp, i, j, s, hw)[...] += g * hit
        if np.isnan(out).any():  # a NaN maximum goes to the window's last NaN, as torch's scan leaves it
            free = np.isnan(out)
            for i in reversed(range(k[0])):
                for j in reversed(range(k[1])):
                    hit = np.isnan(_window(xp, i, j, s, hw)) & free
                    free ^= hit
                    _window(dxp, i, j, s, hw)[...] += g * hit
        return (dxp[:, p[0] : p[0] + h, p[1] : p[1] + w, :].transpose(0, 3, 1, 2),)


class AvgPool2d(Function):
    """Mean over windows; zero padding counts towards the mean (torch's ``count_include_pad``)."""

    name = "avg_pool2d"

    @staticmethod
    def forward(
        ctx: Context,
        x: np.ndarray,
        *,
        kernel: tuple[int, int],
        stride: tuple[int, int],
        padding: tuple[int, int],
    ) -> np.ndarray:
        if x.ndim != 4:
            raise ShapeError(f"avg_pool2d: expected an (N, C, H, W) input, got shape {x.shape}")
        float_array("avg_pool2d", "input", x)
        ho, wo = _out_size("avg_pool2d", x.shape[2:], kernel, stride, padding, x.shape)
        xp = _pad_nhwc(x.transpose(0, 2, 3, 1), padding, 0.0)
        out = _window(xp, 0, 0, stride, (ho, wo)).copy()
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                if i or j:
                    out += _window(xp, i, j, stride, (ho, wo))
        out *= 1.0 / (kernel[0] * kernel[1])
        ctx.x_shape, ctx.padded_shape = x.shape, xp.shape
        ctx.kernel, ctx.stride, ctx.padding, ctx.out_hw = kernel, stride, padding, (ho, wo)
        return out.transpose(0, 3, 1, 2)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        n, c, h, w = ctx.x_shape
        xp_shape, k, s, p, hw = ctx.padded_shape, ctx.kernel, ctx.stride, ctx.padding, ctx.out_hw
        g = grad.transpose(0, 2, 3, 1) * (1.0 / (k[0] * k[1]))
        dxp = np.zeros(xp_shape, dtype=grad.dtype)
        for i in range(k[0]):
            for j in range(k[1]):
                _window(dxp, i, j, s, hw)[...] += g
        return (dxp[:, p[0] : p[0] + h, p[1] : p[1] + w, :].transpose(0, 3, 1, 2),)


def conv2d(x: Any, weight: Any, bias: Any = None, stride: IntPair = 1, padding: IntPair = 0) -> Tensor:
    """2-D cross-correlation, as ``torch.nn.functional.conv2d`` (no dilation or groups).

    Parameters
    ----------
    x : Tensor, shape (N, C, H, W)
    weight : Tensor, shape (F, C, kh, kw)
    bias : Tensor, shape (F,), optional
    stride, padding : int or (int, int)
        ``stride >= 1``; zero ``padding >= 0`` is added on both sides of H and W.

    Returns
    -------
    Tensor, shape (N, F, Ho, Wo)
        ``Ho = (H + 2 * padding - kh) // stride + 1`` (likewise ``Wo``).

    Examples
    --------
    >>> conv2d(Tensor(np.zeros((2, 1, 8, 8))), Tensor(np.zeros((4, 1, 3, 3))), padding=1).shape
    (2, 4, 8, 8)
    """
    inputs = [as_tensor(x), as_tensor(weight)]
    if bias is not None:
        inputs.append(as_tensor(bias))
    s = int_pair("conv2d", "stride", stride, minimum=1)
    return Conv2d.apply(*inputs, stride=s, padding=int_pair("conv2d", "padding", padding, minimum=0))


def max_pool2d(x: Any, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0) -> Tensor:
    """Max pooling over (H, W) windows; ``stride`` defaults to ``kernel_size``.

    Parameters
    ----------
    x : Tensor, shape (N, C, H, W)
    kernel_size, stride, padding : int or (int, int)
        ``kernel_size`` and ``stride`` at least 1; padding (with ``-inf``) at most half the kernel.

    Returns
    -------
    Tensor, shape (N, C, Ho, Wo)

    Examples
    --------
    >>> max_pool2d(Tensor(np.zeros((1, 2, 8, 8))), 2).shape
    (1, 2, 4, 4)
    """
    k, s, p = pool_geometry("max_pool2d", kernel_size, stride, padding)
    return MaxPool2d.apply(as_tensor(x), kernel=k, stride=s, padding=p)


def avg_pool2d(x: Any, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0) -> Tensor:
    """Average pooling over (H, W) windows; ``stride`` defaults to ``kernel_size``.

    Shapes as :func:`max_pool2d`; zero padding counts in the average.

    Examples
    --------
    >>> avg_pool2d(Tensor(np.ones((1, 1, 4, 4))), 2).data[0, 0]
    array([[1., 1.],
           [1., 1.]])
    """
    k, s, p = pool_geometry("avg_pool2d", kernel_size, stride, padding)
    return AvgPool2d.apply(as_tensor(x), kernel=k, stride=s, padding=p)
