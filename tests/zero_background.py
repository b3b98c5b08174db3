"""A convolution's ReLUs over an image of zeros with a blob, for the tests of kinks that meet (shared by
tests/strategies/test_zero_background.py and tests/core/test_finer_steps_unresolved.py): the units whose window
holds only zeros sit at 0, ten or more under one element of the background."""

from __future__ import annotations

import numpy as np


def problem(n, seed, dtype=np.float64, slope_at_0=0.0, flipped=False):
    """``(f, grad, point)``: an n x n image of zeros with a 3x3 blob of values in steps of 0.01, two 3x3 kernels
    ('same' cross-correlation, zero-padded), ReLU and a weighted sum, all in ``dtype`` (f's value too, whatever
    the dtype of the inputs it is given); the point is ``(image, kernels)``. ``slope_at_0``: the rule's ReLU'(0);
    ``flipped``: the image's gradient through the kernels turned by 180 degrees (a convolution's rule for a
    cross-correlation)."""
    g = np.random.default_rng(seed)
    image = np.zeros((n, n))
    b = n // 3
    image[b : b + 3, b + 1 : b + 4] = g.uniform(0, 1, (3, 3)).round(2)
    w1, w2 = g.normal(size=(2, 3, 3)).astype(dtype), g.normal(size=(2, n, n)).astype(dtype)

    def conv(x, w):
        p = np.pad(x, 1)
        return np.stack([sum(w[c, i, j] * p[i : i + n, j : j + n] for i in range(3) for j in range(3)) for c in (0, 1)])

    def f(params):
        x, w = params
        return np.dtype(dtype).type((w2 * np.maximum(conv(x, w), 0)).sum())  # (in dtype whatever the inputs' dtype)

    def grad(params):
        x, w = params
        z = conv(x, w)
        d = (w2 * ((z > 0) + slope_at_0 * (z == 0))).astype(dtype)
        p = np.pad(x, 1)
        gx, gw = np.zeros((n + 2, n + 2), dtype), np.zeros_like(w)
        for c in (0, 1):
            for i in range(3):
                for j in range(3):
                    gx[i : i + n, j : j + n] += (w[c, 2 - i, 2 - j] if flipped else w[c, i, j]) * d[c]
                    gw[c, i, j] = (d[c] * p[i : i + n, j : j + n]).sum()
        return gx[1:-1, 1:-1], gw

    return f, grad, (image.astype(dtype), w1)
