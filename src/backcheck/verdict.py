"""The tolerance model: is an analytic value consistent with what finite differences can know?

Every element is judged against a *bound* built from the numeric estimate's own error, never a bare
threshold:

- round-off: ``ROUNDOFF_FACTOR * eps(output dtype) * scale(phi) / span`` (``scale`` is ``sum |u||y|``, so
  cancellation in the final dot product is accounted for);
- truncation: the change of the estimate between steps ``h`` and ``h/2`` (Richardson's error estimate);
- the analytic value's own resolution: ``RES_FACTOR * eps(gradient dtype) * (|a| + rms of its tensor)``.

An element is a *mismatch* when ``|analytic - numeric| > SAFETY * bound`` at every step tried. It is a
*kink* when the one-sided differences disagree by a gap that does not shrink with the step (the function is
not differentiable there) and the analytic value lies between them (a valid subgradient); a value outside
them is a mismatch, so a real bug next to a kink still fails.

Judging is two-staged for speed: one central difference (2 evaluations) screens every element; only the
elements it cannot clear are refined with smaller steps (2 more evaluations per level).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from backcheck.bits import dot, machine_eps
from backcheck.evaluate import Evaluator
from backcheck.numeric.grad import NOISE_FACTOR, roundoff
from backcheck.numeric.noise import element_noise

#: Units of the native dtype's epsilon, of the element itself, granted to the float64 run of a low-precision
#: gradient function (see :func:`wide_resolution`): the rounding of native-dtype constants it still carries.
NATIVE_GRANT = 4.0
#: Multiple of the estimated error beyond which a difference is called a mismatch.
SAFETY = 4.0
#: Machine epsilons of resolution granted to the analytic gradient.
RES_FACTOR = 16.0
#: The screen clears an element only if analytic and numeric also agree to this relative precision.
SCREEN_RELATIVE = 1e-3
#: Refinement levels (each halves the step) for elements the screen cannot clear.
MAX_LEVELS = 4
#: Fraction of its size a gap between one-sided slopes keeps when the step halves, at least, to be a kink: a
#: smooth function's gap halves (0.5); a kink's stays (1.0). 0.6 sits between, with room for noise.
KINK_PERSISTENCE = 0.6
#: Fraction of its size a one-sided change of f keeps when the step halves, at least, to be a jump: a
#: continuous function's change halves (0.5); across a jump it stays (1.0).
JUMP_PERSISTENCE = 0.8
#: An estimate has *settled* when halving the step changes it by less than this fraction of its size.
SETTLED = 0.5
#: Refinement stops calling a mismatch once the estimates change by less than this fraction of the error.
STABLE = 0.25

#: Pass means vouched: an element passes only if an error of this fraction of the gradient's size (its own,
#: or its tensor's typical size, whichever is larger) would have failed. Larger bounds say nothing a user can
#: rely on ("relative error 50% passes"), so such elements are inconclusive instead.
VOUCH = 0.05
#: A float64 run of a backward pass stands in for the native one's formula only where the two differ by less
#: than this many times the native dtype's rounding (of the gradient's largest element, or of unit-sized
#: intermediates: a confident softmax's ``p - 1`` is a small difference of values near 1, a saturated sigmoid's
#: ``1 - s`` is 0 in float32) or of its measured spread; more is another computation (a backward that takes
#: another path for its own dtype).
WIDE_AGREEMENT = 16.0
#: A tensor whose whole gradient is below this fraction of the check's largest typical gradient is judged
#: against that size instead of its own (a bias before a batch norm has a true gradient of zero).
VOUCH_FLOOR = 1e-3

OK, MISMATCH, KINK, NOISY, DEAD = "ok", "mismatch", "kink", "noisy", "dead"
#: ``f`` is discontinuous at the point along this element: inconclusive, with the jump's size.
JUMP = "jump"
#: At a kink, but outside the one-sided slopes: decided by a re-check at a nearby differentiable point.
AMBIGUOUS = "kink?"
NO_HULL = (np.nan, np.nan)
FAILING = (MISMATCH, DEAD)


@dataclass
class Tolerance:
    """User overrides: ``|a - n| <= atol + rtol * |n|`` replaces the error model where given."""

    atol: float | None = None
    rtol: float | None = None

    @property
    def custom(self) -> bool:
        return self.atol is not None or self.rtol is not None

    def allowed(self, numeric: np.ndarray | float) -> np.ndarray | float:
        return (self.atol or 0.0) + (self.rtol or 0.0) * np.abs(numeric)


def is_jump(moves: tuple[float, float], before: tuple[float, float], noise: float) -> bool:
    """Whether ``f`` itself jumps: a one-sided change that does not shrink as the step halves.

    ``moves`` are ``|f(x + s) - f(x)|`` and ``|f(x) - f(x - s)|``, ``before`` the same at twice the step. Where
    ``f`` is continuous (smooth or a kink) each halves with the step; across a jump one of them stays the
    jump's size. It must also stand above ``noise``, the rounding of one value.
    """
    # a kink within the step from a flat side (a ReLU input of 1e-7) keeps a constant change too, the slope times
    # its distance; but that is smaller than the other side's change, while a jump outgrows it as the step halves.
    # Where both sides keep their change (f sits midway in a jump: sign at 0), f jumps on both.
    kept = [m > SAFETY * noise and m > JUMP_PERSISTENCE * b for m, b in zip(moves, before, strict=True)]
    return any(
        keep and (m > other or keep_other)
        for m, other, keep, keep_other in zip(moves, moves[::-1], kept, kept[::-1], strict=True)
    )


#: Noise (its allowance in one value of ``phi``, ``NOISE_FACTOR`` deviations) above this power of the output dtype's
#: epsilon times the outputs' size (1.2e-4 in float64, 0.019 in float32) is no rounding, even of terms that cancelled
#: (1e-9 of the outputs in zoo.cancellation): ``phi`` varies on a scale finer than the noise probe's spacing.
UNRELATED_POWER = 0.25


def unrelated(ev: Evaluator, i: int, change: float, step: float, a: float) -> bool:
    """Whether ``phi``'s values at the steps of element ``i`` are unrelated to a derivative: the largest
    ``change`` between them lies within the noise measured near the point, noise no rounding makes, and is as loud,
    or the noise along the element itself (24 evaluations, only then) is (``sin`` at 1e20: one unit in the last
    place of the input spans 2600 periods). Then no difference shows a derivative (the steps halve, so an oscillation
    aliases to changes as small as it likes, as a smooth function's), and a mismatch against the rule would only
    say that ``phi`` is not smooth on the scale of the step. An element quiet along itself beside a loud one keeps
    its verdict, as does one along which ``phi`` stood still (see :func:`_unless_coarse`).
    """
    sigma, rounding = ev.noise, ev.out_eps**UNRELATED_POWER * ev.scale
    if not (0 < change <= SAFETY * NOISE_FACTOR * sigma and NOISE_FACTOR * sigma > rounding):
        return False
    # (a quiet element is measured twice, on segments of other spacings: points at a regular spacing on a coarse
    # grid, sin at 1e16 sampled every 44, alias an oscillation to a smooth curve by chance)
    return change * SAFETY > sigma or any(
        NOISE_FACTOR * element_noise(ev, i, step, a, seed) > rounding for seed in range(ELEMENT_NOISE_TRIES)
    )


#: Measurements of the noise along an element before :func:`unrelated` calls it quiet.
ELEMENT_NOISE_TRIES = 2


#: Up to this many values, :func:`rms` sums in Python floats.
SMALL_RMS = 8


def rms(values: np.ndarray) -> float:
    """The root mean square of the finite values, scaled so that values near 1e200 do not overflow (0 if none)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size <= SMALL_RMS:  # in Python floats: no numpy call to set up (an overflow is inf, never a warning)
        total = sum(x * x for x in v.tolist())
        if 1e-290 < total < 1e300:
            return math.sqrt(total / v.size)
    with np.errstate(all="ignore"):  # an overflow of the one pass is caught below, without numpy's warning
        total = dot(v, v) if v.size else 0.0
        if 1e-290 < total < 1e300:  # finite, no overflow or underflow to fear: one pass
            return math.sqrt(total / v.size)
        v = v[np.isfinite(v)]
        peak = float(np.max(np.abs(v))) if v.size else 0.0
        return peak * float(np.sqrt(np.mean((v / peak) ** 2))) if peak > 0 else 0.0


#: Elements above this multiple of a tensor's :data:`OUTLIERS_AT_MOST`-th largest (nonzero) size are outliers for
#: its typical size: a pole (1e20 beside ordinary elements) is one of a few. (Not its median: an erf GELU's gradient
#: at inputs of size 30 is 1 at half its elements and below 1e-8 at the other half, and ndtr's is above 1e-6 at a
#: sixth of them only; their median made the typical gradient 1e-7 and 1e-14.)
OUTLIER = 100.0
#: At most this many elements, or a sixteenth of them, are outliers (and fewer than half).
OUTLIERS_AT_MOST = 2
#: Above this many elements, a tensor's typical size is taken from an evenly strided sample of this size.
TYPICAL_SAMPLE = 65536


def typical_size(values: np.ndarray) -> float:
    """A tensor's typical size: its RMS with outliers (a pole's 1e20 beside ordinary elements) capped."""
    v = np.asarray(values, dtype=np.float64)
    if v.size <= 2:  # nothing to be an outlier against
        return rms(v)
    if v.size > TYPICAL_SAMPLE:
        v = v[:: v.size // TYPICAL_SAMPLE]  # a scale, not a statistic to the last digit: a sample suffices
    v = np.abs(v)
    v = v[np.isfinite(v)]
    nonzero = v[v > 0]
    if not nonzero.size:
        return 0.0
    # the largest that is no outlier: fewer than half of them may be outliers (of 3 or 4, one)
    k = min(max(OUTLIERS_AT_MOST, nonzero.size // 16), (nonzero.size - 1) // 2) + 1
    if nonzero.size <= 64:
        short = sorted(nonzero.tolist())
        ref = short[-k]
        if short[-1] <= OUTLIER * ref:
            return rms(v)  # no outlier to cap
    else:
        ref = float(np.partition(nonzero, nonzero.size - k)[nonzero.size - k])
    return rms(np.minimum(v, OUTLIER * ref))


def bound(truncation: Any, roundoff: Any, res: Any) -> Any:
    """The tolerance of every comparison: how far a numeric estimate may be from the truth it estimates.

    ``truncation`` is the estimate's own truncation error (the change between steps, Richardson's estimate),
    ``roundoff`` its rounding (the function's noise over the step), ``res`` the analytic value's resolution in
    its dtype. Every strategy asks this one function; ``SAFETY`` says how many of these errors a difference
    must exceed to be called a mismatch.
    """
    return SAFETY * (truncation + roundoff + res)


def is_kink(gap: float, gap_before: float, gap_noise: float) -> bool:
    """Whether one-sided slopes that differ by ``gap`` (``gap_before`` at twice the step) mark a kink.

    A smooth function's one-sided slopes differ by about ``f'' h``: the gap halves with the step. At a kink
    the gap is the jump in slope and stays. The gap must also stand above the rounding of the slopes
    (``gap_noise``), or it is noise.
    """
    return gap > SAFETY * gap_noise and gap > KINK_PERSISTENCE * gap_before


def vouched(analytic: np.ndarray, numeric: np.ndarray, limit: np.ndarray, ref: Any) -> Any:
    """Elements whose bound ``limit`` could have seen an error that matters (see ``VOUCH``); only those may pass.

    ``ref`` is the typical gradient size of each element's tensor; a non-finite bound never vouches.
    """
    return sees(limit, np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), ref))


def sees(limit: np.ndarray, size: np.ndarray) -> Any:
    """:func:`vouched`, given each element's size (the larger of its values and its tensor's typical size)."""
    # with nothing to compare to (the function and every gradient exactly zero), any finite bound sees all
    return np.isfinite(limit) & ((limit <= VOUCH * size) | (size == 0))


#: An element this much smaller than its tensor's typical gradient ...
TINY = 1e-6
#: ... is computed by the backward pass from terms far larger than itself (a saturated gate's 1 - s, a
#: tanh' of a large pre-activation): its rounding is amplified by their ratio, unseen from outside. Such an
#: element is trusted to this relative precision only; a tiny element 10x wrong still fails.
CANCELLATION = 0.05


def cancellation(analytic: np.ndarray, numeric: np.ndarray, typical: np.ndarray) -> np.ndarray:
    """The analytic side's allowance for cancellation in elements far below their tensor's size."""
    return _cancellation(np.maximum(np.abs(analytic), np.abs(numeric)), typical)


def _cancellation(size: np.ndarray, typical: np.ndarray) -> np.ndarray:
    return np.where(size < TINY * typical, CANCELLATION * size, 0.0)


def resolution(analytic: np.ndarray, numeric: np.ndarray, eps: float, leaf_rms: np.ndarray) -> np.ndarray:
    """How finely an analytic value of this dtype can be trusted."""
    return RES_FACTOR * eps * (np.maximum(np.abs(analytic), np.abs(numeric)) + leaf_rms)


def wide_resolution(
    analytic: np.ndarray, numeric: np.ndarray, native_eps: np.ndarray | float, leaf_rms: np.ndarray
) -> np.ndarray:
    """How finely the float64 run of a low-precision gradient function can be trusted: float64's resolution, and
    the native dtype's (``native_eps``) of the element itself: a gradient function whose constants are in the
    native dtype (float32 data in a closure, ``X[i] * count`` rounded in float32) carries their rounding into its
    float64 run. An element tiny beside its tensor's typical gradient is still judged far below the native
    resolution of the tensor (an error 1e-8 of the largest element, 10 times the element itself, fails)."""
    size = np.maximum(np.abs(analytic), np.abs(numeric))
    return RES_FACTOR * machine_eps(np.float64) * (size + leaf_rms) + native_grant(native_eps) * size


def native_grant(native_eps: Any) -> Any:
    """The relative rounding granted to native-dtype constants in a float64 run (:func:`wide_resolution`):
    ``NATIVE_GRANT`` epsilons, at most half of what a pass must see once ``SAFETY`` multiplies it (bfloat16's
    four epsilons would leave no verdict possible)."""
    return np.minimum(NATIVE_GRANT * native_eps, VOUCH / (2 * SAFETY))


def allowance(
    analytic: np.ndarray, numeric: np.ndarray, grad_eps: np.ndarray, leaf_rms: np.ndarray, typical: np.ndarray
) -> np.ndarray:
    """``resolution(analytic, numeric, 1.0, leaf_rms) * grad_eps + cancellation(analytic, numeric, typical)``:
    what the analytic side is granted (``grad_eps`` per element), the larger of its two values taken once."""
    size = np.maximum(np.abs(analytic), np.abs(numeric))
    return RES_FACTOR * 1.0 * (size + leaf_rms) * grad_eps + _cancellation(size, typical)


@dataclass(frozen=True)
class Claim:
    """The analytic side as the strategies judge it: the flat gradient, the steps, and what bounds it.

    ``grad_eps`` is the machine epsilon of each element's analytic dtype, ``rms`` the typical gradient of its
    tensor; ``regrad()`` recomputes the gradient where the evaluator has moved the point (None when the
    gradient was given precomputed); ``g_wide`` is the same backward pass run in float64.
    """

    g: np.ndarray
    steps: np.ndarray
    grad_eps: np.ndarray
    rms: np.ndarray
    tol: Tolerance
    regrad: Callable[[], np.ndarray] | None = None
    g_wide: np.ndarray | None = None
    #: per element, its tensor's typical gradient (outliers capped), the size errors are measured against
    typical: np.ndarray | None = None


@dataclass(frozen=True)
class FirstDifferences:
    """``phi(x + h e_i)``, ``phi(x - h e_i)`` and the actual displacements, for elements ``idx``."""

    plus: np.ndarray
    minus: np.ndarray
    disp_plus: np.ndarray
    disp_minus: np.ndarray

    def take(self, k: np.ndarray) -> FirstDifferences:
        return FirstDifferences(self.plus[k], self.minus[k], self.disp_plus[k], self.disp_minus[k])

    @property
    def span(self) -> np.ndarray:
        """The actual distance between the two points, per element (computed once: not to be written to)."""
        span = self.__dict__.get("_span")
        if span is None:
            span = self.__dict__["_span"] = self.disp_plus - self.disp_minus
        return span

    @property
    def central(self) -> np.ndarray:
        """The central differences (computed once: not to be written to; copy it first)."""
        central = self.__dict__.get("_central")
        if central is None:
            central = self.__dict__["_central"] = (self.plus - self.minus) / self.span
        return central


@dataclass
class Judgement:
    numeric: np.ndarray
    bound: np.ndarray
    status: np.ndarray  # object array of status strings
    jump: np.ndarray  # forward minus backward slope at kinks, NaN elsewhere
    hull: np.ndarray  # (m, 2): the one-sided slopes widened by their error at kinks, NaN elsewhere
    vouch: np.ndarray | None = None  # the bound a pass vouches for, where tighter than ``bound``


def screen(
    ev: Evaluator,
    analytic: np.ndarray,
    numeric: np.ndarray,
    span: np.ndarray,
    res: np.ndarray,
    tol: Tolerance,
    abs_numeric: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stage 1: which elements are clearly consistent after one central difference, given ``|numeric|``.

    Returns (ok, bound, size): ``size`` is each element's ``max(|analytic|, |numeric|)``.
    """
    err = np.abs(analytic - numeric)
    if tol.custom:
        limit = np.asarray(tol.allowed(numeric), dtype=np.float64) * np.ones_like(numeric)
    else:
        eps_out = ev.out_eps
        # truncation of a central difference is ~ h^2 |f'''| / 6; without f''' assume the step is balanced,
        # i.e. truncation ~ round-off relative to the derivative: eps^(2/3) |n|
        # Each element is screened by its own size only: a bound set by its large neighbours would clear a
        # tiny element 10x wrong. An element whose truncation is larger goes on to refinement, which measures it.
        trunc = eps_out ** (2.0 / 3.0) * abs_numeric
        limit = bound(trunc, roundoff(ev, np.abs(span), lazy=True), res)
    size = np.maximum(np.abs(analytic), abs_numeric)
    ok = err <= limit
    if not tol.custom:
        # the screen's round-off is that of the largest outputs; an element far smaller than they are is cleared
        # only if it also agrees to SCREEN_RELATIVE, else refinement bounds it by the outputs it moves itself
        ok &= err <= SCREEN_RELATIVE * size
    return ok, limit, size


Verdict = tuple[str, float, float, float, tuple[float, float]]
#: ``phi(x + h)``, ``phi(x - h)`` and the actual displacements of one element's first difference.
Four = tuple[float, float, float, float]
