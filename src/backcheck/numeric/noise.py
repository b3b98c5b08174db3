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
#: The sampling distance relative to the finite-difference step of each element.
RELATIVE_SPACING = 1e-3


def estimate_noise(ev: Evaluator, steps: np.ndarray, seed: int = 0) -> float:
    """Estimate the standard deviation of the noise in ``phi`` near the original point (8 evaluations)."""
    rng = np.random.default_rng(seed + 104729)
    n = ev.tree.size
    idx = np.arange(n)
    coef = steps * RELATIVE_SPACING * rng.choice((-1.0, 1.0), size=n)
    offsets = [j for j in range(-HALF_WIDTH, HALF_WIDTH + 1) if j != 0]
    try:
        phis, _ = ev.direction(idx, coef, offsets)
    except NonFiniteError:
        return 0.0  # at the edge of the domain; the elementwise differences will name the culprit
    values = np.insert(phis, HALF_WIDTH, ev.phi0)
    d6 = np.diff(values, n=6)
    return float(np.sqrt(np.mean(d6**2) / 924.0))
