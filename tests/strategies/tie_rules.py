"""Backward rules at value ties shared by the tie tests: a 3x3 max pool at stride 1 and the ways a rule can route
a window's gradient among its tied maxima."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def pool3(x):
    return sliding_window_view(x, (3, 3)).max(axis=(-2, -1))


def pool3_backward(rule):
    """``first`` (a valid subgradient, as torch), ``every`` tied maximum the gradient, ``half`` of it to each where
    several tie, or the ``first_doubled`` where several tie (all but ``first`` are wrong at ties)."""

    def backward(d, x):
        windows = sliding_window_view(x, (3, 3))
        top = windows == windows.max(axis=(-2, -1), keepdims=True)
        g = np.zeros_like(x)
        for i, j in np.ndindex(d.shape):
            hits = np.argwhere(top[i, j])
            tied = len(hits) > 1
            share, part = {
                "first": (hits[:1], 1.0),
                "every": (hits, 1.0),
                "half": (hits, 0.5 if tied else 1.0),
                "first_doubled": (hits[:1], 2.0 if tied else 1.0),
            }[rule]
            for a, b in share:
                g[i + a, j + b] += part * d[i, j]
        return g

    return backward
