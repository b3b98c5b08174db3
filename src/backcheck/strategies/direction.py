"""One random direction's difference: its numeric and analytic slopes, their mismatch, its bound, and whether it
crosses a kink at the point (see :mod:`backcheck.strategies.projected`, whose directions these are)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from backcheck.bits import dot
from backcheck.errors import NonFiniteError
from backcheck.evaluate import EDGE_RETRIES, EDGE_SHRINK, Evaluator
from backcheck.numeric.grad import NOISE_FACTOR, noise_level
from backcheck.numeric.noise import local_noise
from backcheck.refinement import NEAR_FLOOR
from backcheck.scratch import lend
from backcheck.verdict import RES_FACTOR, SAFETY, Tolerance, bound, is_kink, native_grant

#: A mismatch this many screening bounds large fails without refinement at a smaller step.
CLEAR = 64.0


@dataclass
class Measurement:
    """The mismatch ``numeric - analytic`` of a directional derivative, per unit step, and its bound."""

    mismatch: float
    bound: float
    numeric: float
    analytic: float
    kinky: bool = False  # the direction crosses a kink at the point: its central difference proves nothing
    shrunk: float = 1.0  # the factor the direction was shrunk by to stay inside f's domain
    pending: FullStep | None = None  # failed clearly at the full step, its half step not measured: see settle
    blind: bool = False  # its gap within f's noise, its mismatch not far beyond: a kink at the point could carry it

    @property
    def failed(self) -> bool:
        return abs(self.mismatch) > self.bound and not self.kinky


@dataclass(frozen=True)
class Along:
    """What stays the same for every direction over one run of an array's elements: the elements ``idx``, the
    claimed gradient there ``gs``, the tolerance, ``scales`` (the analytic dtype's machine epsilon and the array's
    typical gradient) and ``wide`` (the same backward pass run in float64, see :func:`measure_once`)."""

    gs: np.ndarray
    idx: slice
    tol: Tolerance
    scales: tuple[float, float]
    wide: np.ndarray | None = None


@dataclass(frozen=True)
class FullStep:
    """A direction's difference at its full step (numeric and analytic slopes, the gap between its forward and
    backward slopes, the gradient's rounding along it) with the analytic side's resolution and f's noise."""

    numeric: float
    analytic: float
    gap: float
    rounding: float
    res: float
    noise: float


def measure(
    ev: Evaluator, along: Along, coef: np.ndarray, moments: tuple[float, float, float] | None = None
) -> Measurement:
    """:func:`measure_once`; a direction that leaves f's domain (a log barrier near its edge: NaN or inf at a
    step) is shrunk by ``EDGE_SHRINK``, up to ``EDGE_RETRIES`` times, as an element's step is. The result is
    given per unit of the direction asked for (its bound grows as the direction shrinks); ``coef`` is left as
    it was given."""
    shrink = 1.0
    for _ in range(EDGE_RETRIES):
        try:
            m = measure_once(ev, along, coef, moments)
            break
        except NonFiniteError:
            coef /= EDGE_SHRINK
            shrink /= EDGE_SHRINK
            if moments is not None:  # linear in coef
                moments = (moments[0] / EDGE_SHRINK, moments[1] / EDGE_SHRINK, moments[2] / EDGE_SHRINK)
    else:
        m = measure_once(ev, along, coef, moments)  # still not finite: the error names it
    if shrink == 1.0:
        return m
    coef /= shrink
    return _per_unit(m, shrink)


def _per_unit(m: Measurement, shrink: float) -> Measurement:
    """``m``, measured along a direction shrunk by ``shrink``, per unit of the direction asked for."""
    per = {k: getattr(m, k) / shrink for k in ("mismatch", "bound", "numeric", "analytic")}
    return dataclasses.replace(m, shrunk=shrink, **per)


def measure_once(
    ev: Evaluator, along: Along, coef: np.ndarray, moments: tuple[float, float, float] | None = None
) -> Measurement:
    """Difference along ``x + t * coef`` (on the elements ``along.idx``, gradient ``along.gs`` there) at ``t = 1``
    and, if doubtful, ``t = 1/2``.

    ``moments``: ``sum
    |g c|``, ``|g c|_2`` and ``|c|_2`` when the caller knows them (a large array's expected values, see
    :func:`_moments`); else they are summed here. ``along.wide``: the same backward pass run in float64 (a
    low-precision gradient against float64 numerics): the formula is then judged at float64's resolution, and
    the gradient's own rounding along the direction, ``|<g - g_wide, v>|``, measured and added to the bound
    (a value computed with cancellation carries rounding far above its dtype's resolution).
    """
    gs, tol, wide = along.gs, along.tol, along.wide
    grad_eps, typical = along.scales
    native = 0.0
    if wide is not None:  # float64's resolution, and the native dtype's of each element (verdict.wide_resolution)
        native, grad_eps = grad_eps, float(np.finfo(np.float64).eps)
    if moments is None:
        gc = gs * coef
        l2 = math.sqrt(dot(gc, gc))
        l1 = float(np.sum(np.abs(gc, out=gc)))
        moments = (l1, l2, math.sqrt(dot(coef, coef)))
    l1, l2, norm = moments
    n1, a1, gap1, rounding1 = _at(ev, along, coef, 1.0)
    # the analytic side's rounding: of the product itself, and of gradients of the typical size (an array
    # whose true gradient is zero still carries rounding of its neighbours' size)
    res = RES_FACTOR * grad_eps * (abs(a1) + l2 + typical * norm) + float(native_grant(native)) * l2
    if tol.custom:
        return Measurement(n1 - a1, float(tol.allowed(n1)), n1, a1)
    eps_out = ev.out_eps
    # as in verdict.screen: a balanced step's truncation is about its round-off, eps^(2/3) of the derivative;
    # rounding alone clears (the noise probe runs only for a direction that rounding cannot clear)
    trunc = eps_out ** (2 / 3) * (abs(n1) + l1)
    lazy = noise_level(ev, lazy=True)
    first = bound(trunc, lazy / 2, res) + rounding1
    # f's forward and backward slopes differ by its curvature over the move, far below the sum of the slope's own
    # terms; by far more where a step crosses a jump (two jumps whose halves cancel in the central difference):
    # then the direction is measured again at half the move, where a jump's gap doubles
    steep = gap1 > max(l1, abs(n1)) + SAFETY * lazy
    if abs(n1 - a1) <= first and not steep:
        return Measurement(n1 - a1, first, n1, a1)
    noise = noise_level(ev)
    screen = bound(trunc, noise / 2, res) + rounding1
    smooth = gap1 < abs(n1 - a1) / 4  # a kink along the direction would show as a large gap
    steep = steep and gap1 > max(l1, abs(n1)) + SAFETY * noise
    full = FullStep(n1, a1, gap1, rounding1, res, noise)
    if abs(n1 - a1) <= screen and not steep:
        return Measurement(n1 - a1, screen, n1, a1)  # clearly right: no need to refine
    if smooth and abs(n1 - a1) > CLEAR * screen:  # clearly wrong, unless kinks at the point cancel in the gap
        return Measurement(n1 - a1, screen, n1, a1, pending=full)
    return _halved(ev, along, coef, full)


