"""Max pools computing in float32 on integer images (ties within and across windows), with right and wrong
backward rules, for the float32 pool tests."""

from __future__ import annotations

import numpy as np

#: name: ((kernel, stride, padding), image shape)
CASES = {"3x3/1": ((3, 1, 1), (5, 5)), "2x2/2": ((2, 2, 0), (6, 6))}


def image(case: str, seed: int, dtype) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 3, size=CASES[case][1]).astype(dtype)


def pool(k: int, stride: int, pad: int, rule: str = "first", power: int = 1):
    """A max pool of ``x ** power`` computing in float32, and its backward: each window's gradient to its first
    maximum ("first"), its last ("last"), shared equally by its tied maxima ("split"); wrong: the first maximum's
    with window (0, 0)'s gradient 1% too large ("scaled"), to every tied maximum ("every_tie"), to the largest
    value below the maximum ("next_value")."""

    def windows(x):
        p = np.pad(x, pad).astype(np.float32) ** power
        n = (p.shape[0] - k) // stride + 1, (p.shape[1] - k) // stride + 1
        return p, [(i * stride, j * stride) for i in range(n[0]) for j in range(n[1])], n

    def forward(x):
        p, at, n = windows(x)
        return np.array([p[i : i + k, j : j + k].max() for i, j in at], np.float32).reshape(n)

    def backward(dout, x):
        p, at, _ = windows(x)
        d = np.zeros(p.shape, np.float32)
        for w, ((i, j), g) in enumerate(zip(at, dout.ravel(), strict=True)):
            win = p[i : i + k, j : j + k]
            tied = win == win.max()
            if rule in ("split", "every_tie"):
                d[i : i + k, j : j + k] += g * tied / (tied.sum() if rule == "split" else 1)
                continue
            if rule == "next_value" and win.min() < win.max():
                m = int(np.argmax(np.where(win < win.max(), win, -np.inf)))
            elif rule == "last":
                m = win.size - 1 - int(np.argmax(tied.ravel()[::-1]))
            else:
                m = int(np.argmax(win))
            d[i + m // k, j + m % k] += g * (1.01 if rule == "scaled" and w == 0 else 1.0)
        inner = d[pad : p.shape[0] - pad, pad : p.shape[1] - pad]
        return inner * (power * x.astype(np.float32) ** (power - 1)) if power != 1 else inner

    return forward, backward
