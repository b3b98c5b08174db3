"""Judging a set of elements from their first central differences: the screen (:func:`backcheck.verdict.screen`)
clears what rounding alone explains, :mod:`backcheck.refinement` judges each element it cannot clear, and what the
rounding of f's value hides from a difference is judged last (:mod:`backcheck.rounding`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from backcheck.errors import NonFiniteError
from backcheck.evaluate import Evaluator
from backcheck.numeric.grad import MEASURED_NOISE, noise_level, one_sided, roundoff
from backcheck.numeric.noise import element_noise
from backcheck.refinement import (
    FINER,
    NEAR_FLOOR,
    at_finer_steps,
    below_step,
    beside_the_point,
    kinks_off_the_point,
    noisy_as_coarser,
    on_own_scale,
    refine,
    refine_rough,
    stands_for,
)
from backcheck.rounding import (
    below_rounding_of_inputs,
    moves_by_rounding,
    quanta_floor,
    quantum,
    rounded_away,
    still_at_zero,
)
from backcheck.verdict import (
    AMBIGUOUS,
    DEAD,
    JUMP,
    KINK,
    MISMATCH,
    NO_HULL,
    NOISY,
    OK,
    SAFETY,
    SCREEN_RELATIVE,
    VOUCH,
    FirstDifferences,
    Four,
    Judgement,
    Tolerance,
    Verdict,
    bound,
    screen,
    sees,
)
from backcheck.wider import across_quanta, on_stairs, on_wider_scale, unless_hidden


def judge(
    ev: Evaluator,
    idx: np.ndarray,
    analytic: np.ndarray,
    h: np.ndarray,
    first: FirstDifferences,
    res: np.ndarray,
    tol: Tolerance,
    typical: np.ndarray | None = None,
) -> Judgement:
    """Judge elements ``idx`` from their first central differences, refining those the screen cannot clear.

    ``typical`` (per element, its tensor's typical gradient) lets the screen clear only elements its bound can
    vouch for; the others are refined, where each element's round-off comes from the outputs it moves.
    """
    numeric = first.central.copy()  # refined in place below
    # a NaN or inf analytic value where the function is finite is wrong, whatever the bound: named, not refined
    finite = np.isfinite(analytic)
    broken = None if finite.all() else ~finite & np.isfinite(numeric)
    edge = None
    if broken is not None and ev.one_sided:
        # on the edge of the domain an infinite one-sided slope (sqrt at 0) is the rule's right limit: no
        # finite difference can judge it (inconclusive, not refined)
        edge = np.isin(idx, list(ev.one_sided)) & np.isinf(analytic) & (np.sign(analytic) == np.sign(numeric))
        broken &= ~edge
    res = np.where(np.isfinite(res), res, 0.0)
    ok, limit, size = screen(ev, analytic, numeric, first.span, res, tol, np.abs(numeric))
    if typical is not None and not tol.custom:
        ok &= sees(limit, np.maximum(size, typical))
    if not tol.custom:
        fours = (first.plus, first.minus, first.disp_plus, first.disp_minus)
        for k in np.flatnonzero(ok & straddles(ev, fours, size if typical is None else np.maximum(size, typical))):
            four = (float(fours[0][k]), float(fours[1][k]), float(fours[2][k]), float(fours[3][k]))
            ok[k] = not off_the_point(ev, int(idx[k]), float(h[k]), four)
            if not ok[k]:
                ev.straddled.add(int(idx[k]))  # (not probed again when its refinement passes it)
    cleared = None if tol.custom or ev.noise_probe is None else ok.copy()  # on rounding alone, before any probe
    status = np.empty(idx.size, dtype=object)
    status.fill(OK)  # (np.full of an object array is slower)
    unknown = np.full((idx.size, 3), np.nan)  # (one block: the jumps and the hulls are views of it)
    jump, hull = unknown[:, 0], unknown[:, 1:]
    if broken is not None:
        status[broken] = MISMATCH
        ok |= broken  # decided: not refined
    if edge is not None and edge.any():
        status[edge], limit[edge] = NOISY, np.inf
        ok |= edge
    todo = np.flatnonzero(~ok)
    leaf_of = np.searchsorted(ev.tree.offsets, idx[todo], side="right") - 1
    confirmed = np.zeros(len(ev.tree.leaves), dtype=np.int64)  # per array, mismatches judged in full
    for k, lf in zip(todo.tolist(), leaf_of.tolist(), strict=True):
        four = (float(first.plus[k]), float(first.minus[k]), float(first.disp_plus[k]), float(first.disp_minus[k]))
        typ = None if typical is None else float(typical[k])
        plain = ev.unconfirmed = bool(confirmed[lf] >= CONFIRMED_WRONG and not (tol.custom or ev.confirm_all))
        try:
            st, n, b, jump[k], hull[k] = judge_one(
                ev, int(idx[k]), float(analytic[k]), float(h[k]), four, float(res[k]), tol, typ
            )
        finally:
            ev.unconfirmed = False
        if st == MISMATCH and not plain:
            confirmed[lf] += 1
        if st == MISMATCH and analytic[k] == 0.0:
            st = DEAD
        status[k], numeric[k], limit[k] = st, n, b
    if MISMATCH in set(status.tolist()) and not tol.custom:
        rounded_away(ev, idx, (analytic, numeric), first, res, typical, (status, limit))
        moved = idx[(first.plus != ev.phi0) | (first.minus != ev.phi0)]
        unseen = (status == MISMATCH) & below_rounding_of_inputs(ev, idx, analytic, h, moved)
        if ev.wider:
            unseen &= ~np.isin(idx, list(ev.wider))  # judged at a wider step, whose bound is the last word
        status[unseen], limit[unseen] = NOISY, np.inf
    if cleared is not None and ev.noise_probe is None and cleared.any():
        _noise_since(ev, cleared, limit, (np.abs(numeric), first.span, res))
    if ev.phi0 == 0.0 and ev.scale == 0.0 and not tol.custom:
        still_at_zero(ev, idx, first, status, limit)
    return Judgement(numeric, limit, status, jump, hull)


def straddles(ev: Evaluator, first: tuple[Any, Any, Any, Any], size: Any) -> Any:
    """Whether an element's forward and backward slopes (``first``: phi at ``x + dp`` and ``x + dm``, ``dp`` and
    ``dm``, per element or for one) differ by an error that matters (``2 VOUCH`` of ``size``) and far more than
    their rounding: a kink (a ReLU at 1e-10, two maxima 1e-10 apart) lies within the step, and the central
    difference is the mean of the slopes on its two sides, which a rule claiming that mean matches at a point
    where f is differentiable with one of them. A smooth element's slopes differ by its curvature over the step,
    ``f'' h``, a small part of its slope. Such an element is refined, not cleared, and judged below the kink."""
    plus, minus, dp, dm = first
    with np.errstate(all="ignore"):
        gap = np.abs((plus - ev.phi0) / dp - (ev.phi0 - minus) / -dm)
        rounding = 4.0 * roundoff(ev, np.abs(dp - dm), lazy=True)  # each slope's, over half the span
        return (gap > 2.0 * VOUCH * size) & (gap > SAFETY * rounding) & np.isfinite(gap)


def off_the_point(ev: Evaluator, i: int, h: float, first: Four) -> bool:
    """Whether element ``i``'s one-sided slopes move as its step halves (2 evaluations), beyond their rounding: a
    kink inside the step but off the point, whose side the slopes mix in by the share of the step beyond it (a
    ReLU at 1e-10 stepped by 6e-6 moves them by 2e-5 of its jump). At a kink on the point of linear pieces (a ReLU
    at 0, a max at a tie) the slopes stay, and the mean a rule claims there is a subgradient: cleared as it was."""
    try:
        phis, disp = ev.element(i, (h / 2, -h / 2))
    except NonFiniteError:
        return True  # (the domain ends between: refinement judges it)
    if disp[0] == 0.0 or disp[1] == 0.0:
        return True
    _, fwd, bwd = one_sided(ev, *first)
    _, fwd2, bwd2 = one_sided(ev, float(phis[0]), float(phis[1]), float(disp[0]), float(disp[1]))
    gap = abs(fwd - bwd)
    # each slope at half the step rounds by 4 times the central difference's rounding, at the full step by 2
    r = roundoff(ev, float(disp[0] - disp[1]), ev.local_scale[i] or None)
    shift = max(abs(fwd2 - fwd), abs(bwd2 - bwd))
    # a kink at d from the point shifts the slopes by J d / h, J their gap: one within the rounding of the point (in
    # the user's dtype, differenced on float64 copies: a float32 max of 3a and c, tied in float32 alone) is at it
    leaf, local = ev.tree.locate(i)
    unit = ev.out_eps * abs(float(leaf.original.reshape(-1)[local]))
    if ev.native is not None:
        unit = max(unit, float(ev.native[i]))
    return gap > 0.0 and shift > SAFETY * 6.0 * r and h * shift / gap > SAFETY * unit


def _below_the_kink(ev: Evaluator, i: int, a: float, h: float, res: float, size: float) -> Verdict | None:
    """Element ``i`` refined from the first of :data:`~backcheck.refinement.FINER`'s fractions of its step whose
    difference no longer straddles a kink (2 evaluations a fraction, and the refinement's); None where every one
    does (a kink at the point, as far as the dtype resolves) or the step no longer resolves."""
    for t in FINER:
        try:
            phis, disp = ev.element(i, (h * t, -h * t))
        except NonFiniteError:
            return None
        four = (float(phis[0]), float(phis[1]), float(disp[0]), float(disp[1]))
        if disp[0] == 0.0 or disp[1] == 0.0:
            return None
        if not straddles(ev, four, size):
            return refine(ev, i, a, h * t, four, res, Tolerance(), size)
    return None


def _noise_since(ev: Evaluator, cleared: np.ndarray, limit: np.ndarray, first: tuple[Any, Any, Any]) -> None:
    """Widen, in place, the bounds of the elements the screen ``cleared`` on rounding alone by the noise the probe
    measured since (refining other elements ran it): a quantized ``phi`` (a value rounded to float16 inside)
    moves in steps far above its rounding, and a difference that agreed within rounding did so by chance."""
    size, span, res = (a[cleared] for a in first)
    eps_out = ev.out_eps
    now = bound(eps_out ** (2.0 / 3.0) * size, roundoff(ev, np.abs(span), lazy=True), res)
    limit[cleared] = np.maximum(limit[cleared], now)


#: A kink whose one-sided slopes moved by more than this fraction of their gap as the step halved, where finer steps
#: find slopes that agree, is no kink at the point (see :func:`_judge_steps`).
KINK_UNSETTLED = 0.05


#: Mismatches of one array judged in full (each confirmed by the noise along it and by finer steps) after which
#: the array's other suspects are judged plainly: a refined difference that disagrees with the rule is taken as a
#: mismatch as it is (a wrong rule of a float32 layer paid about 100 evaluations per wrong element to confirm
#: what the array's verdict no longer needs).
CONFIRMED_WRONG = 8


def judge_one(
    ev: Evaluator, i: int, a: float, h: float, first: Four, res: float, tol: Tolerance, typical: float | None
) -> Verdict:
    """Refine element ``i``; judge it again at finer or wider steps where its verdict may belong to another scale
    (:func:`_judge_steps`), across stairs f makes along it (:func:`on_stairs`), or to an intermediate's rounding
    (:func:`unless_hidden`). With the evaluator's ``unconfirmed`` set (its array has :data:`CONFIRMED_WRONG`
    mismatches already), a refined difference's mismatch stands without the noise along it and finer steps
    (recorded in the evaluator's ``plain``)."""
    verdict = _judge_steps(ev, i, a, h, first, res, tol, typical)
    if verdict[0] == MISMATCH and not tol.custom and not below_step(ev, i, h):
        size = max(abs(a), abs(verdict[1]), 0.0 if typical is None else typical)
        verdict = on_stairs(ev, i, (a, h, size), first, res, verdict)
    return unless_hidden(ev, i, (a, h, typical), first, res, tol, verdict)


#: A mismatch whose numeric derivative is this many times smaller than the claim, at a step wider than this (an
#: element's own step is eps^(1/3) of its size: float64 elements beyond 1.6e5), is judged at finer steps too.
AVERAGED_AWAY = 16.0
AVERAGED_STEP = 1.0


def _in_quiet(ev: Evaluator, i: int, a: float, h: float, finer: Verdict, judge: Any) -> Verdict:
    """``finer`` (an agreement at steps below kinks just off the point, too loose to vouch), or the same judgement
    again with the noise measured along element ``i`` at those steps, where that is quieter than the check's: a
    function's noise measured over wider moves counts the kinks they cross (a sort of values 1e-6 apart, stepped
    by 6e-6, read as one computing in float32), and its bound over a step 1e3 times finer holds no derivative.
    Where the function does compute coarsely, it is as loud along the element. Only where the check's noise is
    that of a coarser dtype (:func:`~backcheck.refinement.noisy_as_coarser`): a smooth function's is its own."""
    loud = ev.noise
    if not noisy_as_coarser(ev):
        return finer
    quiet = MEASURED_NOISE * element_noise(ev, i, h * FINER[0], a)
    if not quiet * QUIETER < loud:
        return finer
    ev.noise = quiet
    try:
        again = judge()
    finally:
        ev.noise = loud
    return finer if again is None else again


#: The noise along an element below kinks off the point replaces the check's where this many times quieter, and
#: the check's is :data:`~backcheck.refinement.COARSE_NOISE` times the output dtype's rounding of its size.
QUIETER = 16.0


def _judge_steps(
    ev: Evaluator, i: int, a: float, h: float, first: Four, res: float, tol: Tolerance, typical: float | None
) -> Verdict:
    """Refine element ``i``; judge it again at finer steps where its verdict may belong to a finer scale."""
    plain = ev.unconfirmed
    verdict, rough = refine_rough(ev, i, a, h, first, res, tol, 0.0 if typical is None else typical)
    ev.unconfirmed = False  # (the first refinement alone: any judged further probes the noise as ever)
    st, n, b = verdict[:3]
    if plain and st == MISMATCH:
        ev.plain[i] = abs(a - n) <= NEAR_FLOOR * SAFETY * b  # (near: where the noise along it might excuse it)
        return verdict
    size = max(abs(a), abs(n), 0.0 if typical is None else typical)
    if st == MISMATCH and h > AVERAGED_STEP and 0.0 < abs(n) <= abs(a) / AVERAGED_AWAY:
        # estimates that agree with each other far below the claim, at a step wider than f's usual scale: a step
        # spanning many of f's oscillations averages them away (sin at 1e8, stepped by 600); at much finer steps
        # the derivative shows
        finer = at_finer_steps(ev, i, a, h, res, tol, size)
        if finer is not None and finer[0] == OK:
            return finer
    unsure = st == NOISY or (st == OK and typical is not None and not b <= VOUCH * size)
    if st == JUMP or (unsure and below_step(ev, i, h)):
        finer = at_finer_steps(ev, i, a, h, res, tol, size)
        if finer is not None and (finer[0] != OK or st != OK or finer[2] < b):
            return finer
        return verdict
    # a pass looser than the screen's precision may have averaged the slopes across kinks inside the step
    loose = st == OK and not b <= SCREEN_RELATIVE * max(abs(a), abs(n))
    if (
        st == OK
        and not tol.custom
        and (i in ev.straddled or (straddles(ev, first, size) and off_the_point(ev, i, h, first)))
    ):
        # a pass of the mean of the slopes across a kink inside the step, off the point (the screen's
        # :func:`straddles`): below the kink a mismatch shows that the pass's bound, a smooth function's, cannot see
        below = _below_the_kink(ev, i, a, h, res, size)
        if below is not None and below[0] == MISMATCH and below[2] <= VOUCH * size:
            return below
    smooth_finer = False  # the finer steps found slopes that agree (no kink at the point)
    if (unsure or loose or st in (MISMATCH, KINK, AMBIGUOUS)) and kinks_off_the_point(ev, i, a, verdict, rough, first):
        finer = at_finer_steps(ev, i, a, h, res, tol, size, verdict)
        smooth_finer = finer is not None and finer[0] in (OK, MISMATCH)
        if finer is not None and finer[0] == OK and not stands_for(finer, verdict, a, size):
            finer = _in_quiet(ev, i, a, h, finer, lambda: at_finer_steps(ev, i, a, h, res, tol, size, verdict))
        if finer is not None and (stands_for(finer, verdict, a, size) or (unsure and finer[0] == NOISY)):
            verdict = finer
    # not vouched for, or a mismatch that the quanta f moved by explain
    # (the noise read here, which may run its probe; the quanta f moved by, only where a verdict asks for them)
    rounding = float(noise_level(ev, ev.local_scale[i] or None))
    unvouched = verdict[0] == NOISY or (verdict[0] == OK and not verdict[2] <= VOUCH * size)
    q = quantum(first[0] - ev.phi0, first[1] - ev.phi0, tol=rounding) if unvouched or verdict[0] == MISMATCH else 0.0
    quanta = verdict[0] == MISMATCH and abs(a - verdict[1]) <= quanta_floor(q, first[2] - first[3])
    if (unvouched or quanta) and not tol.custom and not below_step(ev, i, h) and moves_by_rounding(ev, i, first):
        return on_wider_scale(ev, i, (a, h, size), (first, q), res, verdict)
    if unvouched and not tol.custom and ev.noise > 0 and ev.noise_quantum > 0 and not below_step(ev, i, h):
        across = across_quanta(ev, i, (a, h, size), first, res)
        if across is not None:
            return across
    if verdict[0] not in (KINK, AMBIGUOUS):
        return verdict
    # (slopes that disagree at every step above an element's own size may be a function bending on that finer
    # scale, sin(x / 1e-10) at x of 1e-10, as well as kinks at its zero)
    verdict = on_own_scale(ev, i, (a, h, size), res, tol, verdict)
    verdict = beside_the_point(ev, i, (a, h, size), first, res, tol, verdict) if verdict[0] == KINK else verdict
    if verdict[0] == KINK and smooth_finer and _unsettled(ev, i, first, verdict):
        # one-sided slopes still moving with the step, and slopes that agree at finer steps: the kink lies inside
        # the step, not at the point (logits of spread 0.01 near 1e4 in float32, stepped by 1e4's step, make a
        # smooth f look like a max), and the finer steps could not vouch; no subgradient is vouched for
        ev.unsettled.add(i)
        return (NOISY, verdict[1], np.inf, np.nan, NO_HULL)
    return verdict


def _unsettled(ev: Evaluator, i: int, first: Four, verdict: Verdict) -> bool:
    """Whether the one-sided slopes of element ``i``'s ``verdict``, a kink, moved with the step by more than
    :data:`KINK_UNSETTLED` of their gap: its slack says so, and so do the slopes themselves, which lie that far
    (counted as the slack counts it, ``SAFETY`` times) from those of the first difference (``first``) and beyond
    that difference's rounding. A slack wide from rounding alone is no move: a float32 max pool's tie at integer
    values keeps its slopes (0 and the window's dout) to 1e-4 of the gap from the first step on, where its
    rounding makes the slack a tenth of the gap (a ReLU 4e-4 off the point, crossed by the steps, moves its slopes
    by a tenth of their gap; a saturated log-sum-exp near 1e4 by 7%)."""
    n, jump = float(verdict[1]), float(verdict[3])
    if not verdict[2] > KINK_UNSETTLED * abs(jump):
        return False
    _, fwd, bwd = one_sided(ev, *first)
    moved = max(abs(n + jump / 2 - fwd), abs(n - jump / 2 - bwd))  # (the central difference: the slopes' mean)
    r = roundoff(ev, first[2] - first[3], ev.local_scale[i])
    return bound(moved, 0.0, 0.0) > KINK_UNSETTLED * abs(jump) and moved > bound(0.0, 2 * r, 0.0)
