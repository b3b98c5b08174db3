"""A claimed derivative along a move of several elements, judged beside the point and among the sums around it.

Moving a group of elements together (a tie's, or every kink at once) is differentiable where their kinks cancel
along the move (ReLU inputs at 0 under integer data), and a valid chain-rule subgradient's sum need not be that
derivative there. :func:`agrees_around` tells such a claim from a wrong one (a max's gradient routed to every tied
element): right along the move beside the point, right at nearby points element by element, and its sum among the
sums of the gradients around the point, or at a point a search toward it reaches. Used by
:mod:`backcheck.strategies.ties` and by group testing (:mod:`backcheck.strategies`).
"""

from __future__ import annotations

import numpy as np

from backcheck.bits import dot
from backcheck.errors import NonFiniteError
from backcheck.evaluate import Evaluator
from backcheck.strategies.beside import right_at_a_nearby_point
from backcheck.strategies.corners import GUIDED_SAMPLES, Nearest
from backcheck.strategies.nearby import SAMPLE_RADIUS, as_read, moved_point, shifts_around, weigh_along
from backcheck.strategies.own_rounding import ULPS_AWAY
from backcheck.verdict import SAFETY, Claim, resolution

#: At most this many moved elements are checked at a nearby point before the gradients around it are trusted.
AROUND_CHECKED = 32
#: Gradients sampled around a point to outline the valid subgradients along one direction.
AROUND_SAMPLES = 64
#: The rounding (relative) above which a function or a gradient computes in float32 or coarser.
COARSE_EPS = 1e-10
#: Moves sought in a row that bring the sum no nearer end the search (a max's rule routing the gradient to every
#: tied element sums beyond every sum around the point, and cost four times the check's time sought for 128).
SOUGHT_STALLED = 32


def agrees_around(ev: Evaluator, claim: Claim, v: np.ndarray, rng: np.random.Generator, held: float = 0.0) -> bool:
    """Whether the claimed gradient's derivative along ``v`` (over the whole point) lies among the gradients' around
    the point, the backward pass right at a nearby point at up to :data:`AROUND_CHECKED` of the moved elements:
    a valid chain-rule subgradient where the move crosses kinks of both signs (integer data under ReLUs), which a
    wrong rule at a tie is not (its sum lies beyond every sum around the point, where the tie is broken).

    After :data:`AROUND_SAMPLES` random moves, where f or the gradient computes in float32 or coarser (whose moves'
    bounds leave a sum room), up to :data:`GUIDED_SAMPLES` more are sought toward the claim's sum
    from the moves whose sums came nearest (:class:`~backcheck.strategies.corners.Nearest`), where one whose sum is
    the claim's (within ``held``, the bound of the move that found the claim off) is a witness: the backward pass
    must not be wrong along ``v`` there. The convention's subgradient (ReLU'(0) = 0 in every unit at 0) is a corner
    of the sums: every unit the move turns adds to them one way, and random moves, turning half of them, did not
    reach it (a float32 ReLU layer on integer data, a row's equal weights moved together). A sought move where two
    moved elements of a tie meet again is skipped: the rule's own tie value is no gradient around the point."""
    if claim.regrad is None:
        return False
    moved = np.flatnonzero(v)
    coef = v[moved] / np.max(np.abs(v[moved]))  # (a move of the group's own steps: v may be scaled by them)
    if _right_along(ev, claim, (moved, coef)) is False:
        return False
    checked = moved if moved.size <= AROUND_CHECKED else rng.choice(moved, AROUND_CHECKED, replace=False)
    right = right_at_a_nearby_point(ev, np.sort(checked), claim, rng)
    if right is None or not right.all():
        return False
    target = float(dot(np.nan_to_num(claim.g[moved]), v[moved]))
    slack = float(
        dot(resolution(claim.g[moved], claim.g[moved], 1.0, claim.rms[moved]) * claim.grad_eps[moved], np.abs(v[moved]))
    )
    lo, hi = np.inf, -np.inf
    ties = [t[np.isin(t, moved)] for t in ev.tree.ties(moved, within_arrays=True)]  # (the moved ones' own)
    ties, eps = [t for t in ties if t.size > 1], float(np.max(claim.grad_eps[moved]))
    shifts, open_ = shifts_around(ev, claim, rng, apart=True), np.ones(1, dtype=bool)
    nearest = Nearest(1, _farthest(ev, claim))
    # (sought in float32 or coarser only: a float64 move's bound leaves a corner's sum no room short of its own)
    sought = GUIDED_SAMPLES if max(ev.out_eps, eps) > COARSE_EPS else 0
    for n in range(AROUND_SAMPLES + sought):
        if n >= AROUND_SAMPLES + SOUGHT_STALLED and nearest.stalled >= SOUGHT_STALLED:
            break
        shift = next(shifts) if n < AROUND_SAMPLES else nearest.toward(n, next(shifts), open_, rng)
        with ev.shifted(shift, evaluate=False):
            if n >= AROUND_SAMPLES and _collide(ev, ties, eps):
                continue  # (sought, not by chance: a tie's values meeting again on a float32 grid give its own rule)
            p = float(dot(np.nan_to_num(claim.regrad()[moved]), v[moved]))
        nearest.record(shift, np.array([abs(p - target)]), open_, open_)
        if n < AROUND_SAMPLES:
            lo, hi = min(lo, p), max(hi, p)
            if lo - slack <= target <= hi + slack:
                return True
        elif abs(p - target) <= max(slack, held):
            return _right_at(ev, claim, shift, (moved, coef)) is not False
    return False


