"""Empirical noise level of a function: how much its value jitters from rounding near the point.

A model like ``eps * |f|`` misses rounding inside the function when terms cancel (``sin(-2) + sin(2)``
is 0, but each term carries round-off of ``eps * 0.9``). Sampling the function at 12 points along a short
segment in a random direction and fitting a polynomial of degree 5 removes the smooth part and leaves the
noise (the idea of Moré and Wild's ECnoise, whose 6th differences span the same residual): for independent
noise of deviation ``sigma``, the residual's sum of squares is ``sigma**2`` times a chi-square of 6 degrees of
freedom, whatever the correlation of overlapping differences. Two such probes, pooled, give 12 degrees of
freedom: corrected for the bias of a root (:func:`_unbias`), the estimate has mean ``sigma`` and falls below
``sigma / 2`` in about 1 draw in 200 (measured over uniform, Gaussian and sinusoidal jitters and the rounding
of a quantized loss: ``tests/numeric/test_noise.py``).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from backcheck.bits import dot
from backcheck.errors import NonFiniteError
from backcheck.evaluate import Evaluator

#: Points sampled on each segment (two segments: 24 evaluations).
POINTS = 12
#: Degree of the polynomial that stands for the smooth part of phi along a segment (ECnoise's 6th differences).
DEGREE = 5
#: The most elements the probe moves (a random subset of a larger input).
MAX_MOVED = 65536
#: The sampling distance relative to the finite-difference step of each element (times a random factor in
#: [0.5, 1] per element and segment, so that a term periodic at a shorter scale than the spacing is not aliased
#: to the same phase on every point).
RELATIVE_SPACING = 1e-3
#: Each point moves off its regular place on the segment by up to this fraction of the spacing, at random: a
#: term that oscillates faster than the spacing, ``sin(1e13 * x)``, then shows as noise instead of a smooth
#: sinusoid sampled at a fixed phase step. The points stay on the grid of the inputs' dtypes (their rounding would
#: pose as noise): the fraction is a multiple of ``1 / fine``, a power of 2 (up to ``2**MAX_FINE``), and the
#: spacing a multiple of ``fine`` units of the grid, at least ``RESOLVED`` of them (a spacing of a few coarse
#: units would often move a sum of the inputs by exactly 0, blind to noise that depends on it). Where the grid
#: is coarser (float32 and float16 inputs), the points stay at their regular places.
JITTER = 0.4
MAX_FINE = 20
RESOLVED = 2**10
#: Where phi does not move at all along a segment (a loss rounded to 1e-3: a quantized function), the probe is
#: taken again this many times wider (at about the finite-difference step), and again, until the quantization
#: shows.
QUANTUM_WIDENING = 1e2
#: A widened segment's offset from the point grows with it (times ``widen * AWAY``): its half-width, up to
#: ``(POINTS / 2 + 1) * RELATIVE_SPACING * widen`` steps, then stays below 0.7 of its offset (of at least half a
#: step).
AWAY = 0.02
#: Two probes whose estimates differ by more than this factor do not measure the same noise: the larger one
#: crossed a kink or a jump (a ReLU input a step away; its jolt is orders of magnitude above rounding), and the
#: smaller is kept. Pure noise does so about once in 3 million draws (the ratio of two chi-squares of 6 degrees
#: of freedom exceeds 400 that rarely; at a factor of 8, 1 in 14000, a test's Gaussian jitter kept a probe that
#: fit 0.13 of the noise by chance). A kink's jolt within the factor is pooled: at most 14 times the noise.
OUTLIER = 20.0
#: An element closer to 0 than its step is moved by the probe by at most this fraction of its size, so that a
#: pole at 0 (1/x at 1e-10) lies off every segment that is not widened.
NEAR_FRACTION = 0.125
#: Seeds the segments of :func:`element_noise` (with the element), apart from the check's own streams.
ELEMENT_SEED = 0x5E6


def estimate_noise(ev: Evaluator, steps: np.ndarray, seed: int = 0, gradient: np.ndarray | None = None) -> float:
    """Estimate the standard deviation of the noise in ``phi`` near the original point (24 evaluations).

    Two probes, each on a short segment offset from the point by about one finite-difference step in a
    random direction: a kink *at* the point (ReLU inputs at 0, ties) then lies off the segments, where it
    would pose as noise. The two estimates are pooled, unless one is many times the other (a kink or a jump
    crossed one segment by chance): then the smaller is kept. ``seed`` seeds the probes' directions; a check
    passes one drawn from its ``"noise"`` stream (:meth:`backcheck.options.Options.rng`). Where ``phi`` stands
    still along a segment although ``gradient`` (the claimed one) says it should move, ``phi`` is quantized:
    the probe is taken again, wider (within :data:`REACH` of the point), until the quantization shows (more than
    one move: a single jump is a threshold crossed, f is locally constant), and its quantum ``q`` counts as noise of
    ``q / sqrt(12)`` (the deviation of rounding to a grid of ``q``); the quantum found is left in
    ``ev.noise_quantum`` (0 when ``phi`` moved along both segments): a quantized ``phi`` is piecewise constant.
    """
    rng = np.random.default_rng(seed)  # the caller draws it from its own named stream
    # the noise of phi shows along any direction: on a large input, move a random subset of its elements only
    idx = np.setdiff1d(np.arange(ev.tree.size), ev.tree.excluded)  # non-finite entries (masks) stay put
    # an element closer to 0 than its step may sit next to a pole (1/x at 1e-10) that a probe would cross: it
    # moves by a fraction of its own size instead. Left out, it would hide the noise only it stirs (a small
    # residual branch r in (x + r) - x: moving x alone, on its own grid, leaves the rounding of x + r unchanged)
    h = steps[idx]
    x = np.abs(ev.tree.values()[idx])
    near = (x > 0) & (x < steps[idx])
    if near.any():
        h = np.where(near, NEAR_FRACTION * x, h)
    if idx.size > MAX_MOVED:
        keep = np.sort(rng.choice(idx.size, size=MAX_MOVED, replace=False))
        idx, h = idx[keep], h[keep]
    slopes = None if gradient is None else gradient[idx]
    probes = [p for p in (_probe(ev, idx, h, rng, slopes) for _ in range(2)) if p is not None]
    ev.noise_quantum = max((q for _s, q, _k in probes), default=0.0)  # (a quantized phi: piecewise constant)
    return _combine(probes)


def element_noise(ev: Evaluator, i: int, step: float, slope: float | None = None, seed: int = 0) -> float:
    """The noise of ``phi`` along element ``i`` alone, about ``step`` away from the point on either side (24
    evaluations): :func:`local_noise` of one element, ``slope`` its claimed derivative."""
    slopes = None if slope is None or not np.isfinite(slope) else np.array([float(slope)])
    return local_noise(ev, np.array([i], dtype=np.int64), np.array([float(step)]), slopes, seed)


def local_noise(
    ev: Evaluator, idx: np.ndarray, move: np.ndarray, slopes: np.ndarray | None = None, seed: int = 0
) -> float:
    """The noise of ``phi`` where a difference along ``x[idx] +- move`` takes its values (24 evaluations).

    The model ``eps * |phi|`` and the probe of :func:`estimate_noise` (taken along a random direction over all
    elements, and scaled to each element's outputs in proportion to their size) both miss rounding of terms
    that cancelled into a small value: ``z = x @ w + b`` of 1e-7 from terms of size 1 carries their rounding,
    1e-16, whatever the size of ``z``, and ``z**2`` then jitters by 1e-9 of itself. This probe measures it
    where the difference was taken: one segment (as in :func:`_probe`) about ``x + move`` and one about
    ``x - move`` (each element between half and all of its move). The two are pooled, even when one is many
    times the other: a difference carries the rounding of both of its values, and rounding may differ from side
    to side (a mean of values near 1 rounds more coarsely above 1 than below it), so the quieter side is no sign
    of a kink crossed by the other. Where ``phi`` stands still along a segment although ``slopes`` (the claimed
    derivatives of ``idx``) say it should move, the segment is widened until its quantum shows, as in
    :func:`estimate_noise`.
    """
    seeds = [ELEMENT_SEED, seed, int(idx[0]) if idx.size == 1 else int(idx.size)]
    rng = np.random.default_rng(seeds)
    move = np.asarray(move, dtype=np.float64)
    sign = np.where(move < 0, -1.0, 1.0)
    probes = [_probe(ev, idx, np.abs(move), rng, slopes, side * sign) for side in (1.0, -1.0)]
    return _combine([p for p in probes if p is not None], outliers=False)


def _probe(
    ev: Evaluator,
    idx: np.ndarray,
    h: np.ndarray,
    rng: np.random.Generator,
    slopes: np.ndarray | None,
    side: np.ndarray | None = None,
) -> tuple[float, float, int] | None:
    """One segment's ``(sigma, quantum, dof)``: the residual's deviation, the quantum phi showed (0 if none)
    and the residual's degrees of freedom. None where phi is not finite on the segment (at the edge of the
    domain: the elementwise differences name the culprit). ``side`` (+1 or -1 per element) offsets each element
    to that side of the point; None, to a random side each."""
    n = idx.size
    x = ev.tree.values()[idx]
    signs = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    base = h * rng.uniform(0.5, 1.0, size=n) * (np.where(rng.random(n) < 0.5, -1.0, 1.0) if side is None else side)
    factor = rng.uniform(0.5, 1.0, size=n)
    # elements that share their value with another move on a ray from the point (each in proportion to its own
    # offset): two tied values then never cross on the segment, where each moving in its own direction crossed
    # somewhere in a tie of hundreds (a sort of values rounded to 0.1), and the slopes' jolt posed as noise
    tied = _tied(x)
    signs = np.where(tied, np.where(base < 0, -1.0, 1.0), signs)
    factor = np.where(tied, np.abs(base) / np.where(h > 0, h, 1.0), factor)
    t = np.arange(POINTS, dtype=np.float64) - POINTS // 2
    jitter = rng.uniform(-JITTER, JITTER, size=POINTS)
    fine = 0.0
    for widen in (1.0, QUANTUM_WIDENING, QUANTUM_WIDENING**2):
        spacing = h * RELATIVE_SPACING * widen * factor
        # a wider segment lies further out, so that it never reaches the point itself (where f may jump)
        away = base * max(1.0, widen * AWAY)
        capped = False
        if widen > 1:  # ... but within the reach of the point (see REACH)
            away, spacing, capped = _within_reach(x, h, away, spacing)
        # every point on the grid of its element's dtype where the segment lies: rounding them (a point in the
        # next binade) would pose as noise. The segment reaches less than |x| + 1.7 |away| (see AWAY)
        grid = _grid(ev, idx, 2 * (np.abs(x) + np.abs(away)), spacing)
        on_grid = grid > 0
        if not fine:  # points off their regular places, on the finest subdivision of the spacing the grids hold
            # an element off every grid (its grid far finer than the spacing) does not limit the subdivision
            units = np.min(np.where(on_grid, spacing / np.where(on_grid, grid, 1.0), np.inf), initial=np.inf)
            fine = 2.0 ** min(np.floor(np.log2(units / RESOLVED)), MAX_FINE) if units >= 8 * RESOLVED else 1.0
            t += np.round(jitter * fine) / fine
        unit = np.where(on_grid, fine * grid, 1.0)
        # (an element the move leaves where it is, h = 0, stays: a unit of its grid moved it, and near a pole (the
        # log of 1e-14) the rounding of its one-ulp moves posed as phi's noise)
        spacing = np.where(on_grid & (h > 0), np.maximum(np.round(spacing / unit), 1) * unit, spacing) * signs
        cell = np.where(on_grid, grid, 1.0)
        start = np.where(on_grid, np.round((x + away) / cell) * cell - x, away)  # x + start on the grid
        try:
            phis = _segment(ev, idx, start, spacing, t)
        except NonFiniteError:
            return None
        should = _should_move(ev, spacing, slopes, STEP_ULPS)
        if capped or np.any(phis != phis[0]) or not _should_move(ev, spacing * (POINTS - 1), slopes, STILL_ULPS):
            # phi moves on this segment, or need not from its first point to its last: a quantized phi (whose
            # steps may span many neighbours) is probed again, wider
            break
    moves = np.abs(np.diff(phis))
    if capped and not _quanta(moves[moves > 0]) and not np.count_nonzero(moves) > moves.size / 2:
        # phi stood still wherever it was probed but for one jump at the edge of the reach, or jumps of unrelated
        # sizes (thresholds of several elements crossed, each moving phi by its own weight): no quantum (a rounding
        # grid's moves are whole numbers of one quantum, and show more than once); phi stands still near the point.
        # Moves between most neighbours are no thresholds crossed but stairs of many sizes (inputs cast to
        # bfloat16 inside: each element's stairs, weighted by its own slope): their residual is phi's noise
        return 0.0, 0.0, POINTS - DEGREE - 1
    return _residual(phis, t), _quantum(moves, should), POINTS - DEGREE - 1


#: Moves of a quantized phi are whole numbers of its quantum to within this share of it (its own rounding).
WHOLE = 1e-3


def _quanta(moving: np.ndarray) -> bool:
    """Whether the nonzero moves of phi along a segment are a rounding grid's: two or more, each a whole number of
    the smallest."""
    if moving.size < 2:
        return False
    k = moving / moving.min()
    return bool(np.all(np.abs(k - np.round(k)) <= WHOLE * k))


#: A widened segment moves no element further from the point than this share of its size (at least of its step),
#: the reach of the wider steps of :mod:`backcheck.refinement` (its ``WIDEST``): beyond, it would measure no
#: rounding near the point but f's shape on the scale of the element itself (a float32 step, 5e-3 of |x|, widened
#: 1e4 times, moves x by about its own size, across a threshold at 0; so would a reach of 0.1 for x of 0.03).
REACH = 0.1


def _within_reach(
    x: np.ndarray, h: np.ndarray, away: np.ndarray, spacing: np.ndarray
) -> tuple[np.ndarray, np.ndarray, bool]:
    """``away`` and ``spacing`` scaled down, per element, so that the segment stays within :data:`REACH` of
    ``x`` (of its step ``h`` where that is larger); and whether any was."""
    extent = np.abs(away) + (POINTS // 2 + 1) * np.abs(spacing)
    limit = REACH * np.maximum(np.abs(x), h)
    scale = np.minimum(1.0, limit / np.where(extent > 0, extent, 1.0))
    return away * scale, spacing * scale, bool(np.any(scale < 1))


def _tied(x: np.ndarray) -> np.ndarray:
    """Per element of ``x``, whether another element holds its value."""
    order = np.argsort(x, kind="stable")
    same = np.diff(x[order]) == 0
    tied = np.zeros(x.size, dtype=bool)
    tied[order[1:][same]] = tied[order[:-1][same]] = True
    return tied


def _quantum(steps: np.ndarray, should: bool) -> float:
    """The step a quantized phi moves in along a segment (its smallest nonzero change between neighbours), or 0:
    phi stands still between some neighbours although it ``should`` move there, and either its moves lie among
    the still ones, or they are all one size. A kink with one flat side (max(0, x) across 0) stands still on that
    side and moves smoothly, by ever other amounts, on the other: no quantum."""
    moving = steps > 0
    if not (should and moving.any() and not moving.all()):
        return 0.0
    where = np.flatnonzero(moving)
    moves = steps[moving]
    if (~moving[where[0] : where[-1] + 1]).any() or bool(np.all(moves == moves[0])):
        return float(np.min(moves))
    return 0.0


def _residual(phis: np.ndarray, t: np.ndarray) -> float:
    """The deviation of ``phis`` about a polynomial of degree :data:`DEGREE` in ``t`` (least squares)."""
    y = phis - phis[0]  # exact: the values are close
    peak = float(np.max(np.abs(y)))
    if not peak > 0:
        return 0.0
    y = y / peak  # scaled, so that a function of size 1e200 does not overflow its own noise estimate
    q = _basis(t.tobytes())
    r = y - q @ (q.T @ y)
    return peak * float(np.sqrt(r @ r / (t.size - DEGREE - 1)))


@functools.lru_cache(maxsize=64)
def _basis(t_bytes: bytes) -> np.ndarray:
    """An orthonormal basis of the polynomials of degree :data:`DEGREE` on the points ``t`` (float64 bytes),
    scaled to [-1, 1]: the same few point sets recur from probe to probe (a QR costs more than the rest of a
    residual)."""
    t = np.frombuffer(t_bytes, dtype=np.float64)
    u = (t - t.mean()) / float(np.max(np.abs(t - t.mean())))
    q, _ = np.linalg.qr(np.vander(u, DEGREE + 1))
    q.flags.writeable = False
    return q


def _combine(probes: list[tuple[float, float, int]], outliers: bool = True) -> float:
    """Pool the probes' estimates, unless one is an outlier (a kink crossed it; with ``outliers`` only); add a
    quantum's rounding."""
    if not probes:
        return 0.0
    quantum = max(q for _s, q, _k in probes)  # a quantum shows in any probe that stood still
    probes = sorted(probes)
    if outliers and probes[-1][0] > OUTLIER * probes[0][0]:
        probes = probes[:1]
    top = probes[-1][0]
    if not top > 0:
        sigma = 0.0
    else:  # scaled, so that the squares of a function of size 1e200 do not overflow
        dof = sum(k for _s, _q, k in probes)
        sigma = top * float(np.sqrt(sum(k * (s / top) ** 2 for s, _q, k in probes) / dof)) * _unbias(dof)
    return max(sigma, quantum / np.sqrt(12.0))


