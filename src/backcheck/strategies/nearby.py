"""Elements judged again at points near the one checked, where the function is differentiable.

Where several kinks meet, or where an element's value ties with others' (a median of three equal values),
the gradient a correct backward pass returns is a valid subgradient that the one-sided slopes along the
element's own axis cannot judge. :func:`nearby_verdicts` moves every input a few dozen steps in a random
direction, and in the opposite one, and checks the elements at both points (a backward pass wrong at either has a
bug; one side alone passes a rule whose own threshold sits at the point), and collects the analytic
gradients at many such nearby points (no function evaluations): a valid subgradient at the point lies among
them, as a limit of gradients around it. :func:`recheck_nearby` decides the elements at kinks whose analytic
value lies outside their one-sided slopes; :mod:`backcheck.strategies.ties` those tied in value.
"""

from __future__ import annotations

import numpy as np

from backcheck.bits import BFLOAT16_EPS, dot
from backcheck.errors import NonFiniteError
from backcheck.evaluate import Evaluator
from backcheck.numeric.grad import NOISE_FACTOR, noise_level, roundoff
from backcheck.numeric.noise import local_noise
from backcheck.strategies.beside import right_at_a_nearby_point, witness
from backcheck.strategies.corners import GUIDED_SAMPLES, STALLED, Nearest
from backcheck.strategies.own_rounding import ULPS_AWAY
from backcheck.verdict import (
    KINK,
    MISMATCH,
    NOISY,
    SAFETY,
    Claim,
    Judgement,
    bound,
    is_kink,
    resolution,
)