def _collide(ev: Evaluator, ties: list[np.ndarray], eps: float) -> bool:
    """Whether two elements of one of ``ties`` hold one value at the point as the evaluator has moved it, as a
    backward pass whose dtype's epsilon is ``eps`` reads them."""
    values = moved_point(ev)
    return any(np.unique(as_read(values[t], eps)).size < t.size for t in ties)


def _right_along(ev: Evaluator, claim: Claim, along: tuple[np.ndarray, np.ndarray]) -> bool | None:
    """Whether the backward pass's derivative along ``coef`` over ``moved`` (``along``) is right beside the point,
    where every tie is broken in the order of its elements, each way (:func:`shifts_around`: a thousandth of a
    step, far inside the gaps between distinct values); None where the move leaves the piece of f there
    (:func:`_one_piece`), or f is not finite. A rule wrong at one element of a tie of 72 values (a sort's gradient
    5% off at one rank) sums along the tie beyond its derivative at every point around: up to
    :data:`AROUND_CHECKED` of the moved elements, checked one by one at a point 32 steps away, missed the one that
    takes the error; along the move it shows whichever does.
    """
    shifts = shifts_around(ev, claim, np.random.default_rng(along[0].size), apart=True)
    verdict = None
    for shift in (next(shifts), next(shifts)):
        verdict = _right_at(ev, claim, shift, along)
        if verdict is False:
            return False
    return verdict


def _right_at(ev: Evaluator, claim: Claim, shift: np.ndarray, along: tuple[np.ndarray, np.ndarray]) -> bool | None:
    """Whether the backward pass's derivative along ``coef`` over ``moved`` (``along``) is right at the point moved
    by ``shift``; None where the move leaves the piece of f there (:func:`_one_piece`), or f is not finite."""
    assert claim.regrad is not None
    moved, coef = along
    try:
        with ev.shifted(shift):
            g_near = claim.regrad()[moved]
            target = float(dot(np.nan_to_num(g_near), coef))
            fwd, bwd, slack, held = weigh_along(ev, moved, coef, claim, g_near, target=target)
        if not (abs(fwd - bwd) <= slack and _one_piece(ev, claim, (shift, moved, coef), g_near, slack)):
            return None  # a kink crossed (ReLU inputs at 0 moved a hair, whose kinks cancel along v): no conclusion
    except NonFiniteError:
        return None
    return bool(abs(target - (fwd + bwd) / 2) <= held)


def _one_piece(ev: Evaluator, claim: Claim, move: tuple, g_near: np.ndarray, slack: float) -> bool:
    """Whether the backward pass's derivative along the move (``(shift, moved, coef)``: from the point shifted by
    ``shift``, ``coef`` over ``moved``, a step of theirs either way) stays within ``slack`` of the one at the
    shifted point (``g_near``): the move stays on one piece of f. Kinks that cancel along it (ReLU inputs a hair
    from 0 under integer weights) leave f's slopes alike on both sides, and a gradient there that is no
    derivative along it; the gradient across them changes.

    Across such kinks it changes alike on both sides (units turn on either way) and by as much at half the move:
    a shift far smaller than the step (a float32 step) leaves the point's own kinks within the move. A smooth f's
    gradient changes oppositely on the two sides, its even part (f''' t^2 / 2) a quarter as large at half the
    move. An even change of 6% of the derivative hid within ``slack``, a float32 difference's
    bound, and a right rule failed at the shifted point."""
    shift, moved, coef = move
    assert claim.regrad is not None
    t = float(np.min(claim.steps[moved]))
    here = float(dot(np.nan_to_num(g_near), coef))
    res = resolution(g_near, g_near, 1.0, claim.rms[moved]) * claim.grad_eps[moved]
    rounding = SAFETY * float(dot(res, np.abs(coef)))
    even = []
    for part in (1.0, 0.5):
        change = []
        for side in (part * t, -part * t):
            delta = shift.copy()
            delta[moved] += side * coef
            with ev.shifted(delta, evaluate=False):
                change.append(float(dot(np.nan_to_num(claim.regrad()[moved]), coef)) - here)
        if not max(abs(change[0]), abs(change[1])) <= slack:
            return False
        even.append(abs(change[0] + change[1]) / 2)
        if even[0] <= rounding:
            return True  # (no even change beyond the gradient's rounding: one piece, or jumps that cancel)
    return even[1] <= even[0] / 2


def _farthest(ev: Evaluator, claim: Claim) -> np.ndarray:
    """The largest move a search toward a corner of the gradients around the point makes, per element: a few
    hundred times the random moves' radius (half a step), and their floor's largest share."""
    floor = ULPS_AWAY * claim.grad_eps * np.abs(ev.tree.values())
    return np.maximum(SOUGHT_REACH * SAMPLE_RADIUS * claim.steps, 64 * floor)


#: Random moves' radii (:data:`SAMPLE_RADIUS` steps) a move sought toward a corner reaches at most.
SOUGHT_REACH = 512


__all__ = ["AROUND_CHECKED", "AROUND_SAMPLES", "agrees_around"]
