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
#: Where phi does not move at all along a segment (a loss rounded to 1e-3: a quantized function), the probe is
#: taken again this many times wider (at about the finite-difference step), and again, until the quantization
#: shows.
QUANTUM_WIDENING = 1e2
#: A widened segment's offset from the point grows with it (times ``widen * AWAY``): its half-width,
#: ``HALF_WIDTH * RELATIVE_SPACING * widen`` steps, then stays below the offset of at least half a step.
AWAY = 0.02


def estimate_noise(ev: Evaluator, steps: np.ndarray, seed: int = 0, gradient: np.ndarray | None = None) -> float:
    """Estimate the standard deviation of the noise in ``phi`` near the original point (18 evaluations).

    Two probes, each on a short segment offset from the point by about one finite-difference step in a
    random direction: a kink *at* the point (ReLU inputs at 0, ties) then lies off the segments, where it
    would pose as noise. The smaller of the two estimates is kept, so that a kink crossing one segment by
    chance does not inflate the estimate. ``seed`` seeds the probes' directions; a check passes one drawn
    from its ``"noise"`` stream (:meth:`backcheck.options.Options.rng`). Where ``phi`` stands still along a
    segment although ``gradient`` (the claimed one) says it should move, ``phi`` is quantized: the probe is
    taken again, wider, until the quantization shows.
    """
    rng = np.random.default_rng(seed)  # the caller draws it from its own named stream
    # the noise of phi shows along any direction: on a large input, move a random subset of its elements only
    idx = np.setdiff1d(np.arange(ev.tree.size), ev.tree.excluded)  # non-finite entries (masks) stay put
    # an element closer to 0 than its step may sit next to a pole (1/x at 1e-10) that a probe would cross
    x = np.abs(ev.tree.values()[idx])
    near = (x > 0) & (x < steps[idx])
    if near.any() and (~near).sum() >= idx.size // 2:
        idx = idx[~near]
    if idx.size > MAX_MOVED:
        idx = np.sort(rng.choice(idx, size=MAX_MOVED, replace=False))
    n = idx.size
    h = steps[idx]
    offsets = [j for j in range(-HALF_WIDTH, HALF_WIDTH + 1)]
    estimates = []
    ulp = _grid(ev, idx)
    for _ in range(2):
        signs = np.where(rng.random(n) < 0.5, -1.0, 1.0)
        base = h * rng.uniform(0.5, 1.0, size=n) * np.where(rng.random(n) < 0.5, -1.0, 1.0)
        for widen in (1.0, QUANTUM_WIDENING, QUANTUM_WIDENING**2):
            spacing = h * RELATIVE_SPACING * widen * signs
            # on the grid of a narrow dtype the points stay equally spaced: rounding them would pose as noise
            spacing = np.where(
                ulp > 0, np.maximum(np.round(spacing / np.where(ulp > 0, ulp, 1)), 1) * ulp * signs, spacing
            )
            spacing = np.where(ulp > 0, np.abs(spacing) * signs, spacing)
            # a wider segment lies further out, so that it never reaches the point itself (where f may jump)
            away = base * max(1.0, widen * AWAY)
            start = np.where(ulp > 0, np.round(away / np.where(ulp > 0, ulp, 1)) * ulp, away)
            try:
                phis = _segment(ev, idx, start, spacing, offsets)
            except NonFiniteError:
                phis = None  # at the edge of the domain; the elementwise differences will name the culprit
                break
            if np.any(phis != phis[0]) or not _should_move(ev, idx, spacing, gradient):
                break  # phi moves on this segment, or need not: a quantized phi is probed again, wider
        if phis is None:
            continue
        d6 = np.diff(phis, n=6)
        peak = float(np.max(np.abs(d6)))
        # scaled, so that a function of size 1e200 does not overflow its own noise estimate
        estimates.append(peak * float(np.sqrt(np.mean((d6 / peak) ** 2) / 924.0)) if peak > 0 else 0.0)
    return min(estimates) if estimates else 0.0


def _should_move(ev: Evaluator, idx: np.ndarray, spacing: np.ndarray, gradient: np.ndarray | None) -> bool:
    """Whether the claimed gradient says phi changes along the segment by far more than its rounding."""
    if gradient is None:
        return False
    change = abs(float(np.dot(gradient[idx], spacing)))
    return change > 64 * float(np.finfo(ev.out_dtype).eps) * max(ev.scale, abs(ev.phi0), 1e-300)


def _grid(ev: Evaluator, idx: np.ndarray) -> np.ndarray:
    """Per moved element, the spacing of its dtype's values near it (0 for float64 elements)."""
    out = np.zeros(idx.size)
    x = ev.tree.values()[idx]
    which = np.searchsorted(ev.tree.offsets, idx, side="right") - 1
    for k, leaf in enumerate(ev.tree.leaves):
        sel = which == k
        if sel.any() and leaf.dtype != np.float64:
            out[sel] = np.spacing(np.abs(x[sel]).astype(leaf.dtype)).astype(np.float64)
    return out


def _segment(ev: Evaluator, idx: np.ndarray, base: np.ndarray, spacing: np.ndarray, offsets: list[int]) -> np.ndarray:
    """``phi`` at ``x + base + j * spacing`` for each offset ``j`` (one evaluation each)."""
    out = np.empty(len(offsets))
    for k, j in enumerate(offsets):
        phis, _ = ev.direction(idx, base + j * spacing, (1.0,))
        out[k] = phis[0]
    return out
