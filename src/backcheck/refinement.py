"""Judging the elements the screen could not clear: stage two of the tolerance model (:mod:`backcheck.verdict`).

Each such element is refined at halved steps until its verdict is clear (a pass, a mismatch, a kink with its
one-sided slopes, a jump, or noise), and then retried where its verdict may belong to another scale or cause:
at much finer steps (kinks inside the step, a function bending on a scale below it), at wider steps (a value
that changes only in coarse steps), or against the noise measured along the element itself (rounding of terms
that cancelled inside the function, near its floor).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backcheck.bits import machine_eps
from backcheck.errors import BackcheckError, NonFiniteError
from backcheck.evaluate import Evaluator
from backcheck.numeric.grad import NOISE_FACTOR, noise_level, one_sided, roundoff
from backcheck.numeric.noise import REACH, element_noise
from backcheck.rounding import (
    agrees,
    quanta_floor,
    quantum,
    rounding_unit,
)
from backcheck.verdict import (
    AMBIGUOUS,
    JUMP,
    KINK,
    MAX_LEVELS,
    MISMATCH,
    NO_HULL,
    NOISY,
    OK,
    SAFETY,
    SCREEN_RELATIVE,
    SETTLED,
    VOUCH,
    Four,
    Tolerance,
    Verdict,
    bound,
    is_jump,
    is_kink,
    unrelated,
)


def refine(
    ev: Evaluator, i: int, a: float, h: float, first: Four, res: float, tol: Tolerance, size: float = 0.0
) -> Verdict:
    """Stage 2 for element ``i``: halve the step until the verdict is clear.

    Returns (status, numeric, bound, jump, hull): at a kink, ``jump`` is the gap between the one-sided
    slopes and ``hull`` the interval between them widened by their error. ``size``: the element's tensor's
    typical gradient, which a pass found at a wider step must see a share of (see :func:`_unless_coarse`).
    """
    return refine_rough(ev, i, a, h, first, res, tol, size)[0]


#: A change between levels this small beside the element's tensor's typical gradient settles an estimate whose own
#: size is about 0 (a C1 junction, sparse_plus at -1, approaches its derivative linearly in the step); a garbage
#: estimate of a step far too wide (sin at 1e8 stepped by 600) changes by far more, and keeps being refined.
SETTLED_BESIDE = 1e-6
#: A smooth function's one-sided slopes differ by f'' h: their gap halves with the step, to within its
#: f'''' h^3 term. A gap that departs from half its previous size by more than this fraction of it, and by more
#: than its rounding, has met a kink inside the step: one it keeps (at the point), or one it has just passed.
ROUGH = 0.2


def refine_rough(
    ev: Evaluator, i: int, a: float, h: float, first: Four, res: float, tol: Tolerance, size: float = 0.0
) -> tuple[Verdict, bool]:
    """:func:`refine`, and whether the gap between the one-sided slopes ever failed to halve with the step."""
    fp, fm, dp, dm = first
    d_prev, f_prev, b_prev = one_sided(ev, fp, fm, dp, dm)
    gap_prev = abs(f_prev - b_prev)
    kinky_prev = jumpy_prev = rough = False
    jumped = 0.0  # the largest one-sided jump of f seen at any level (a step function's)
    moves_prev = (abs(fp - ev.phi0), abs(ev.phi0 - fm))
    still = moves_prev == (0.0, 0.0)  # f has not moved at any step so far
    numeric, limit = d_prev, np.inf
    spread = max(*moves_prev, abs(fp - fm))  # the largest change of phi between its values at the steps
    last_change, last_err, last_step = 0.0, 1.0, (h, dp - dm, 0.0, res)
    for level in range(1, MAX_LEVELS + 1):
        s = h / 2.0**level
        phis, disp = ev.element(i, (s, -s))
        if disp[0] == 0.0 or disp[1] == 0.0:
            break  # the step no longer resolves in this dtype
        d, f, b = one_sided(ev, phis[0], phis[1], disp[0], disp[1])
        r = roundoff(ev, disp[0] - disp[1], ev.local_scale[i])
        change = abs(d - d_prev)
        limit = float(tol.allowed(d)) if tol.custom else bound(change, r, res)
        numeric = d
        err = abs(a - d)
        settled = change <= max(SETTLED * max(abs(a), abs(d)), SETTLED_BESIDE * size) or change <= bound(0.0, r, res)
        moves = (abs(phis[0] - ev.phi0), abs(ev.phi0 - phis[1]))
        if level == 1 and (moves[0] == 0.0 < moves_prev[0] or moves[1] == 0.0 < moves_prev[1]):
            ev.stood.add(i)  # still on a side at half the step that moved it: stairs (wider.on_stairs) or a kink
        spread = max(spread, *moves, abs(phis[0] - phis[1]))
        jumpy = is_jump(moves, moves_prev, r * (disp[0] - disp[1]))
        gap = abs(f - b)
        off_half = abs(gap - gap_prev / 2)
        rough = rough or (off_half > ROUGH * gap_prev and off_half > SAFETY * 2 * r)
        if jumpy and jumpy_prev:
            # f itself jumps here: no derivative to compare with, whatever the rule claims
            return (JUMP, d, limit, max(moves), NO_HULL), rough
        moves_prev, jumpy_prev = moves, jumpy
        still = still and moves == (0.0, 0.0)
        jumped = max(jumped, max(moves)) if jumpy else jumped
        if jumped and moves == (0.0, 0.0) and err > limit:
            # f jumped at a larger step and stands still at this one: piecewise constant (inputs quantized to
            # a coarse dtype, an argmax), a step within the step; no derivative for a rule to match here
            return (JUMP, d, limit, jumped, NO_HULL), rough
        if err <= limit and (settled or tol.custom) and not jumpy:
            return (OK, d, limit, np.nan, NO_HULL), rough
        kinky = is_kink(gap, gap_prev, 2 * r)  # each one-sided slope carries twice the central round-off
        if kinky and (kinky_prev or level == MAX_LEVELS):
            if unrelated(ev, i, spread, h, a):  # slopes of values unrelated to each other, no kink's
                return (JUMP, d, limit, spread, NO_HULL), rough
            # not differentiable here: a valid subgradient lies between the one-sided derivatives
            slack = bound(max(abs(f - f_prev), abs(b - b_prev)), 2 * r, res)
            lo, hi = min(f, b) - slack, max(f, b) + slack
            if lo <= a <= hi:
                return (KINK, d, slack, f - b, (lo, hi)), rough
            # several kinks may meet here (e.g. two ReLUs at 0 at once): then a chain-rule subgradient can lie
            # outside the slopes along this one axis, so the strategy re-checks at a nearby point
            return (AMBIGUOUS, d, slack, np.nan, (lo, hi)), rough
        if not kinky and change <= 0.25 * err and not kinky_prev and not jumpy:
            # the estimates agree with each other, not with the analytic value
            if unrelated(ev, i, spread, h, a):
                return (JUMP, d, limit, spread, NO_HULL), rough
            verdict = _unless_coarse(ev, i, h, (MISMATCH, d, limit, np.nan, NO_HULL), (a, size), still, res)
            return _unless_noise(ev, i, a, (s, disp[0] - disp[1], change + r, res), verdict, tol), rough
        d_prev, f_prev, b_prev, gap_prev, kinky_prev = d, f, b, gap, kinky
        last_change, last_err, last_step = change, err, (s, disp[0] - disp[1], change + r, res)
    if last_change > 0.25 * last_err or last_err <= limit:
        # the estimates never settled: the function is too rough at every step tried to judge this element
        return (NOISY, numeric, limit, np.nan, NO_HULL), rough
    if unrelated(ev, i, spread, h, a):
        return (JUMP, numeric, limit, spread, NO_HULL), rough
    verdict = _unless_coarse(ev, i, h, (MISMATCH, numeric, limit, np.nan, NO_HULL), (a, size), still, res)
    return _unless_noise(ev, i, a, last_step, verdict, tol), rough


#: A mismatch within this many of its numeric floor (truncation and modelled rounding, where they exceed the analytic
#: value's resolution) may be rounding of terms that cancelled inside f (a pre-activation of 1e-7 summed from terms
#: of size 1 carries 1e-9 of itself, far above ``eps * |phi|``): judged again against the noise ``phi`` shows along
#: the element (:func:`backcheck.numeric.noise.element_noise`, 24 evaluations); a wrong rule lies orders beyond.
NEAR_FLOOR = 1e3


def _unless_noise(
    ev: Evaluator, i: int, a: float, where: tuple[float, float, float, float], verdict: Verdict, tol: Tolerance
) -> Verdict:
    """A mismatch within :data:`NEAR_FLOOR` of its numeric floor, judged again with the noise measured along
    element ``i`` (``where``: the difference's step, its span, its floor, the analytic value's resolution); the
    bound grows by that noise's round-off. It bounds the analytic side's rounding too: a backward pass from the
    same rounded intermediates carries their rounding ``delta`` times the gradient's sensitivity to them, while
    ``phi`` one step away carries ``delta`` times about the step times that: the noise over the step covers it."""
    st, d, limit = verdict[:3]
    err = abs(a - d)
    step, span, floor, res = where
    near = 0 < span and res <= floor and err <= NEAR_FLOOR * SAFETY * floor
    if st != MISMATCH or tol.custom or ev.unconfirmed or not near:
        return verdict
    sigma = element_noise(ev, i, step, a)
    if not sigma > 0:
        return verdict
    limit = limit + bound(0.0, NOISE_FACTOR * sigma / span, 0.0)
    if err <= limit:
        return (OK, d, limit, np.nan, NO_HULL)
    return (st, d, limit, *verdict[3:])


#: Factor by which a step that left f exactly unchanged is widened, up to ``WIDEST`` of the element's size, to
#: tell a function that changes only in coarse steps (a value computed with cancellation: 1 + erf(x) near -8)
#: from one that does not read the element.
WIDER = 8.0
WIDEST = REACH  # (the noise probe's reach: the same tenth)
#: Elements of one array tried wider before the array counts as not moving f at any step.
WIDER_TRIES = 2


def reach(ev: Evaluator, i: int) -> float:
    """The widest step element ``i`` is moved by: :data:`WIDEST` of its size, at least of 1."""
    leaf, local = ev.tree.locate(i)
    return WIDEST * max(abs(float(leaf.original.reshape(-1)[local])), 1.0)


def _unless_coarse(
    ev: Evaluator, i: int, h: float, verdict: Verdict, element: tuple[float, float], still: bool, res: float = 0.0
) -> Verdict:
    """A mismatch where f stood exactly ``still`` at every step, although the rule says it moves: inconclusive
    if a wider step moves f by steps no rounding makes (its value changes only in coarse steps), judged at a
    wider step where it moves by rounding units (a value computed with cancellation: a BCE's ``log(1 + e^z)`` at
    z of -25 moves by units of 1; ``res``: the analytic value's resolution), else the mismatch. ``element``: the
    analytic value and its tensor's typical gradient (a pass there must see a share of the larger)."""
    a, typical = element
    if not still or a == 0.0 or not np.isfinite(a):
        return verdict
    leaf, local = ev.tree.locate(i)
    tried = ev.flat_tries.get(leaf.name, 0)
    if tried >= WIDER_TRIES:
        return verdict  # this array's first elements did not move f at any width: it does not read them
    widest = reach(ev, i)
    s, moved = h, False
    kept = ev.moved.copy()
    while s < widest:
        s = min(s * WIDER, widest)
        try:
            phis, disp = ev.element(i, (s, -s))
        except NonFiniteError:
            return verdict  # the wider step leaves f's domain (log of a masked entry gone negative)
        if disp[0] == 0.0 or disp[1] == 0.0 or not np.all(np.isfinite(phis)):
            return verdict
        up, down = phis[0] - ev.phi0, ev.phi0 - phis[1]
        if up * down > 0:
            # it moves through the point, in coarse steps: no difference this fine can judge the rule here
            if min(abs(up), abs(down)) > rounding_unit(ev, i):
                # ... by steps no rounding makes (round(x), a threshold): f is piecewise constant, and stood
                # still at every step of the differences (the 'locally constant' finding judges the rule)
                ev.moved[:] = kept
                return (NOISY, 0.0, np.inf, np.nan, NO_HULL)
            # ... by rounding (a value computed with cancellation): judged where it moves by hundreds of them
            wide = min(RESOLUTION_WIDER * s, widest)
            scales = (max(abs(a), typical), quantum(up, down))
            judged = judged_at(ev, i, a, wide, res, scales) if wide > 2 * s else None
            return (NOISY, 0.0, np.inf, np.nan, NO_HULL) if judged is None else judged
        moved = moved or bool(up or down)  # one side only, so far: a flat piece beside a kink or a max stays so
    if not moved:
        ev.flat_tries[leaf.name] = tried + 1
    return verdict


#: Steps, as fractions of the first, at which an element that looks like a jump is tried again: a function
#: that bends on a scale far below the step (x / |x| for a row of norm 1e-8) is continuous there.
FINER = (2.0**-10, 2.0**-15, 2.0**-20)
#: ... and first at these where f rounds coarsely (a float32 function: at 2**-10 of its step its differences
#: drown in its rounding, and a kink a fifth or a tenth of a step away, a clip's bound beside data at 1e3, is
#: crossed no more at one of them); after FINER's where f rounds as float64 and they left a loose pass (below a
#: ReLU's kink 1e-6 away the difference at 2**-5 is the derivative to 1e-8, where the modelled rounding at
#: 2**-10 is 6% of a small element: see :func:`at_finer_steps`)
NEAR_FINER = (2.0**-3, 2.0**-5, 2.0**-7)


#: Steps, as fractions of an element's own size, at which an element far smaller than the finest of :data:`FINER`
#: is tried last: f may bend on that scale (p log p at p = 1e-12, whose steps from 1 cross 0; sin(x / s) at x ~ s).
AT_OWN_SIZE = (2.0**-4, 2.0**-12)


def _own_scale(ev: Evaluator, i: int, finest: float) -> tuple[float, ...]:
    """The fractions of the first step ``finest / FINER[-1]`` at which element ``i`` is tried at its own scale
    (:data:`AT_OWN_SIZE`), where that is finer than ``finest``; none for an element of 0 (no scale of its own), nor
    where the first step is a ``step=`` beyond the default one (the verdict belongs to the step asked for)."""
    leaf, local = ev.tree.locate(i)
    x = abs(float(leaf.original.reshape(-1)[local]))
    h = finest / FINER[-1]
    if h > 2.0 * max(machine_eps(leaf.dtype), ev.out_eps) ** (1.0 / 3.0) * max(x, 1.0):  # (numeric.steps)
        return ()
    return tuple(x * t / h for t in AT_OWN_SIZE if 0.0 < x * t < finest)


def below_step(ev: Evaluator, i: int, h: float) -> bool:
    """Whether element ``i`` is smaller than its step: the function may bend on its own, finer scale."""
    leaf, local = ev.tree.locate(i)
    return bool(abs(float(leaf.original.reshape(-1)[local])) < h)


#: A kink at the point keeps its one-sided slopes as the step halves, but for a smooth piece's f'' h; one inside
#: the step moves the slope that crosses it by its jump times its distance over the step. Slopes that moved by
#: more than this fraction of their gap are not settled on a kink at the point.
KINK_SETTLED = 1e-3
#: One-sided slopes of a first difference that differ by this fraction of their size may have crossed a kink
#: inside the step: a smooth function's differ by f'' h, a tiny fraction of f' at the default step (except
#: where f' is tiny, where a finer step costs a few evaluations and changes nothing).
KINK_GAP = 1e-3


def _kinks_within(ev: Evaluator, i: int, first: Four) -> bool:
    """Whether the one-sided slopes of element ``i``'s first difference disagree beyond curvature and rounding."""
    _, f, b = one_sided(ev, *first)
    gap = abs(f - b)
    noise = 2 * noise_level(ev, ev.local_scale[i]) / min(first[2], -first[3])
    return gap > KINK_GAP * max(abs(f), abs(b)) and gap > SAFETY * noise


def kinks_off_the_point(ev: Evaluator, i: int, a: float, verdict: Verdict, rough: bool, first: Four) -> bool:
    """Whether a verdict other than a clean pass may come from kinks inside the step rather than at the point.

    A point a little off one or more kinks (ReLU inputs within 1e-7 of 0, moved by the same input) is
    differentiable, but the one-sided slopes of a larger step cross the kinks: each side averages the slopes
    beyond them, and the averages shift as the halved step passes each kink in turn, so that two central
    differences may even agree by chance. A mismatch, a noisy, loose or unvouched estimate, or a value outside
    the slopes decided there says nothing about the derivative when the gaps between the slopes did not halve
    with the step (``rough``) or were no curvature to begin with; below the nearest kink the central difference
    is the derivative itself. A value at one of the slopes of a settled kink is what a correct backward gives
    (ReLU'(0) at the kink); strictly between them, it is a subgradient only if the kink is at the point, which
    a finer step tells.
    """
    st, _, slack, jump, (lo, hi) = verdict
    if st == AMBIGUOUS:
        return True
    if st == KINK:
        settled = slack <= SAFETY * KINK_SETTLED * abs(jump)
        at_a_slope = a - lo <= 2 * slack or hi - a <= 2 * slack
        return not (settled and at_a_slope)
    return rough or _kinks_within(ev, i, first)


def at_finer_steps(
    ev: Evaluator, i: int, a: float, h: float, res: float, tol: Tolerance, size: float, coarse: Verdict | None = None
) -> Any:
    """Judge element ``i`` again at much smaller steps; None if it still jumps (a true discontinuity).

    A pass whose bound sees errors of ``VOUCH * size`` is taken at the first scale that gives one (in float64, one
    within the screen's precision too: a looser one may still cross a kink; failing that, :data:`NEAR_FINER`'s
    wider fractions are tried after :data:`FINER`'s, below kinks a little off the point); any other verdict (a
    mismatch, a kink) only at the finest scale the dtype resolves, where the function is smoothest; failing both, the
    tightest pass found on the way, or the finest verdict. No pass stands over a mismatch found at a wider
    fraction that its bound could not have seen: a float64 weight 1e-6 from a ReLU's kink, its rule 5% off,
    mismatched below the kink with a bound of 1e-4 of itself, and passed at a finer step whose modelled rounding
    was 6% of the element.
    """
    # f rounding as float64, at an element larger than its step (one smaller bends on its own scale: FINER's)
    fine = ev.out_eps <= COARSE_EPS and not noisy_as_coarser(ev) and not below_step(ev, i, h)
    first = FINER if ev.out_eps <= COARSE_EPS else (*NEAR_FINER, *FINER)
    element = (a, h, res, tol, size)
    fractions = (*first, *_own_scale(ev, i, h * first[-1]))
    early, found, spans, seen = _tried(ev, i, element, fractions, fine, np.inf, coarse)
    if early is not None:
        return early
    if fine and found and found[-1][0] in (OK, NOISY):
        # no pass within the screen's precision, and no kink or mismatch at the finest step to decide: the wider
        # fractions, below kinks a little off the point, too
        early, near, near_spans, seen = _tried(ev, i, element, NEAR_FINER, fine, seen, coarse)
        if early is not None:
            return early
        found, spans = near + found, near_spans + spans
    if not found or found[-1][0] == JUMP:
        return None
    passes = [out for out in found if out[0] == OK and out[2] < seen]
    if found[-1][0] in (OK, NOISY) and passes:
        return min(passes, key=lambda out: out[2])
    # the finest verdict stands unless it is a mismatch, or a pass or noise over a mismatch found wider
    if not (found[-1][0] == MISMATCH or (found[-1][0] in (OK, NOISY) and np.isfinite(seen))):
        return found[-1]
    # a mismatch: judged where its bound, with the rounding of intermediates over the step, is tightest
    pairs = zip(found, spans, strict=True)
    judged = [_within_intermediates(ev, i, (a, span), out) for out, span in pairs if out[0] == MISMATCH]
    return min(judged, key=lambda out: out[2])


def _tried(
    ev: Evaluator,
    i: int,
    element: tuple[float, float, float, Tolerance, float],
    fractions: Any,
    fine: bool,
    seen: float,
    coarse: Verdict | None = None,
) -> tuple[Verdict | None, list[Verdict], list[float], float]:
    """Element ``i`` refined from each of ``fractions`` of its step ``h`` (``element``: the claim, ``h``, the
    resolution, the tolerance and the size to vouch for) until a pass vouches (returned first; with ``fine``, f
    rounding as float64, only one within the screen's precision and below ``seen``), else the verdicts and spans,
    and ``seen``: the least error a mismatch where f moved on both sides claims beyond its bound."""
    a, h, res, tol, size = element
    found: list[Verdict] = []
    spans: list[float] = []
    for k, fraction in enumerate(fractions):
        s = h * fraction
        phis, disp = ev.element(i, (s, -s))
        if disp[0] == 0.0 or disp[1] == 0.0:
            break  # the step no longer resolves in this dtype
        out = refine(ev, i, a, s, (float(phis[0]), float(phis[1]), float(disp[0]), float(disp[1])), res, tol, size)
        if coarse is not None and below_native(ev, i, s) and not abs(out[1] - coarse[1]) <= coarse[2]:
            continue  # (f's shape between two values the user's dtype holds, unlike its own at the first step)
        span = float(disp[0] - disp[1])
        # (a mismatch where f moved at this step on both sides: one where it stood still is a quantum's, not a slope)
        moved = phis[0] != ev.phi0 and phis[1] != ev.phi0 and out[1] != 0.0
        if fine and moved and out[0] == MISMATCH and _within_intermediates(ev, i, (a, span), out)[0] == MISMATCH:
            seen = min(seen, abs(a - out[1]))
        # (a float64 pass looser than the screen's precision may still cross a kink: other fractions judge on)
        loose = fine and out[2] > SCREEN_RELATIVE * max(abs(a), abs(out[1]))
        if out[0] == OK and out[2] <= VOUCH * size and out[2] < seen and not loose:
            return out, found, spans, seen
        found.append(out)
        spans.append(span)
        finer = fraction / fractions[k + 1] if k + 1 < len(fractions) else np.inf
        if out[0] == OK and bound(0.0, finer * roundoff(ev, span, ev.local_scale[i]), 0.0) >= UNRESOLVED * size:
            break  # the next step rounds by more than the element's size, the finer ones by more still
    return None, found, spans, seen


def below_native(ev: Evaluator, i: int, s: float) -> bool:
    """Whether a step ``s`` moves element ``i`` by less than a unit in the last place of the user's narrower dtype
    (:attr:`Evaluator.native`): it probes f between two values that dtype holds, where a departure from the first
    step's difference beyond its bound is a kink nearer the point than the user's function can tell from it
    (``max(3a, c)`` with ``c = 3a`` rounded to float32), not a slope (a smooth f's difference just sharpens)."""
    return ev.native is not None and s < float(ev.native[i])


#: A pass ends the finer steps where the next one's rounding alone (``SAFETY`` roundings of a central difference
#: over it) is this many times the element's size: no finer step can vouch for a bound, or tell an error of the
#: element's size from rounding, and a pass looser than this one changes nothing (a float32 layer's element at a
#: ReLU's kink was refined at 6 fractions of its step, 6 evaluations each, the last three passing with bounds
#: 2.5, 20 and 600 times the element, to the verdict the first of them had given).
UNRESOLVED = 1.0


def _within_intermediates(ev: Evaluator, i: int, element: tuple[float, float], verdict: Verdict) -> Verdict:
    """A mismatch at a fine step (below a kink a little off the point), its bound widened to what rounding of an
    intermediate of the element's size can put a difference over ``span`` off by
    (:func:`backcheck.rounding.rounding_unit`): a mismatch beyond it, else an agreement within it (which vouches
    only where it is below :data:`VOUCH` of the element). A ReLU input 1e-8 from its kink, computed as a sum of
    terms of size 1, rounds by 1e-16 whatever its own size; the bound models the rounding of outputs of 1e-8, and
    at a step below the kink (1e-11) the difference is 6e-6 off the derivative the backward pass computes right.
    ``element``: the analytic value and the span."""
    a, span = element
    floor = max(float(verdict[2]), quanta_floor(rounding_unit(ev, i), span))
    status = MISMATCH if abs(a - verdict[1]) > floor else OK
    return (status, verdict[1], floor, verdict[3], verdict[4])


def stands_for(finer: Verdict, verdict: Verdict, a: float, size: float) -> bool:
    """Whether a verdict at finer steps replaces ``verdict``, taken where kinks may lie inside the step.

    Only a sharper one does: its bound below the coarse bound, or below the error a coarse mismatch claimed
    (else it could not have seen it), and for a pass, one that sees ``VOUCH * size``. Where the function's
    rounding grows faster than the kinks recede (a float32 kernel), the coarse verdict stands.
    """
    sharp = finer[2] < (abs(a - verdict[1]) if verdict[0] == MISMATCH else verdict[2])
    if finer[0] in (MISMATCH, KINK, AMBIGUOUS):
        return sharp
    return finer[0] == OK and finer[2] <= VOUCH * size and sharp


#: An element below f's resolution at its step (:func:`backcheck.rounding.moves_by_rounding`) is judged again at a
#: step this many times its own at least (where its moves span hundreds of the quanta rounding made them of).
RESOLUTION_WIDER = 256.0


def judged_at(
    ev: Evaluator,
    i: int,
    a: float,
    s: float,
    res: float,
    scales: tuple[float, float],
    mismatch: bool = False,
    first: Four | None = None,
) -> Verdict | None:
    """Element ``i`` refined from a step of ``s``: a pass that sees ``VOUCH * size`` (or, with ``mismatch``, where
    the narrower steps found one too, a mismatch), where a difference at a step :data:`CORROBORATE` times smaller
    agrees, and so does the element's ``first`` difference when given, however noisy (else None); recorded in
    :attr:`Evaluator.wider`. A mismatch at the wider step alone proves nothing: f may bend on a scale between the
    steps (``1000 + 1e-12 sin(1e4 x)``). ``scales``: the size to judge at, and the quantum f moved by at narrower
    steps (the modelled rounding does not see it): the bound is at least that quantum over the step's span."""
    size, q = scales
    try:
        phis, disp = ev.element(i, (s, -s))
    except BackcheckError:
        return None
    if disp[0] == 0.0 or disp[1] == 0.0 or not np.all(np.isfinite(phis)):
        return None
    out = refine(ev, i, a, s, (float(phis[0]), float(phis[1]), float(disp[0]), float(disp[1])), res, Tolerance())
    limit = max(float(out[2]), quanta_floor(q, disp[0] - disp[1]))
    if mismatch and out[0] == MISMATCH and abs(a - out[1]) > limit:
        verdict: Verdict = (MISMATCH, out[1], limit, out[3], out[4])
    elif out[0] == OK and limit <= VOUCH * size:
        verdict = (OK, out[1], limit, out[3], out[4])
    elif limit <= VOUCH * size and _on_stairs_of(q, a, out, limit):
        # stairs of q that the finer levels cross or stand on (a GELU's 1 + tanh(u) in its tail): this step judges
        n = (float(phis[0]) - float(phis[1])) / float(disp[0] - disp[1])
        if not abs(a - n) <= limit:
            return None
        verdict = (OK, n, limit, np.nan, NO_HULL)
    else:
        return None
    try:
        phis, disp = ev.element(i, (s / CORROBORATE, -s / CORROBORATE))
    except BackcheckError:
        return None
    finer = (float(phis[0]), float(phis[1]), float(disp[0]), float(disp[1]))
    if not all(agrees(ev, i, four, (out[1], limit), q) for four in (finer, first) if four is not None):
        return None
    ev.wider.add(i)
    return verdict


def _on_stairs_of(q: float, a: float, out: Verdict, limit: float) -> bool:
    """Whether a refined verdict is of stairs of f of ``q`` alone: a mismatch within their floor, or jumps of q."""
    return abs(a - out[1]) <= limit if out[0] == MISMATCH else out[0] == JUMP and 0.0 < out[3] <= q


#: A verdict at a wider step stands only where a difference this many times finer agrees with it, within its
#: rounding.
CORROBORATE = 16.0


#: An element smaller than its step is judged again at this fraction of its own size (see :func:`on_own_scale`).
OWN_SCALE = 1.0 / 8.0


def on_own_scale(
    ev: Evaluator, i: int, element: tuple[float, float, float], res: float, tol: Tolerance, verdict: Verdict
) -> Verdict:
    """A kink verdict (or one of kinks meeting) of an element ``x`` with ``0 < |x| < h``, judged again at a step of
    ``|x| / 8``.

    A step larger than the element itself crosses the element's own zero: ReLU at ``x = 1e-9`` or the norm of a
    vector of size 1e-12 look like kinks at the point at every step above the element's size, and any value
    between (or at) the one-sided slopes would pass as a subgradient, an inverted mask included. At an eighth of
    the element the function's kinks at zero lie beyond the step: a smooth verdict there (a pass or a mismatch)
    replaces the kink (a pass only where it sees errors of ``VOUCH * size``); a kink that stays (a tie with
    another element) or noise keeps it. ``element``: the analytic value, the step and the size to judge against.
    """
    a, h, size = element
    leaf, local = ev.tree.locate(i)
    x = abs(float(leaf.original.reshape(-1)[local]))
    if not 0.0 < x < h:
        return verdict
    s = x * OWN_SCALE
    phis, disp = ev.element(i, (s, -s))
    if disp[0] == 0.0 or disp[1] == 0.0 or not np.all(np.isfinite(phis)):
        return verdict
    out = refine(ev, i, a, s, (float(phis[0]), float(phis[1]), float(disp[0]), float(disp[1])), res, tol)
    if out[0] == MISMATCH and ev.out_eps > COARSE_EPS:
        # a float32 exp(x) - 1 at x of -3e-5 rounds by units of 1 (its exp), 0.7% of its change over a step of 4e-6
        out = _within_intermediates(ev, i, (a, float(disp[0] - disp[1])), out)
    vouched = out[0] == MISMATCH or (out[0] == OK and out[2] <= VOUCH * size)
    return out if vouched else verdict


#: An output dtype this coarse or coarser (float32, float16) makes the rounding of an intermediate of size 1 a
#: share of a difference at an element's own scale that matters (see :func:`on_own_scale`).
COARSE_EPS = 1e-10
#: A function whose noise exceeds this many times its output dtype's rounding of its size computes in a coarser
#: dtype inside (float64 outputs of a float32 or bfloat16 computation).
COARSE_NOISE = 1e4


def noisy_as_coarser(ev: Evaluator) -> bool:
    """Whether the check's noise is a coarser dtype's than f's output (:data:`COARSE_NOISE`), or kinks by the
    hundred inside the noise probe's moves, which it cannot tell from one."""
    return bool(ev.noise > COARSE_NOISE * ev.out_eps * max(ev.scale, abs(ev.phi0)))


#: Steps tried below a kink found off the point, each this fraction of the one before (see
#: :func:`beside_the_point`), and how many.
BESIDE_SHRINK = 1.0 / 8.0
BESIDE_TRIES = 3


def beside_the_point(
    ev: Evaluator,
    i: int,
    element: tuple[float, float, float],
    first: Four,
    res: float,
    tol: Tolerance,
    verdict: Verdict,
) -> Verdict:
    """A kink verdict whose one-sided slopes moved, from the first step to the last, by more than rounding:
    judged again below the kink's distance from the point.

    At a kink at the point the one-sided slopes stay put as the step shrinks; at a kink a distance ``d`` away
    (``|x - y|`` with ``x - y = 1e-12``, a ReLU whose pre-activation is 1e-12, moved by an input of size 1),
    the slope of the side that crosses it averages both pieces, ``b + (a - b) d / s``, and moves by ``(a - b)
    d (1 / s - 1 / h)``: the point is differentiable, its derivative is the near piece's slope, and the far
    one, which would pass as a subgradient (a sign-flipped rule), is wrong. ``d`` is at most ``h`` times the
    movement over the jump; steps from an eighth of that, shrinking by :data:`BESIDE_SHRINK`, judge the element
    as smooth (a pass only where it sees ``VOUCH * size``); a kink that stays, or a step no longer resolved,
    keeps the verdict."""
    a, h, size = element
    _, slack, jump, (lo, hi) = verdict[1:]
    _, f, b = one_sided(ev, *first)
    moved = max(abs(min(f, b) - (lo + slack)), abs(max(f, b) - (hi - slack)))
    # the rounding of a slope at the last step, at most 2 ** MAX_LEVELS times finer than the first
    noise = 2 * noise_level(ev, ev.local_scale[i]) / min(first[2], -first[3]) * 2.0**MAX_LEVELS
    if not (np.isfinite(moved) and abs(jump) > 0 and moved > SAFETY * noise):
        return verdict
    s = h * min(moved / abs(jump), 1.0) * BESIDE_SHRINK
    for _ in range(BESIDE_TRIES):
        if below_native(ev, i, s):
            return verdict  # (a kink nearer than the user's dtype can tell apart from the point: at the point)
        phis, disp = ev.element(i, (s, -s))
        if disp[0] == 0.0 or disp[1] == 0.0 or not np.all(np.isfinite(phis)):
            return verdict
        out = refine(ev, i, a, s, (float(phis[0]), float(phis[1]), float(disp[0]), float(disp[1])), res, tol)
        if out[0] == MISMATCH:
            return _within_intermediates(ev, i, (a, float(disp[0] - disp[1])), out)
        if out[0] == OK and out[2] <= VOUCH * size:
            return out
        if out[0] != KINK:
            return verdict
        s *= BESIDE_SHRINK
    return verdict
