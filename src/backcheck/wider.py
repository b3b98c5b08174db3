"""Judging an element again at a wider step than its own, where its first differences cannot tell: f moved by a
few units of its rounding only (a saturated sigmoid), an intermediate's rounding hides its change (1 + tanh(u) far
in a GELU's tail), or f moves in quanta (a value rounded to float16 inside). Each judgement states the wider
step's bound (see :func:`backcheck.refinement.judged_at`)."""

from __future__ import annotations

import numpy as np

from backcheck.errors import BackcheckError
from backcheck.evaluate import Evaluator
from backcheck.numeric.grad import noise_level
from backcheck.refinement import (
    RESOLUTION_WIDER,
    WIDER,
    below_step,
    judged_at,
    reach,
)
from backcheck.rounding import RESOLUTION_UNITS, quanta_floor, rounding_unit
from backcheck.verdict import (
    JUMP,
    MISMATCH,
    NO_HULL,
    NOISY,
    OK,
    SAFETY,
    TINY,
    VOUCH,
    WIDE_AGREEMENT,
    Four,
    Tolerance,
    Verdict,
)


def unless_hidden(
    ev: Evaluator,
    i: int,
    element: tuple[float, float, float | None],
    first: Four,
    res: float,
    tol: Tolerance,
    verdict: Verdict,
) -> Verdict:
    """A mismatch below :data:`~backcheck.verdict.TINY` of its tensor's typical gradient, and below what
    rounding of an intermediate of the element's size (:func:`backcheck.rounding.rounding_unit`) can put its first
    difference off, judged again at a wider step with that rounding in its bound (see :func:`on_wider_scale`).

    A tanh-approximation GELU at x of -6.6 computes ``1 + tanh(u)`` of 7e-14 in units of 1.1e-16, and its
    ``0.5 x (1 + tanh(u))`` moves smoothly with x while that factor stands still for 3e-4 at a time: every
    difference narrower than that finds ``0.5 (1 + tanh(u))``, not the derivative, -1e-12, which its backward
    pass computes right. The difference looks converged and its modelled rounding (of the outputs, 1e-29) makes
    it a mismatch. At a step of 256 times the first, f's hidden factor has moved by tens of its quanta, and
    the pass there states that rounding over its step as its bound. A rule wrong by a share of the tensor's
    gradient that matters never comes here; an undecided mismatch stands. So is a jump of f by at most that
    rounding (the same factor's steps, met inside the step at every scale tried) judged again: a pass at the
    wider step replaces it."""
    a, h, typical = element
    if verdict[0] not in (MISMATCH, JUMP, OK) or tol.custom or typical is None or below_step(ev, i, h):
        return verdict
    err, span = abs(a - verdict[1]), first[2] - first[3]
    unit = rounding_unit(ev, i)
    if verdict[0] == OK:
        # an agreement held to that rounding at a finer step (refinement._within_intermediates), too loose to vouch
        loose = verdict[2] > VOUCH * max(abs(a), abs(verdict[1]), typical)
        if not (loose and span > 0 and err <= TINY * typical):
            return verdict
    elif verdict[0] == JUMP:
        # f jumped by no more than an intermediate's rounding: its steps, not a discontinuity (a pass only)
        if not (span > 0 and 0.0 < verdict[3] <= unit):
            return verdict
    elif not (span > 0 and err <= TINY * typical and err <= quanta_floor(unit, span)):
        return verdict
    size = max(abs(a), abs(verdict[1]), typical)
    wider = judge_wider(ev, i, (a, h, size), (first, unit), res, verdict)
    return verdict if wider is None else wider  # (undecided: the mismatch stays, for the rounding judged later)


def across_quanta(
    ev: Evaluator, i: int, element: tuple[float, float, float], first: Four, res: float
) -> Verdict | None:
    """An unvouched element of an ``f`` that moves in quanta (``ev.noise_quantum``: a value rounded to float16
    inside, an input cast to a coarser dtype), judged at the widest step within its reach (:data:`OWN_REACH`
    below it), where its quanta can hide no error of :data:`VOUCH` of its size. A tanh computed in float16 stands
    still at a float64 step of 6e-6 and moves by quanta of 4e-5, so that its first differences say nothing, a
    wrong sign included; at a step of 1e-2 it moves by hundreds of quanta. Where the step the quanta need is
    beyond that (an input cast to bfloat16, whose stairs are 2**-8 of it), only a mismatch beyond the quanta's
    bound there comes out (a rule off by a factor of 2); where the quanta are as coarse as the element itself (a
    straight-through rule's grid of 0.25: f is locally constant there), nothing does. None where neither the
    quanta nor f's noise need a step wider than the element's own, or where the wider step decides nothing (see
    :func:`backcheck.refinement.judged_at`)."""
    a, h, size = element
    if not size > 0:
        return None
    # the step at which the quanta, and the noise (a float32 rounding inside, beside quanta far finer), span
    # VOUCH of the element lies beyond its own step (a pass, held to VOUCH, needs it within the reach too)
    q, noise = ev.noise_quantum, float(noise_level(ev, ev.local_scale[i] or None))
    if not SAFETY * max(q, noise) / (VOUCH * size) > 2 * h:
        return None
    return judged_at(ev, i, a, reach(ev, i) / OWN_REACH, res, (size, q), True, first)  # (the widest such step)


#: An element's quanta are spanned at a step this many times below its reach at most (see :func:`across_quanta`).
OWN_REACH = 8.0