def _unbias(dof: int) -> float:
    """``1 / E[sqrt(chi2_dof / dof)]``: the root of a mean of squares underestimates a deviation on average
    (by 2% over 12 degrees of freedom, 4% over 6); this makes it unbiased for Gaussian noise."""
    return float(np.sqrt(dof / 2) * np.exp(math.lgamma(dof / 2) - math.lgamma((dof + 1) / 2)))


#: A segment along which phi stood exactly still is widened if the claimed gradient says phi changes from its
#: first point to its last by this many units of its rounding (a quantized phi's steps may span many points: an
#: element of 0.5 cast to float16 inside a float32 phi of size 2 makes stairs 2**-12 wide, 24 times a segment
#: along which its slope of 0.65 claimed a change of 54 units; at 64, the segment was not widened and the stairs
#: went unseen).
STILL_ULPS = 16
#: Neighbours equal although the claimed gradient says they differ by this many units of phi's rounding are a
#: quantum's sign (rounding alone cannot make values so far apart equal; a long computation's jitter may, and
#: then its smallest step is about that jitter, which the noise already is).
STEP_ULPS = 4


def _should_move(ev: Evaluator, spacing: np.ndarray, slopes: np.ndarray | None, ulps: float) -> bool:
    """Whether the claimed gradient (``slopes``, of the moved elements) says phi changes over ``spacing`` by
    more than ``ulps`` units of its rounding."""
    if slopes is None:
        return False
    change = abs(dot(slopes, spacing))
    return change > ulps * ev.out_eps * max(ev.scale, abs(ev.phi0), 1e-300)


