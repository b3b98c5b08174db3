"""Checks whose cost does not grow with the number of elements, and group testing to find the wrong ones.

``projected``: for each array, random directions ``v`` supported on it, each scaled so that the whole move
is about one finite-difference step. The numeric directional derivative is compared with ``<g, v>``; 2
evaluations per direction, whatever the size of the array. The entries of ``v`` are independent and uniform:
by Ball's bound on sections of the cube, a unit-norm combination of them has a density at most ``sqrt 2``
times one entry's, so an error vector ``e`` escapes one direction's bound ``B`` with probability at most
``sqrt(2/3) B / rms(e)``, as it would a Gaussian direction (``0.80 B / rms(e)``), at a fraction of the cost to
draw. They are drawn as 32-bit integers, each within ``2**-32`` of a continuous uniform entry: a combination with
weights of unit norm moves by at most ``sqrt(size) 2**-32`` of the entries' range, so the escape probability grows
by at most ``sqrt(8 size) 2**-32`` (7e-7 at a million elements, beside a miss probability of 0.08 per direction).
``k`` directions miss it with the ``k``-th power of that: the number of directions follows from the
error size to detect and the confidence asked for (by default an error 10 bounds large, at 0.999: three).

The test is sequential: what the ``k`` directions leave of the miss probability asked for is spent on stopping
early, after ``j < k`` directions whose every mismatch lies within a fraction ``t_j`` of its bound (an error
escapes ``j`` such directions with probability at most ``prod SMALL_BALL t_j B / rms(e)``, and the stages' sum
stays within the confidence; it is spent on the latest stage, where it buys the most). A correct gradient's
mismatches are rounding, mostly tenths of their bounds or less: by default two directions within 0.26 of their
bounds vouch for what three would.

``localize``: when a direction fails, the array's elements are split in halves and the mismatch measured
along the restriction of the failing direction to each half. A half without wrong elements shows no
mismatch; a half with them does (a weighting with a continuous distribution cannot cancel errors except
with probability zero). By linearity, the mismatch of the second half follows from its parent's and its
sibling's, so one measurement (2 evaluations) per level suffices for a single wrong element: about
``2 log2(N)`` evaluations, then the element is judged exactly as the full check would (kinks included).

``auto``: projected first; localize what fails.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from backcheck.bits import dot
from backcheck.evaluate import Evaluator
from backcheck.scratch import lend
from backcheck.strategies.direction import Along, Measurement, measure, settle
from backcheck.strategies.domain import inside
from backcheck.strategies.elementwise import run
from backcheck.tree import Leaf
from backcheck.verdict import FAILING, JUMP, KINK, VOUCH, Claim, rms

#: ``P(|<e, v>| <= B) <= SMALL_BALL * B / rms(e)`` for one direction (see the module docstring).
SMALL_BALL = math.sqrt(2.0 / 3.0)
#: By default a check catches an error this many times one direction's bound (RMS, step-weighted).
DETECT_BOUNDS = 10.0
#: The most directions one array is given, whatever detection size and confidence are asked for.
MAX_DIRECTIONS = 64
#: The most wrong elements localization reports before it samples instead.
MAX_LOCALIZED = 32
#: ... or this many, where more than this share of the splits so far disagreed in both halves: an error spread over
#: the array (a scale error: every element wrong), which a sample measures at a fraction of the cost; a few wrong
#: elements among many split both ways at about one split in log2(N).
DENSE_AFTER = 4
DENSE_SHARE = 0.5


#: :func:`direction` draws 32-bit integers: times this, they are uniform on [-1/2, 1/2).
INT32_SCALE = 2.0**-32


#: Fractions of a direction's step at which a failing direction over elements smaller than their steps is
#: measured again (as an element's difference is, see :data:`backcheck.refinement.FINER`).
FINER = (2.0**-10, 2.0**-20)


def _below(leaf: Leaf, h: np.ndarray) -> bool:
    """Whether the array's typical element is smaller than its step: f may bend on the elements' own, finer
    scale (tanh(x / 1e-8) at x ~ 1e-8)."""
    return bool(np.median(np.abs(leaf.original.reshape(-1))) < np.median(h)) if leaf.size else False


def _finer(
    ev: Evaluator, along: Along, coef: np.ndarray, moments: tuple[float, float, float] | None, m: Measurement
) -> Measurement:
    """``m``, or the measurement at a finer step along the same direction where the disagreement vanishes there
    (to a quarter of it or less, within its bound): a step beyond the scale on which f bends, not a wrong rule,
    whose mismatch stays as the step shrinks. Given per unit of the direction, as ``m``."""
    for t in FINER:
        finer = None if moments is None else (moments[0] * t, moments[1] * t, moments[2] * t)
        fine = measure(ev, along, coef * t, finer)
        if not fine.failed and abs(fine.mismatch) / t <= abs(m.mismatch) / 4:
            return Measurement(fine.mismatch / t, fine.bound / t, fine.numeric / t, fine.analytic / t, fine.kinky)
    return m


def direction(rng: np.random.Generator, hc: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Independent uniform weights of unit variance times the steps, given as ``hc``: the steps over
    ``sqrt(size / 12)`` and over ``2**32`` (see :func:`_sums`). Each weight is a random 32-bit integer over
    ``2**32``: uniform on ``[-1/2, 1/2)`` to ``2**-32``, which adds at most ``sqrt(8 size) 2**-32`` to the
    chance that a direction misses an error (see the module docstring). A move of about one step in all, whose
    every element is random. ``out``: a buffer to draw into."""
    return np.multiply(_int32s(rng, hc.size), hc, out=out)


