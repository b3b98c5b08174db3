"""Empirical noise level of a function: how much its value jitters from rounding near the point.

A model like ``eps * |f|`` misses rounding inside the function when terms cancel (``sin(-2) + sin(2)``
is 0, but each term carries round-off of ``eps * 0.9``). Sampling the function at 9 equally spaced points
along a random direction, a tiny distance apart, and taking 6th differences removes the smooth part and
leaves the noise (the idea of Moré and Wild's ECnoise): for independent noise of deviation ``sigma``,
a 6th difference has variance ``C(12, 6) sigma**2 = 924 sigma**2``.
"""

from __future__ import annotations

import numpy as np

from backcheck.errors import NonFiniteError
from backcheck.evaluate import Evaluator

#: Points sampled on each side of the original point.
HALF_WIDTH = 4
#: The most elements the probe moves (a random subset of a larger input).
MAX_MOVED = 65536
#: The sampling distance relative to the finite-difference step of each element.
RELATIVE_SPACING = 1e-3


def estimate_noise(ev: Evaluator, steps: np.ndarray, seed: int = 0) -> float:
    """Estimate the standard deviation of the noise in ``phi`` near the original point (18 evaluations).

    Two probes, each on a short segment offset from the point by about one finite-difference step in a
    random direction: a kink *at* the point (ReLU inputs at 0, ties) then lies off the segments, where it
    would pose as noise. The smaller of the two estimates is kept, so that a kink crossing one segment by
    chance does not inflate the estimate. ``seed`` seeds the probes' directions; a check passes one drawn
    from its ``"noise"`` stream (:meth:`backcheck.options.Options.rng`).
    """
    rng = np.random.default_rng(seed)  # the caller draws it from its own named stream
    # the noise of phi shows along any direction: on a large input, move a random subset of its elements only
    idx = np.setdiff1d(np.arange(ev.tree.size), ev.tree.excluded)  # non-finite entries (masks) stay put
    if idx.size > MAX_MOVED:
        idx = np.sort(rng.choice(idx, size=MAX_MOVED, replace=False))
    n = idx.size
    h = steps[idx]
    offsets = [j for j in range(-HALF_WIDTH, HALF_WIDTH + 1)]
    estimates = []
    for _ in range(2):
        signs = np.where(rng.random(n) < 0.5, -1.0, 1.0)
        base = h * rng.uniform(0.5, 1.0, size=n) * np.where(rng.random(n) < 0.5, -1.0, 1.0)
        spacing = h * RELATIVE_SPACING * signs
        try:
            phis = _segment(ev, idx, base, spacing, offsets)
        except NonFiniteError:
            continue  # at the edge of the domain; the elementwise differences will name the culprit
        d6 = np.diff(phis, n=6)
        estimates.append(float(np.sqrt(np.mean(d6**2) / 924.0)))
    return min(estimates) if estimates else 0.0


def _segment(ev: Evaluator, idx: np.ndarray, base: np.ndarray, spacing: np.ndarray, offsets: list[int]) -> np.ndarray:
    """``phi`` at ``x + base + j * spacing`` for each offset ``j`` (one evaluation each)."""
    out = np.empty(len(offsets))
    for k, j in enumerate(offsets):
        phis, _ = ev.direction(idx, base + j * spacing, (1.0,))
        out[k] = phis[0]
    return out