def _grid(ev: Evaluator, idx: np.ndarray, size: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Per moved element, the spacing of its dtype's values at magnitude ``size``; 0 where ``spacing`` is so many
    times that that any displacement the probe computes is a multiple of it."""
    out = np.zeros(idx.size)
    which = np.searchsorted(ev.tree.offsets, idx, side="right") - 1
    for k, leaf in enumerate(ev.tree.leaves):
        sel = which == k
        if sel.any():
            with np.errstate(over="ignore"):
                out[sel] = np.spacing(size[sel].astype(leaf.dtype)).astype(np.float64)
    out[~(out * 2.0**40 >= spacing)] = 0.0  # also where the magnitude overflows the dtype
    return out


def _segment(ev: Evaluator, idx: np.ndarray, start: np.ndarray, spacing: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``phi`` at ``x + start + t_j * spacing`` for each ``t_j`` (one evaluation each)."""
    if idx.size == 1 and not np.any(ev.tree.excluded == idx[0]):  # one element's segment: the evaluator's loop
        return ev.along(int(idx[0]), start[0] + t * spacing[0])
    out = np.empty(t.size)
    for k, tj in enumerate(t):
        phis, _ = ev.direction(idx, start + tj * spacing, (1.0,))
        out[k] = phis[0]
    return out