def _at(ev: Evaluator, along: Along, coef: np.ndarray, t: float) -> tuple[float, float, float, float]:
    """The numeric and analytic slopes along ``x + t * coef``, the gap between its forward and backward slopes
    and the gradient's rounding along it (see :func:`measure_once`)."""
    gs, wide = along.gs, along.wide
    ev.output.track = True  # (a move of about one step per element: the outputs it moves are recorded)
    try:
        with lend(coef.size) as d0, lend(coef.size) as d1:
            phis, dots = ev.direction(along.idx, coef, (t, -t), (d0, d1), (gs,) if wide is None else (gs, wide))
    finally:
        ev.output.track = False
    analytic = dots[0] / (2 * t)
    formula = analytic if wide is None else dots[1] / (2 * t)
    numeric = (phis[0] - phis[1]) / (2 * t)
    gap = abs((phis[0] - ev.phi0) - (ev.phi0 - phis[1])) / t  # forward minus backward slope
    rounding = 0.0 if wide is None else abs(analytic - formula)
    return numeric, analytic, gap, rounding


def _halved(ev: Evaluator, along: Along, coef: np.ndarray, full: FullStep) -> Measurement:
    """The direction measured again at half its step: a mismatch that stays is the rule's, one that changes is a
    kink's near the point; a gap that stays marks a kink at it (see :func:`measure_once`)."""
    n1, a1, noise, res = full.numeric, full.analytic, full.noise, full.res
    n2, a2, gap2, rounding2 = _at(ev, along, coef, 0.5)
    limit = bound(abs((n1 - a1) - (n2 - a2)), noise, res)
    kinky = is_kink(gap2, full.gap, 4 * noise)  # the gap at t = 1/2 carries 2 x 2 noise / t
    m = Measurement(n2 - a2, limit + rounding2, n2, a2, kinky, blind=_blind(gap2, n2 - a2, noise))
    if m.failed and res <= limit / SAFETY and abs(m.mismatch) - rounding2 <= NEAR_FLOOR * limit:
        # within a few orders of its floor: rounding of terms that cancelled inside f can be this large (see
        # numeric.noise.local_noise); judged again with the noise measured along the direction (24 evaluations)
        idx = along.idx
        where = np.arange(idx.start, idx.stop) if isinstance(idx, slice) else np.asarray(idx)
        sigma = local_noise(ev, where, 0.5 * coef, along.gs)
        m.bound += bound(0.0, NOISE_FACTOR * sigma, 0.0)  # the difference at t = 1/2 spans 1
    return m


def _blind(gap: float, mismatch: float, noise: float) -> bool:
    """Whether a gap is too small beside f's noise to tell a kink (see :func:`_halved`), and the mismatch not
    :data:`CLEAR` times larger: kinks at the point could carry it with their gap cancelled within the noise."""
    quiet = SAFETY * 4 * noise
    return gap <= quiet and abs(mismatch) <= CLEAR * quiet


def settle(ev: Evaluator, along: Along, coef: np.ndarray, m: Measurement) -> Measurement:
    """``m``, or where it failed clearly at its full step alone (``m.pending``), the direction ``coef`` measured
    again at half its step (2 evaluations). Kinks exactly at the point make a central difference off by a constant,
    as a wrong rule does (it sees the mean of each element's one-sided slopes, which a subgradient need not be), and
    show only in the gap between the forward and backward slopes; kinks of both kinds (a ReLU weighted by both
    signs) cancel there but not in the difference, so a small gap does not clear the direction of them. At half the
    step a kink's gap stays where a curvature's halves. A gap within f's noise tells nothing more at half the step:
    ``m``, marked ``blind`` where its mismatch is small enough for kinks to carry."""
    full = m.pending
    if full is None:
        return m
    if full.gap <= SAFETY * 4 * full.noise:
        return dataclasses.replace(m, pending=None, blind=_blind(full.gap, m.mismatch * m.shrunk, full.noise))
    try:
        half = _halved(ev, along, coef * m.shrunk, full)
    except NonFiniteError:
        return m  # (f's domain ends within the half step: the full step's verdict stands)
    return _per_unit(half, m.shrunk)