#: Bit generators whose raw draws are 64 random bits (two 32-bit integers each, drawn at half the cost of
#: ``Generator.integers``); others (MT19937's raw draws are 32 bits) go through ``integers``.
_WIDE_BITS = (np.random.PCG64, np.random.PCG64DXSM, np.random.SFC64, np.random.Philox)


def _int32s(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` independent uniform 32-bit integers from ``rng``."""
    bits = rng.bit_generator
    if isinstance(bits, _WIDE_BITS):
        return bits.random_raw((n + 1) // 2).view(np.int32)[:n]
    return rng.integers(-(2**31), 2**31, size=n, dtype=np.int32)


def _per_direction(bound_rel: float, detect: float | None) -> float:
    """How likely one direction whose bound is ``bound_rel`` of the gradient misses an RMS error ``detect``
    (``DETECT_BOUNDS`` bounds where None), at most (see :data:`SMALL_BALL`); inf where nothing is to be caught."""
    target = DETECT_BOUNDS * bound_rel if detect is None else detect
    return SMALL_BALL * bound_rel / target if target > 0 else math.inf


def directions_needed(bound_rel: float, detect: float | None, confidence: float) -> int:
    """How many directions catch an RMS error ``detect`` (relative to the step-weighted gradient) with
    ``confidence``, when one direction's bound is ``bound_rel`` of it; ``detect=None`` asks for
    ``DETECT_BOUNDS`` bounds. :data:`MAX_DIRECTIONS` where no number of directions reaches it."""
    per = _per_direction(bound_rel, detect)
    if per <= 0.0:
        return 1
    if not per < 1.0:
        return MAX_DIRECTIONS
    return max(1, min(MAX_DIRECTIONS, math.ceil(math.log1p(-confidence) / math.log(per) - 1e-9)))


def early_stops(bound_rel: float, wanted: int, detect: float | None, confidence: float) -> tuple[float, ...]:
    """The fractions ``t_j`` of their bounds within which the first ``j`` directions' mismatches (``j`` from 1 to
    ``wanted - 1``) vouch for what ``wanted`` directions would (see the module docstring): the miss probability
    ``wanted`` directions leave of ``1 - confidence``, all of it spent on the last stage (the others 0).
    Stage ``j`` stops with probability about ``(rho t_j)^j`` where a correct gradient's mismatches lie within
    ``t_j`` of their bounds with probability ``rho t_j``, for a share ``(per t_j)^j`` of the miss probability:
    a share buys ``(rho / per)^j``, more the later the stage wherever ``rho > per`` (``per`` is 0.08 by default;
    ``rho`` is 1 for mismatches spread evenly within their bounds, more for rounding's, which gather near 0).
    Empty where nothing is left."""
    per = _per_direction(bound_rel, detect)
    left = (1.0 - confidence) - per**wanted if per < 1.0 else 0.0
    if wanted < 2 or not left > 0.0 or per <= 0.0:
        return ()
    last = min(1.0, left ** (1.0 / (wanted - 1)) / per)  # (below 1 for the fewest directions that reach it)
    return (0.0,) * (wanted - 2) + (last,)


def _within_vouch(
    stops: tuple[float, ...], bound: float, wanted: int, scale: float, confidence: float
) -> tuple[float, ...]:
    """``stops``, or none where the stages would lift the stated size past :data:`VOUCH` that the directions alone
    keep below it (an array that stops early would then be sampled element by element instead: hundreds of
    evaluations, not a few). Decided from the first direction's bound, before any mismatch is weighed."""
    bounds = [bound] * wanted
    if stops and detectable_size(bounds, scale, confidence) <= VOUCH < detectable_size(
        bounds, scale, confidence, stops
    ):
        return ()
    return stops


def stopped_early(results: list[Measurement], stops: tuple[float, ...]) -> bool:
    """Whether the directions measured so far vouch for the rest: each mismatch within the stage's fraction of its
    bound (see :func:`early_stops`), none across a kink (whose central difference proves nothing)."""
    j = len(results)
    if not 0 < j <= len(stops) or stops[j - 1] <= 0.0:
        return False
    return all(not m.kinky and abs(m.mismatch) <= stops[j - 1] * m.bound for m in results)


def detectable_size(bounds: list[float], scale: float, confidence: float, stops: tuple[float, ...] = ()) -> float:
    """The RMS error (relative to ``scale``, the step-weighted gradient's RMS) that ``bounds`` catch with
    ``confidence``: the ``B`` with ``prod_j SMALL_BALL * b_j / B = 1 - confidence``. With early ``stops``, the
    sequential test's: the ``B`` at which the stages' miss probabilities add up to ``1 - confidence`` (a
    direction not drawn counted at the first one's bound)."""
    if not bounds or scale <= 0 or not all(math.isfinite(b) for b in bounds):
        return math.inf
    if min(bounds) <= 0:
        return 0.0
    stages = len(stops) + 1
    if stages > 1:
        bounds = (bounds + [bounds[0]] * stages)[:stages]
    geo = math.exp(sum(math.log(SMALL_BALL * b) for b in bounds) / len(bounds))
    size = geo * (1.0 - confidence) ** (-1.0 / len(bounds))
    if stages > 1:
        size = _staged_size(bounds, (*stops, 1.0), 1.0 - confidence, size)
    return size / scale


def _staged_size(bounds: list[float], fractions: tuple[float, ...], alpha: float, low: float) -> float:
    """The ``B`` at which ``sum_j prod_{i <= j} SMALL_BALL * fractions[j] * bounds[i] / B`` is ``alpha``: above
    ``low`` (the last stage's alone), each term falls at least like ``1 / B`` (bisection, in logs)."""

    def miss(size: float) -> float:
        return sum(math.prod(SMALL_BALL * t * b / size for b in bounds[: j + 1]) for j, t in enumerate(fractions))

    high = low * max(1.0, miss(low) / alpha)
    for _ in range(60):
        mid = math.sqrt(low * high)
        low, high = (low, mid) if miss(mid) <= alpha else (mid, high)
    return high


#: From this many elements on, a direction's sums over the array are taken from their expected values.
MOMENTS_FROM = 65536


def _moments(l1: float, scale: float, hh: float, k: float, n: int) -> tuple[float, float, float]:
    """``sum |g c|``, ``|g c|_2`` and ``|c|_2`` of a direction ``c = k h (u - 1/2)``, ``u`` uniform, from their
    expectations (``E|u - 1/2| = 1/4``, ``E (u - 1/2)^2 = 1/12``), 5% up: over this many elements a sum of
    independent terms stays within a few tenths of a percent of its mean, and three passes per direction
    are saved. ``l1``: ``sum |g h|``; ``scale``: the RMS of ``g h``; ``hh``: ``|h|_2**2``; ``n`` elements."""
    return 1.05 * k * l1 / 4, 1.05 * k * scale * math.sqrt(n / 12), 1.05 * k * math.sqrt(hh / 12)


#: Elements read at a time by :func:`_sums` (its temporaries stay in cache).
SUMS_CHUNK = 1 << 15


def _sums(g: np.ndarray, h: np.ndarray, k: float, hc: np.ndarray, buffer: np.ndarray) -> tuple[float, float, float]:
    """One pass over the array: ``hc = k h / 2**32`` (the scale of :func:`direction`'s integers), and the RMS of
    ``g h`` (finite values only, as :func:`rms`), ``sum |g h|`` and ``|h|_2**2``."""
    n = g.size
    tmp = buffer[: min(n, SUMS_CHUNK)]
    ss = l1 = hh = 0.0
    with np.errstate(all="ignore"):  # a sum that overflows (or is not finite) is taken again below
        for a in range(0, n, SUMS_CHUNK):
            b = min(a + SUMS_CHUNK, n)
            ga, ha, t = g[a:b], h[a:b], tmp[: b - a]
            np.multiply(ga, ha, out=t)
            ss += dot(t, t)
            l1 += float(np.sum(np.abs(t, out=t)))
            hh += dot(ha, ha)
            np.multiply(ha, k * INT32_SCALE, out=hc[a:b])
    if not 1e-290 < ss < 1e300:  # not finite, or beyond one pass's range: the careful way
        return rms(np.multiply(g, h, out=buffer)), l1, hh
    return math.sqrt(ss / n), l1, hh


def kinks_possible(leaf: Leaf, still: np.ndarray | None, results: list[Measurement]) -> bool:
    """Whether random directions over ``leaf`` may cross kinks exactly at the point: a direction did (its gap stayed
    at half the step), or an element they move sits at zero or shares its value with another (see
    :func:`suspects`)."""
    if any(m.kinky for m in results):
        return True
    at = suspects(leaf)
    return bool(at.size and (still is None or np.setdiff1d(at, still).size))


def _settled(
    ev: Evaluator,
    along: Along,
    results: list[Measurement],
    failing: list[tuple[int, Mapping[str, Any] | None]],
    redraw: tuple[type, np.ndarray, np.ndarray],
    h: np.ndarray,
) -> np.ndarray | None:
    """The failing directions ``failing`` (their positions in ``results`` and the state of the generator that drew
    them) of an array where kinks at the point are possible, settled in turn (see :func:`settle`) until one fails at
    half its step too; one whose gap cannot tell a kink (``blind``) is taken as crossing one (the array's elements
    at kinks are then judged one by one, the others projected again). ``redraw``: the generator's type, the scaled
    steps and a buffer to draw a direction into. ``results`` updated; the weights of the first direction still
    failing, or None."""
    kind, hc, buffer = redraw
    for i, state in failing:
        gen = kind()
        gen.state = state
        coef = direction(np.random.Generator(gen), hc, buffer)
        m = settle(ev, along, coef, results[i])
        results[i] = dataclasses.replace(m, kinky=True) if m.failed and m.blind else m
        if results[i].failed:
            return np.divide(coef, h, out=np.zeros_like(coef), where=h != 0)
    return None  # (every one settled: none fails)


def _short_of(
    results: list[Measurement],
    plan: tuple[int | None, float | None, float],
    sizes: tuple[float, int],
    stops: tuple[float, ...],
) -> bool:
    """Whether the directions drawn so far fall short of the detection size asked for (stopping early at ``stops``
    or not): their number and the stops were derived from the first direction's bound, and the others' may be
    larger. A stage that would stop early then goes on, and one more direction is drawn past the last. Not where
    a number was given, none was asked for, a direction failed or crossed a kink, or one more would reach
    :data:`MAX_DIRECTIONS` or the array's size. ``sizes``: the step-weighted gradient's RMS and the array's
    size."""
    count, detect, confidence = plan
    (scale, size), k = sizes, len(results)
    if count is not None or detect is None or k + 1 >= min(MAX_DIRECTIONS, size):
        return False
    if any(m.failed or m.kinky for m in results):
        return False
    return detectable_size([m.bound for m in results], scale, confidence, stops) > detect


@dataclass
class LeafProjection:
    """What the projected check learned about one array."""

    failed: bool
    kinky: int  # directions that cross a kink at the point
    measurements: list[Measurement]
    detectable: float  # relative RMS error caught with the confidence asked for
    failure: np.ndarray | None  # the first failing direction's weights, to localize with
    wanted: int = 0  # directions the detection size and confidence asked for
    early: bool = False  # stopped before ``wanted`` directions (see early_stops)


def project_leaf(
    ev: Evaluator,
    claim: Claim,
    leaf: Leaf,
    rng: np.random.Generator,
    plan: tuple[int | None, float | None, float],
    stop_on_failure: bool = False,
    still: np.ndarray | None = None,
) -> LeafProjection:
    """Compare random directional derivatives over ``leaf`` with the claimed gradient.

    ``plan`` is (directions, detect, confidence): a fixed number of directions, or None to derive it from the
    first direction's bound, the RMS error to detect (None: ``DETECT_BOUNDS`` bounds) and the confidence.
    ``still``: positions in the array the directions leave where they are (elements judged one by one).
    Without ``stop_on_failure`` (the array's verdict is the directions', no localization follows), a direction
    that fails clearly at its full step is settled (see :func:`settle`) where kinks at the point are possible.
    """
    count, detect, confidence = plan
    sl = slice(leaf.offset, leaf.offset + leaf.size)
    g, h = claim.g[sl], inside(ev, claim.steps[sl], leaf.offset)
    if still is not None and still.size:
        h = h.copy()
        h[still] = 0.0
        g = g.copy()
        g[still] = np.where(np.isfinite(g[still]), g[still], 0.0)  # (judged on their own: a NaN there weighs 0)
    wide = None if claim.g_wide is None else claim.g_wide[sl]
    along = Along(g, sl, claim.tol, (float(claim.grad_eps[leaf.offset]), float(claim.rms[leaf.offset])), wide)
    results: list[Measurement] = []
    failure = None
    # without stop_on_failure: the failing directions and the rng's state
    failing: list[tuple[int, Mapping[str, Any] | None]] = []
    wanted = count or 1
    stops: tuple[float, ...] = ()
    with lend(leaf.size) as buffer, lend(leaf.size) as hc:
        k = math.sqrt(12.0 / max(leaf.size - (0 if still is None else still.size), 1))
        scale, l1, hh = _sums(g, h, k, hc, buffer)  # scale: the step-weighted gradient's RMS, errors are its share
        moments = _moments(l1, scale, hh, k, leaf.size) if leaf.size >= MOMENTS_FROM else None
        while len(results) < wanted:
            drawn = None if stop_on_failure else rng.bit_generator.state  # (to draw it again: see _settled)
            coef = direction(rng, hc, buffer)
            m = measure(ev, along, coef, moments)
            if m.failed and _below(leaf, h):
                m = _finer(ev, along, coef, moments, m)
            results.append(m)
            if m.failed and failure is None:
                failure = np.divide(coef, h, out=np.zeros_like(coef), where=h != 0)  # (0 where still)
            if m.failed and not stop_on_failure:
                failing.append((len(results) - 1, drawn))
            if m.failed and stop_on_failure:
                break  # the array is wrong; localization takes over
            if count is None and len(results) == 1 and scale > 0:
                wanted = directions_needed(m.bound / scale, detect, confidence)
                if wanted >= leaf.size:
                    break  # as many directions as elements: the caller checks each element instead
                stops = _within_vouch(
                    early_stops(m.bound / scale, wanted, detect, confidence), m.bound, wanted, scale, confidence
                )
            short = _short_of(results, plan, (scale, leaf.size), stops)
            if stopped_early(results, stops) and not short:
                break  # these directions vouch for the rest (see the module docstring)
            if len(results) == wanted and short:
                wanted, stops = wanted + 1, ((*stops, 0.0) if stops else ())  # (no early stop at this stage)
        if failing and kinks_possible(leaf, still, results):
            redraw = (type(rng.bit_generator), hc, buffer)
            failure = _settled(ev, along, results, failing, redraw, h)
    failed = any(m.failed for m in results)
    kinky = sum(m.kinky for m in results)
    detectable = detectable_size([m.bound for m in results], scale, confidence, stops)
    early = len(results) < wanted and stopped_early(results, stops)
    return LeafProjection(failed, kinky, results, detectable, failure, wanted, early)


#: At most this many elements that random directions cross kinks at are located by bisection (then judged one
#: by one, and the others projected again); beyond, a random sample of elements is judged instead.
MAX_KINKED = 32


def kinked(ev: Evaluator, claim: Claim, leaf: Leaf, rng: np.random.Generator) -> np.ndarray | None:
    """The positions in ``leaf`` (local) of the elements a random direction cannot cross cleanly: halves whose
    direction crosses a kink (or disagrees) are halved again, level by level, down to single elements. A
    direction over a million elements crosses a kink if one of them sits at a ReLU's zero, a tie or a jump, and
    proves nothing about the others; bisection finds a few such elements in about ``2 log2(N)`` directions
    each. None when more than :data:`MAX_KINKED` turn up at one level."""
    g, offset = claim.g, leaf.offset
    steps = inside(ev, claim.steps[offset : offset + leaf.size], offset)  # (local positions)
    w = rng.random(leaf.size) - 0.5

    def crosses(lo: int, hi: int) -> bool:
        sub = slice(offset + lo, offset + hi)
        norm = float(np.linalg.norm(w[lo:hi]))
        wide = None if claim.g_wide is None else claim.g_wide[sub]
        along = Along(g[sub], sub, claim.tol, (float(claim.grad_eps[offset]), float(claim.rms[offset])), wide)
        m = measure(ev, along, steps[lo:hi] * w[lo:hi] / norm)
        return m.kinky or m.failed

    found: list[int] = []  # single elements whose own direction crosses
    level = [(0, leaf.size)]
    while level:
        halves = [half for lo, hi in level for half in ((lo, (lo + hi) // 2), ((lo + hi) // 2, hi))]
        level = [(lo, hi) for lo, hi in halves if crosses(lo, hi)]
        found += [lo for lo, hi in level if hi - lo == 1]
        level = [(lo, hi) for lo, hi in level if hi - lo > 1]
        if len(found) + len(level) > MAX_KINKED:
            return None
    return np.array(sorted(found), dtype=np.int64)


def suspects(leaf: Leaf) -> np.ndarray:
    """The positions of ``leaf``'s elements that sit where kinks usually are: at zero (a ReLU's input, a
    post-ReLU activation), or at a value another element shares (a max's ties, integers)."""
    x = leaf.original.reshape(-1)
    if not x.size:
        return np.empty(0, dtype=np.int64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return np.flatnonzero((x == 0) | (counts[inverse.reshape(-1)] > 1))


@dataclass
class Localized:
    found: list[int]  # flat indices judged wrong (or at kinks) elementwise
    numeric: dict[int, float]
    bound: dict[int, float]
    status: dict[int, str]
    complete: bool  # False when it stopped at MAX_LOCALIZED wrong elements
    # a half disagreed beyond its bound while crossing a kink: dropped (it proves nothing), though a wrong element
    # beside the kink may be what disagreed
    crossed: bool = False


def localize(ev: Evaluator, claim: Claim, leaf: Leaf, weights: np.ndarray, root: Measurement | None) -> Localized:
    """Bisect the array's elements down to the wrong ones (see the module docstring)."""
    g, offset, size = claim.g, leaf.offset, leaf.size
    steps = inside(ev, claim.steps[offset : offset + size], offset)  # (local positions)
    idx_all = np.arange(offset, offset + size)
    w = weights

    def test(lo: int, hi: int) -> Measurement:
        sub = slice(offset + lo, offset + hi)
        ws = w[lo:hi]
        norm = float(np.linalg.norm(ws))
        if norm == 0.0:  # only elements the direction leaves still (judged one by one): nothing moves here
            return Measurement(0.0, 0.0, 0.0, 0.0)
        wide = None if claim.g_wide is None else claim.g_wide[sub]
        along = Along(g[sub], sub, claim.tol, (float(claim.grad_eps[offset]), float(claim.rms[offset])), wide)
        return measure(ev, along, steps[lo:hi] * ws / norm)

    out = Localized([], {}, {}, {}, True)
    # (an element judged alone mismatching where kinks of both signs cancel along its axis: integer data under
    # ReLUs, whose other kinks are not in its own check)
    kinks_beside = bool(suspects(leaf).size)
    tests, budget = 0, 8 * MAX_LOCALIZED * max(1, math.ceil(math.log2(max(size, 2))))
    # evaluations too: halves near their bound are measured again with the noise along them (24 each), and a
    # disagreement no element shows alone (a 0.1% scale error) reaches few elements at all
    spent, evaluations = ev.n_evals, 2 * budget
    both = judged = 0  # splits whose two halves both disagreed; elements judged
    if root is None:
        root = test(0, size)
    stack: list[tuple[int, int, Measurement]] = [(0, size, root)] if root.failed else []
    while stack:
        lo, hi, m = stack.pop()
        if hi - lo == 1:
            _judge_one(ev, claim, int(idx_all[lo]), out, kinks_beside)
            judged += 1
            wrong = sum(s in FAILING for s in out.status.values())
            # an error spread over the array ends bisection after a few elements: most splits disagree in both
            # halves, or the elements reached show nothing alone (a 0.1% scale error, below each one's own bound)
            if wrong >= MAX_LOCALIZED or (judged >= DENSE_AFTER and (both > DENSE_SHARE * tests or not out.found)):
                out.complete = False  # (a sample tells how many more: every element wrong costs 2 log2(N) each)
                break
            continue
        mid = (lo + hi) // 2
        left = test(lo, mid)
        # the mismatch is linear in the direction: infer the right half from its parent and sibling
        n_p, n_l, n_r = (float(np.linalg.norm(w[a:b])) for a, b in ((lo, hi), (lo, mid), (mid, hi)))
        inferred = (n_p * m.mismatch - n_l * left.mismatch) / n_r
        inferred_bound = (n_p * m.bound + n_l * left.bound) / n_r
        if abs(inferred) > 4 * inferred_bound:
            right = Measurement(inferred, inferred_bound, math.nan, math.nan)
        else:
            right = test(mid, hi)  # not clear from the inference: measure, do not guess
        tests += 1
        both += left.failed and right.failed
        out.crossed |= any(p.kinky and abs(p.mismatch) > p.bound for p in (left, right))
        if tests > budget or ev.n_evals - spent > evaluations:
            out.complete = False
            break
        for part in ((mid, hi, right), (lo, mid, left)):
            if part[2].failed:
                stack.append(part)
    return out


def _judge_one(ev: Evaluator, claim: Claim, i: int, out: Localized, kinks_beside: bool = False) -> None:
    """Judge one localized element exactly as the full check would (``kinks_beside``: the point has kinks it does
    not see alone, see :func:`~backcheck.strategies.elementwise.run`); keep it if wrong, at a kink or where f
    jumps (what made the direction disagree)."""
    sub = run(ev, claim, np.array([i]), kinks_beside=kinks_beside or KINK in out.status.values())
    st = str(sub.status[0])
    if st in FAILING or st in (KINK, JUMP):
        out.found.append(int(i))
        out.numeric[int(i)] = float(sub.numeric[0])
        out.bound[int(i)] = float(sub.bound[0])
        out.status[int(i)] = st


__all__ = [
    "MAX_KINKED",
    "MAX_LOCALIZED",
    "Along",
    "detectable_size",
    "directions_needed",
    "kinked",
    "localize",
    "measure",
    "project_leaf",
    "suspects",
]


def tied_together(
    ev: Evaluator, claim: Claim, leaf: Leaf, rng: np.random.Generator, apart: np.ndarray | None = None
) -> tuple[Measurement, int, np.ndarray] | None:
    """Move the elements of ``leaf`` that share their value with another (ties: a max-pool window at 0, a sort's
    equal keys) together, each class of equal values by one random amount, and compare with the claimed gradient.

    A max of tied values is not differentiable along a direction that moves them apart, but is along one that
    moves them together (it moves with them): there a gradient routed to every tied element fails, where random
    directions (through the kinks) prove nothing and a sample of single elements sees valid one-sided slopes.
    Returns the measurement, how many elements moved and the direction (over the whole point); None when no value
    repeats or the inputs hold masks. ``apart``: flat positions already wrong on their own, left unmoved (their error
    is theirs: moved with a tie of their value, it read as the tie's, a row's std off beside a constant row of its
    value)."""
    x = leaf.original.reshape(-1)
    if leaf.size < 2 or not bool(np.all(np.isfinite(x))):
        return None
    values, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    shared = counts[inverse] > 1
    if apart is not None and apart.size:
        out = np.isin(np.arange(leaf.offset, leaf.offset + leaf.size), apart)
        shared &= ~out & (np.bincount(inverse, weights=~out, minlength=values.size)[inverse] > 1)
    if not shared.any():
        return None
    sl = slice(leaf.offset, leaf.offset + leaf.size)
    g, h = claim.g[sl], claim.steps[sl]
    wide = None if claim.g_wide is None else claim.g_wide[sl]
    along = Along(g, sl, claim.tol, (float(claim.grad_eps[leaf.offset]), float(claim.rms[leaf.offset])), wide)
    amount = rng.random(values.size) - 0.5  # one per class: equal values move by equal amounts (their steps agree)
    coef = np.where(shared, amount[inverse] * h, 0.0)
    whole = np.zeros(claim.g.size)
    whole[sl] = coef
    return measure(ev, along, coef), int(shared.sum()), whole