def on_stairs(
    ev: Evaluator, i: int, element: tuple[float, float, float], first: Four, res: float, verdict: Verdict
) -> Verdict:
    """A mismatch where f is a staircase along element ``i`` at the scale of its step: its first step moved f by
    more than rounding makes (:data:`~backcheck.rounding.RESOLUTION_UNITS` units), refinement found f exactly
    still on a side at half a step that moved it (``Evaluator.stood``), and a step :data:`~backcheck.refinement.WIDER`
    times the first (or its square, ...: within the element's reach) moves f through the point both ways. An
    input cast to bfloat16 inside f (autocast, ``x.bfloat16() @ w``) makes such stairs, 2**-8 of x wide, as wide
    as a float32 element's step: a right rule met the slope of a tread (0) or of a few stairs and failed.

    Judged across the stairs at the widest step within the element's reach (with the first step's largest move in
    the bound, see :func:`across_quanta`), else by the first difference, held to those stairs: inconclusive
    within them, a mismatch beyond. A function still on one side at every wider step (a kink just inside the
    first step, a dead zone), or rising or falling on both sides (an extremum), keeps its mismatch. Two
    evaluations a wider step, and the widest's where they show stairs."""
    a, h, size = element
    q = max(abs(first[0] - ev.phi0), abs(ev.phi0 - first[1]))
    unit = RESOLUTION_UNITS / WIDE_AGREEMENT * rounding_unit(ev, i)
    if verdict[0] != MISMATCH or i not in ev.stood or not (size > 0 and q > unit and abs(a) * h / 2 > unit):
        return verdict
    s = h
    while True:  # (wider until f moves on both sides: stairs up to the element's reach wide)
        s *= WIDER
        if s > max(reach(ev, i), WIDER * h):
            return verdict
        try:
            phis, disp = ev.element(i, (s, -s))
        except BackcheckError:
            return verdict
        up, down = phis[0] - ev.phi0, ev.phi0 - phis[1]
        if not (disp[0] > 0 > disp[1]) or up * down < 0:
            return verdict  # (f rises or falls on both sides: an extremum, no stairs through the point)
        if min(abs(up), abs(down)) > unit:
            break
    # (a pass there must see VOUCH of the element, a mismatch only lie beyond its bound: a rule off by a factor of
    # 2 shows across stairs too coarse to vouch for a right one)
    judged = judged_at(ev, i, a, reach(ev, i) / OWN_REACH, res, (size, q), True, first)
    if judged is not None:
        return judged
    # undecided there: the first difference, each of whose values lies within a stair (q) of the smooth function's,
    # is the estimate a tread's 0 is not; a rule beyond its stairs' bound is wrong
    span = first[2] - first[3]
    n, limit = (first[0] - first[1]) / span, quanta_floor(q, span)
    return (MISMATCH if abs(a - n) > limit else NOISY, n, limit, np.nan, NO_HULL)


def on_wider_scale(
    ev: Evaluator, i: int, element: tuple[float, float, float], moved: tuple[Four, float], res: float, verdict: Verdict
) -> Verdict:
    """An unsettled verdict (noise, a pass that does not see ``VOUCH * size``, or a mismatch within the quanta f
    moves by, :func:`backcheck.rounding.quanta_floor`) of an element whose step moved f by rounding units only
    (:func:`backcheck.rounding.moves_by_rounding`), judged again at a wider step: as much wider
    as its bound is above what a pass must see, and at least :data:`RESOLUTION_WIDER` times (at most
    :data:`WIDEST` of the element's size). A vouched pass there replaces the verdict, and so does a mismatch
    where the first steps found one too (see :func:`judged_at`).

    A saturated sigmoid at z of 25 has a derivative of 1e-11 and moves a loss of size 10 by 4e-15 at its step,
    a few units of its rounding: no difference there resolves the derivative (inconclusive). torch's BCE with
    logits of -25 and label 0 computes ``log(1 + e^z)`` from a sum with 1, so its loss of 1e-11 moves in quanta
    of 1e-16: at its step one quantum one way and none the other, at half of it none, and a right rule failed.
    At a step of 0.04 both move by hundreds of quanta, and the Richardson table from there stays far below a
    percent. ``element``: the analytic value, the step and the size to judge at; ``moved``: the element's first
    differences and the quantum f moved by there (:func:`backcheck.rounding.quantum`).
    """
    first, q = moved
    wider = judge_wider(ev, i, element, moved, res, verdict)
    if wider is not None:
        return wider
    if verdict[0] == MISMATCH:  # undecided there too: a mismatch the quanta explain is no evidence of one
        return (NOISY, verdict[1], max(float(verdict[2]), quanta_floor(q, first[2] - first[3])), np.nan, NO_HULL)
    return verdict


def judge_wider(
    ev: Evaluator, i: int, element: tuple[float, float, float], moved: tuple[Four, float], res: float, verdict: Verdict
) -> Verdict | None:
    """The verdict of :func:`judged_at` at the wider step :func:`on_wider_scale` describes, or None (undecided
    there, or no step wider than twice the first within the element's reach)."""
    a, h, size = element
    first, q = moved
    if not size > 0:
        return None
    s = min(h * max(SAFETY * verdict[2] / (VOUCH * size), RESOLUTION_WIDER), reach(ev, i))
    return judged_at(ev, i, a, s, res, (size, q), verdict[0] == MISMATCH, first) if s > 2 * h else None