def _steepening(ev: Evaluator, idx: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Per element, whether a one-sided slope grows as the step shrinks (by more than half again from ``h`` to
    ``h / 16``, where a kink's slopes stay put and a smooth one's move by its curvature): a vertical tangent. f must
    move by more than its rounding at ``h / 16`` (along an axis where f is flat, kinks of both signs cancelling
    there, its rounding alone, divided by a step 16 times smaller, grows 16 times)."""
    out = np.zeros(idx.size, dtype=bool)
    noise = SAFETY * np.broadcast_to(noise_level(ev, ev.local_scale[idx], lazy=True), idx.shape)
    for k, (i, s) in enumerate(zip(idx.tolist(), h.tolist(), strict=True)):
        wide, wide_d = ev.element(i, (s, -s), shrink=True)
        near, near_d = ev.element(i, (s / 16, -s / 16), shrink=True)
        slopes = [abs((p - ev.phi0) / d) for p, d in zip((*wide, *near), (*wide_d, *near_d), strict=True) if d]
        moved = max(abs(p - ev.phi0) for p in near) > noise[k]
        if len(slopes) == 4 and moved:
            out[k] = max(slopes[2:]) > STEEPENING * max(max(slopes[:2]), 1e-300)
    return out


def _drifting(ev: Evaluator, idx: np.ndarray, h: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Per element, whether it lies off 0 by less than its step ``h`` and a one-sided slope, at ``h`` and three
    sixteenfold finer steps, keeps drifting toward the claim ``a`` (each change at least DRIFT of the one before,
    the claim beyond the finest): a slope without a finite limit at the kink beside the point (``p log p`` at p of
    1e-30, whose slopes at steps from 1e-3 read -6.9, -9.7, -12.5, -15.2 toward its derivative -68 at the point;
    a kink's slopes stay put, a smooth function's changes shrink sixteenfold). f must move by more than its
    rounding at the finest step."""
    out = np.zeros(idx.size, dtype=bool)
    noise = SAFETY * np.broadcast_to(noise_level(ev, ev.local_scale[idx], lazy=True), idx.shape)
    x = ev.tree.values()
    for k, (i, s) in enumerate(zip(idx.tolist(), h.tolist(), strict=True)):
        if not 0.0 < abs(float(x[i])) < s:
            continue
        scales = [s / 16.0**m for m in range(4)]
        try:
            phis, disp = ev.element(i, [t for sc in scales for t in (sc, -sc)], shrink=True)
        except NonFiniteError:
            continue  # no finite side at these steps: the element keeps its verdict
        if not (np.all(np.isfinite(phis)) and np.all(disp != 0.0)):
            continue
        if abs(phis[-2] - ev.phi0) <= noise[k] and abs(phis[-1] - ev.phi0) <= noise[k]:
            continue
        for side in (0, 1):
            slopes = (phis[side::2] - ev.phi0) / disp[side::2]
            moves = np.diff(slopes)
            same = np.all(np.sign(moves) == np.sign(moves[-1])) and moves[-1] != 0.0
            kept = np.all(np.abs(moves[1:]) >= DRIFT * np.abs(moves[:-1]))
            toward = np.sign(a[k] - slopes[-1]) == np.sign(moves[-1])
            if same and kept and toward:
                out[k] = True
                break
    return out


#: A one-sided slope whose change, as the step shrinks sixteenfold, keeps this share of its last change drifts
#: without a finite limit (``log h`` keeps all of it; a smooth function's change shrinks sixteenfold).
DRIFT = 0.5
#: A one-sided slope that grows by this factor from the step to a sixteenth of it is unbounded (``1/sqrt(h)``
#: grows by 4 over that range; a kink's or a smooth function's slope changes by far less).
STEEPENING = 1.5
#: How many nearby gradients outline the valid subgradients where several kinks meet.
NEARBY_SAMPLES = 512
#: How far those gradients are sampled, in finite-difference steps (no differences are taken there).
SAMPLE_RADIUS = 1e-3


def recheck_nearby(
    ev: Evaluator, idx: np.ndarray, ambiguous: np.ndarray, j: Judgement, claim: Claim, rng: np.random.Generator
) -> tuple[list[str], np.ndarray]:
    """Decide elements at kinks whose analytic value lies outside the one-sided slopes (``ambiguous``: their
    positions in ``idx``), with :func:`nearby_verdicts`: like ReLU'(0) = 0 in every unit at once, a chain-rule
    subgradient where several kinks meet can lie outside the slopes along a single axis. Without ``regrad`` (a
    precomputed gradient), the elements count as mismatches. With the notes, the flat positions of the elements
    taken as kinks (whose ties by value :func:`~backcheck.strategies.ties.joint_kink_test` moves as a whole: the
    gradients around the point are the backward pass's own, and a rule wrong only where an element leads its tie,
    a top-k's first gradient doubled, gives them)."""
    none = idx[:0]
    if claim.regrad is None:
        j.status[ambiguous] = MISMATCH
        return [
            f"{ambiguous.size} element(s) sit where several kinks meet and their analytic values lie outside "
            "the one-sided slopes; with a precomputed gradient they cannot be re-checked at a nearby point "
            "(pass grad as a function to allow it)."
        ], none
    found = nearby_verdicts(ev, idx, ambiguous, j, claim, rng, tangents=True)
    if found is None:
        j.status[ambiguous], j.bound[ambiguous] = NOISY, np.inf
        return [
            f"{ambiguous.size} element(s) sit where several kinks meet and their analytic values lie outside "
            "the one-sided slopes; f is not finite at the nearby points they would be re-checked at (nor closer), "
            "so they are inconclusive."
        ], none
    fine, poles, unsure = found
    j.status[ambiguous[fine & ~poles]] = KINK
    j.status[ambiguous[~fine]] = MISMATCH
    j.status[ambiguous[poles | unsure]], j.bound[ambiguous[poles | unsure]] = NOISY, np.inf
    notes = crowded_note(int(unsure.sum()))
    if poles.any():
        notes.append(
            f"{int(poles.sum())} element(s) sit where a one-sided slope grows without bound as the step shrinks (a "
            "vertical tangent: sqrt at 0; or a slope that drifts as log's does, p log p at p of 1e-30): no finite "
            "slope is the derivative there, and gradients around the point take any size, so they are "
            "inconclusive whatever the rule claims."
        )
    if (fine & ~poles).any():
        notes.append(
            f"{int((fine & ~poles).sum())} element(s) sit where several kinks meet: their analytic values lie outside "
            "the one-sided slopes along their own axis, but among the gradients around the point, and "
            "the backward pass is right at nearby differentiable points on opposite sides; taken as kinks."
        )
    if (~fine & ~unsure).any():
        notes.append(
            f"{int((~fine & ~unsure).sum())} element(s) at kinks are not valid subgradients: outside the one-sided "
            "slopes and the gradients around the point, or wrong at a nearby differentiable point."
        )
    return notes, idx[ambiguous[fine & ~poles]]


def crowded_note(n: int) -> list[str]:
    """The note for ``n`` elements :func:`nearby_verdicts` could not judge at a nearby point (none if 0)."""
    if not n:
        return []
    return [
        f"{n} element(s) tied in value could not be judged at a nearby point: their analytic values lie among "
        "the gradients around the point, but the nearby points lie farther than the gaps between the array's "
        "distinct values, where other values come within their step (f has kinks closer than a step everywhere "
        "around: a float32 sort of finely rounded values); they are inconclusive."
    ]


def nearby_verdicts(
    ev: Evaluator,
    idx: np.ndarray,
    which: np.ndarray,
    j: Judgement,
    claim: Claim,
    rng: np.random.Generator,
    tangents: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """For the elements ``which`` (positions in ``idx``; ``claim.regrad`` given): whether each is right at the
    nearby points on both sides (:func:`~backcheck.strategies.beside.right_at_a_nearby_point`) and its analytic
    value lies among the gradients around the point, the backward pass right where they were taken (or within
    ``j.hull``, its one-sided slopes: :func:`_among_around`), whether a one-sided slope grows without bound there
    (a vertical tangent: sqrt at 0; with ``tangents``, also where it is right on one side only: its one-sided slopes
    differ along its own axis), and whether, its analytic value among those gradients, it could not be judged at
    the nearby point (other values within its step there); None where f is not finite at the nearby points (nor
    closer)."""
    steps, regrad = claim.steps, claim.regrad
    assert regrad is not None
    sub = idx[which]
    crowded, partly = np.zeros(sub.size, dtype=bool), np.zeros(sub.size, dtype=bool)
    right_nearby = right_at_a_nearby_point(ev, sub, claim, rng, crowded, partly if tangents else None)
    if right_nearby is None:
        return None
    # wrong at the nearby points, every one, on both sides: no gradient around it excuses them
    if not (right_nearby | crowded | partly).any():
        return right_nearby, right_nearby, right_nearby
    among, close, witnessed = _among_around(ev, (sub, which), j, claim, rng, right_nearby | crowded | partly)
    # a vertical tangent (sqrt at 0) is inconclusive whatever the rule claims, right on one side of it or both,
    # and wherever the gradients around it take its value (they take any size there)
    poles = (right_nearby | partly) & (among | witnessed)
    poles[poles] = _steepening(ev, sub[poles], steps[sub[poles]])
    # ... and so is a slope that drifts without a limit toward the claim at a point off the kink by less than a
    # step (p log p at p of 1e-30): the gradients around the point, a few dozen steps off, never reach its value
    drift = (right_nearby | partly) & ~(among | witnessed) & ~poles
    if drift.any():
        drift[drift] = _drifting(ev, sub[drift], steps[sub[drift]], claim.g[sub[drift]])
        poles |= drift
    return right_nearby & among | poles, poles, crowded & among | close & ~poles


def _among_around(
    ev: Evaluator,
    at: tuple[np.ndarray, np.ndarray],
    j: Judgement,
    claim: Claim,
    rng: np.random.Generator,
    asked: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per element of ``at`` (its flat positions and positions in ``j``) that is ``asked``: whether its analytic
    value lies among the gradients a correct backward pass gives around the point (their hull holds the valid
    subgradients; or within ``j.hull``, its one-sided slopes, f's own), each gradient that brings it among them
    a witness the backward pass must be right at (:func:`witness`); whether, wrong at a witness, other values
    came within its step there; and whether it was wrong at one. Sampling stops once every value is inside, or
    wrong at its witness. After :data:`NEARBY_SAMPLES` random moves, up to :data:`GUIDED_SAMPLES` more are sought
    from the moves whose gradients came nearest each value still outside, where one that gives the value itself is
    a witness (:class:`~backcheck.strategies.corners.Nearest`)."""
    sub, which = at
    assert claim.regrad is not None
    lo, hi = j.hull[which, 0].copy(), j.hull[which, 1].copy()
    a0 = claim.g[sub]
    ties = _value_ties(ev, sub, claim.grad_eps[sub])
    shifts = shifts_around(ev, claim, rng)
    below, above = lo <= a0, a0 <= hi
    wrong, close = np.zeros(sub.size, dtype=bool), np.zeros(sub.size, dtype=bool)
    nearest = Nearest(sub.size)
    for n in range(NEARBY_SAMPLES + GUIDED_SAMPLES):
        open_ = ~(below & above | wrong) & asked
        if not open_.any() or (n >= NEARBY_SAMPLES + STALLED and nearest.stalled >= STALLED):
            break
        shift = next(shifts)
        if n >= NEARBY_SAMPLES:
            shift = nearest.toward(n, shift, open_, rng)
        with ev.shifted(shift, evaluate=False):
            # an element still tied there is at the point itself, and its gradient the one under test: not sampled
            free = np.ones(sub.size, dtype=bool) if ties is None else ~_still_tied(moved_point(ev), sub, *ties)
            if not free.any():
                continue
            around = claim.regrad()[sub]
        free &= asked & ~wrong
        nearest.record(shift, np.abs(around - a0), free, open_)
        if n >= NEARBY_SAMPLES:
            # a sought move counts only where the gradient there is the claim itself: the hull of the moves sought
            # toward each value would take in a wrong one too (ReLU'(0) = 2 lies among the gradients of units
            # turned one way and the other, and is the gradient of no move)
            new = free & open_ & (np.abs(around - a0) <= j.bound[which])
            lo, hi = np.where(new, np.minimum(lo, a0), lo), np.where(new, np.maximum(hi, a0), hi)
        else:
            lo = np.where(free, np.minimum(lo, around - j.bound[which]), lo)
            hi = np.where(free, np.maximum(hi, around + j.bound[which]), hi)
            # a gradient that brings the claim among them is a witness: the rule must be right where it was taken
            # (the move scaled up to a few dozen steps stays in its piece of f): a rule wrong in a cone of
            # directions only (two masks turning at the point, x >= -1 and y >= -2) gives its wrong value there,
            # and is right on both sides of the point along most directions
            new = free & ((~below & (lo <= a0)) | (~above & (a0 <= hi)))
        if new.any():
            ok, near = witness(ev, sub[new], claim, shift)
            k = np.flatnonzero(new)
            wrong[k[~ok]], close[k[~ok & near]] = True, True
            below[k[ok]] |= lo[k[ok]] <= a0[k[ok]]
            above[k[ok]] |= a0[k[ok]] <= hi[k[ok]]
    return below & above & ~wrong, close, wrong


def shifts_around(ev: Evaluator, claim: Claim, rng: np.random.Generator, apart: bool = False):  # noqa: ANN202
    """Random moves of the point within :data:`SAMPLE_RADIUS` steps, their scales mixed per array and per element
    (every input in turn can dominate, and narrow cones of sign patterns, all units off, are reached too); the
    first two with the ties within each array broken in the order of their elements, each way (:func:`_in_order`).
    ``apart``: tied elements never share a value where the moves fall below their floor (:func:`_random_shifts`)."""
    moves = _random_shifts(ev, claim, rng, apart)
    for sign in (-1.0, 1.0):
        yield _in_order(ev, claim, sign, next(moves))
    yield from moves


def _random_shifts(ev: Evaluator, claim: Claim, rng: np.random.Generator, apart: bool):  # noqa: ANN202 - endless
    """The random moves of :func:`shifts_around`. A move below a few units in the last place of the gradient's
    dtype (a float32 layer) is raised to that floor by a random share more. With ``apart``, tied elements take
    shares of their own each, whole units apart in a random order: random shares collide on float32's grid, and a
    rule's own tie rule at the collision is no gradient around the point (a sort doubling the gradient of each
    tie's first element summed, along its tie, within the sums so sampled); without, they collide by chance (a
    float32 ReLU input summing two tied values of opposite signs, -1 + 1, and two zeros is off where they do)."""
    steps, values = claim.steps, ev.tree.values()
    leaf_of = np.searchsorted(ev.tree.offsets, np.arange(steps.size), side="right") - 1
    # a shift below a few units in the last place of the gradient's dtype rounds back onto the point itself
    # there (a float32 layer), and the gradient at the point is the one under test: never sampled
    floor = ULPS_AWAY * claim.grad_eps * np.abs(values)
    tied = (_rank_in_groups(np.arange(steps.size), leaf_of, values)[1] > 1) & (floor > 0) if apart else None
    while True:
        scale = 10.0 ** rng.uniform(-3, 0, size=len(ev.tree.leaves))[leaf_of] * np.exp(rng.standard_normal(steps.size))
        shift = SAMPLE_RADIUS * steps * scale * rng.standard_normal(steps.size)
        # raised to the floor by a random share more, each element its own: equal shifts keep tied elements tied
        # (a float32 median of three equal values sampled at its own wrong rule), which no nearby point may
        low = np.abs(shift) < floor
        share = 1 + 63 * rng.random(steps.size)
        if tied is not None and (low & tied).any():
            own = low & tied
            up = shift[own] > 0
            rank, size = _rank_in_groups(rng.random(up.size), leaf_of[own], values[own], up)
            spacing = np.maximum(63 / size, 1.0)  # (the shares' range, in a random order, whole units apart)
            share[own] = 1 + spacing * (rank + rng.random(up.size) / 2)
        yield np.where(low, np.copysign(floor * share, shift), shift)


def _in_order(ev: Evaluator, claim: Claim, sign: float, shift: np.ndarray) -> np.ndarray:
    """``shift`` with the elements of every value tie within an array moved in their order instead: the first
    least, each next one more, all down (``sign`` -1: the first highest) or all up (+1: the first lowest), by
    :data:`~backcheck.strategies.own_rounding.ULPS_AWAY` units in the last place of the gradient's dtype apart (or
    by :data:`SAMPLE_RADIUS` steps over the whole tie, if wider). Frameworks break ties so (a max pool's or an
    argmax's first maximum, a stable sort), and their gradient at a tie is the limit of the gradients along that
    move, one a random move reaches by chance only (an element of a 0/1 image leading every window it ties in,
    among a dozen others). Every element of a tie moves: none is sampled at the point itself."""
    values = ev.tree.values()
    leaf_of = np.searchsorted(ev.tree.offsets, np.arange(values.size), side="right") - 1
    rank, size = _rank_in_groups(np.arange(values.size), leaf_of, values)
    tied = (size > 1) & np.isfinite(values)
    unit = np.maximum(SAMPLE_RADIUS * claim.steps / size, ULPS_AWAY * claim.grad_eps * np.abs(values))
    out = shift.copy()
    out[tied] = sign * (rank[tied] + 1) * unit[tied]
    return out


def _rank_in_groups(within: np.ndarray, *by: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per element, its place by ``within`` (0 for the first) among the elements equal to it in every key of
    ``by`` (one array's elements of one value), and how many those are."""
    n = within.size
    order = np.lexsort((within, *by[::-1]))
    new = np.zeros(n, dtype=bool)
    new[:1] = True
    for key in by:
        ordered = key[order]
        new[1:] |= ordered[1:] != ordered[:-1]
    starts = np.flatnonzero(new)
    sizes = np.diff(np.r_[starts, n])
    run = np.repeat(np.arange(starts.size), sizes)
    rank, size = np.empty(n), np.empty(n)
    rank[order] = np.arange(n) - starts[run]
    size[order] = sizes[run]
    return rank, size


def _value_ties(ev: Evaluator, sub: np.ndarray, eps: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The elements (flat positions) of the ties of ``sub``'s elements within their arrays that hold at most
    :data:`SMALL_TIE` elements, the tie of each (a number), and the coarsest epsilon of their gradients' dtypes (the
    precision the backward pass reads them in); None where no element of ``sub`` ties."""
    groups = ev.tree.ties(sub, within_arrays=True)
    if not groups:
        return None
    small = [g for g in groups if g.size <= SMALL_TIE]
    members = np.concatenate(small) if small else np.empty(0, dtype=np.intp)
    tie = np.repeat(np.arange(len(small)), [g.size for g in small])
    return members, tie, float(np.max(eps)) if eps.size else 0.0


def _still_tied(values: np.ndarray, sub: np.ndarray, members: np.ndarray, tie: np.ndarray, eps: float) -> np.ndarray:
    """Per element of ``sub``, whether two elements of its tie (``members`` of tie ``tie``) still hold one value at
    the moved point, as a backward pass whose dtype's epsilon is ``eps`` reads them (bfloat16 emulated: float32
    rounded to 8 bits of mantissa): a rule that treats a tie apart may give any element of it another value there (a
    median's rule written for a tie of three puts 2g on its first element while the other two still tie)."""
    tied = np.zeros(values.size, dtype=bool)
    if members.size:  # (every tie at once: sorted by tie, then by value, a repeat sits beside its first)
        moved = as_read(values[members], eps)
        order = np.lexsort((moved, tie))
        v, t = moved[order], tie[order]
        again = (t[1:] == t[:-1]) & (v[1:] == v[:-1])
        tied[members[np.isin(tie, t[1:][again])]] = True
    return tied[sub]


#: A tie of at most this many elements is held as a whole while two of them still tie (a rule may treat the tie
#: apart); a value that more elements hold (integer data, an image of 0s and 1s) is held by chance, and a point
#: where two of them collide again is sampled as any other (skipping those cost the samples a ReLU network on
#: integer data needed).
SMALL_TIE = 8


def as_read(values: np.ndarray, eps: float) -> np.ndarray:
    """``values`` rounded to the dtype whose epsilon is ``eps`` (bfloat16, float16, float32, or as they are)."""
    with np.errstate(over="ignore", invalid="ignore"):
        if eps >= BFLOAT16_EPS:
            bits = values.astype(np.float32).view(np.uint32)
            return ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32).view(np.float32)
        if eps >= 2.0**-11:
            return values.astype(np.float16)
        if eps >= 2.0**-24:
            return values.astype(np.float32)
    return values


def moved_point(ev: Evaluator) -> np.ndarray:
    """The point as the evaluator has moved it (its working arrays), as one float64 vector."""
    return np.concatenate([leaf.work.reshape(-1).astype(np.float64) for leaf in ev.tree.leaves])


#: Halvings of a group's step at most while its one-sided slopes still move by more than :data:`UNSETTLED` of
#: their size: f bends on a scale finer than the step there (``-log(p)`` clipped at 1e-7, stepped by 6e-6, whose
#: slopes at that step are a tenth of the ones at the bound), and the slopes of a step that wide decide nothing.
GROUP_HALVINGS = 24
UNSETTLED = 0.125


def slopes_along(
    ev: Evaluator, group: np.ndarray, v: np.ndarray, claim: Claim, g: np.ndarray | None = None
) -> tuple[float, float, float]:
    """The one-sided slopes of ``f`` along ``v`` (over ``group``) at half the group's smallest step, or at a finer
    step where they still move with it, and their slack: how far they moved from twice the step, the round-off,
    the analytic side's resolution, and what the rounded displacements take from ``g . v`` (the claim is weighed
    against ``t v``, the move asked for). ``g``: the analytic values of ``group`` (the claim's at the point)."""
    return weigh_along(ev, group, v, claim, g)[:3]


def weigh_along(
    ev: Evaluator,
    group: np.ndarray,
    v: np.ndarray,
    claim: Claim,
    g: np.ndarray | None = None,
    most: float = np.inf,
    target: float | None = None,
) -> tuple[float, float, float, float]:
    """:func:`slopes_along`, and the slack of ``target`` (the claim's derivative along ``v``) against the slopes'
    mean. Where the gap between the slopes shrinks with the step as a smooth function's does (not
    :func:`~backcheck.verdict.is_kink`), that mean is a central difference, and its slack holds its own change from
    twice the step, not the slopes' (a curvature's ``f'' t``, which hid a tie's summed gradient 5% off in a max pool
    of squares); else the slopes'. Either holds ``f``'s rounding measured along the move where the modelled one
    alone would let ``target`` pass (:func:`_quieter`)."""
    gs = claim.g[group] if g is None else g
    t = min(float(np.min(claim.steps[group])), most)
    phis, disps = ev.direction(group, v, (t, -t, t / 2, -t / 2))
    fwd1, bwd1 = (phis[0] - ev.phi0) / t, (ev.phi0 - phis[1]) / t
    fwd, bwd = (phis[2] - ev.phi0) / (t / 2), (ev.phi0 - phis[3]) / (t / 2)
    plus, minus = disps[2], disps[3]
    for _ in range(GROUP_HALVINGS):
        moving = max(abs(fwd - fwd1), abs(bwd - bwd1))
        if moving <= UNSETTLED * max(abs(fwd), abs(bwd)) or moving <= SAFETY * 2 * roundoff(ev, t / 2):
            break
        t /= 2
        phis, (plus, minus) = ev.direction(group, v, (t / 2, -t / 2))
        fwd1, bwd1 = fwd, bwd
        fwd, bwd = (phis[0] - ev.phi0) / (t / 2), (ev.phi0 - phis[1]) / (t / 2)
    res = float(np.sum(resolution(gs, gs, 1.0, claim.rms[group]) * claim.grad_eps[group]))
    disp_err = (abs(dot(gs, plus - t / 2 * v)) + abs(dot(gs, minus + t / 2 * v))) / t
    trunc, noise = max(abs(fwd - fwd1), abs(bwd - bwd1)), 2 * roundoff(ev, t / 2)
    central = abs((fwd + bwd) - (fwd1 + bwd1)) / 2
    if target is None:
        slack = bound(trunc, noise, res) + disp_err
        return fwd, bwd, slack, slack
    smooth = min(trunc, central)
    rests = (bound(trunc, 0.0, res) + disp_err, bound(smooth, 0.0, res) + disp_err)
    noise = _quieter(ev, (group, v, t / 2, gs), (fwd, bwd, target), rests, noise, phis)
    trunc_claim = trunc if is_kink(abs(fwd - bwd), abs(fwd1 - bwd1), noise) else smooth
    return fwd, bwd, bound(trunc, noise, res) + disp_err, bound(trunc_claim, noise, res) + disp_err


def _quieter(
    ev: Evaluator,
    move: tuple,
    slopes: tuple[float, float, float],
    rests: tuple[float, float],
    noise: float,
    phis: np.ndarray,
) -> float:
    """The rounding of a move's one-sided slopes: ``noise`` (modelled: 8 units in the last place of the largest
    output seen), or where that model decides that the claim's derivative along the move (``slopes``' third) lies
    within the slack, the move differentiable by it and the claim beyond the slack's other terms (``rests``: the
    slopes' and the mean's), the noise of ``phi`` measured along the move (:func:`~backcheck.numeric.noise.local_noise`,
    24 evaluations, at most :data:`MEASURED_MOVES` per check), at least half a unit in the last place of ``phi`` there
    (``phis``, the values the slopes took) and of the outputs every element of the move changes (``ev.local_scale``).
    A float32 max pool on an integer image copies its inputs: f does not round along a tie's move at all, and the
    model's slack (35 times f's own rounding) passed a window's gradient 1% off at a tie; a float64 top-k's output
    sums the tied values, rounded to its own last place: a layer's phi (its outputs' change) is far smaller."""
    fwd, bwd, target = slopes
    model = bound(0.0, noise, 0.0)
    if not (abs(fwd - bwd) <= model + rests[0] and rests[1] < abs(target - (fwd + bwd) / 2) <= model + rests[0]):
        return noise  # (the model decides nothing the measured noise could change)
    if ev.measured_moves >= MEASURED_MOVES:
        return noise
    ev.measured_moves += 1
    group, v, half, gs = move
    sigma = local_noise(ev, group, half * v, gs)
    # (the outputs' own rounding is no noise along the move: about the same at every point of it)
    moved = float(np.min(ev.local_scale[group], initial=np.inf)) if len(group) else 0.0
    level = max(NOISE_FACTOR * sigma, ev.out_eps * (max(abs(ev.phi0), float(np.max(np.abs(phis)))) + moved) / 2)
    return min(noise, 2 * level / half)


#: Moves along which :func:`weigh_along` measures ``phi``'s noise at most, per check (24 evaluations each).
MEASURED_MOVES = 32
