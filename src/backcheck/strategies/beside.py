"""The backward pass judged at points a few dozen steps beside the one checked, where f is differentiable.

:func:`right_at_a_nearby_point` moves the point in a random direction and in the opposite one and checks elements
there, element by element, as at the point: a backward pass wrong at either point has a bug. :func:`witness`
checks one at a move of its own (a sample of the gradients around the point, scaled up). Used by
:mod:`backcheck.strategies.nearby`.
"""

from __future__ import annotations

import numpy as np

from backcheck.errors import NonFiniteError
from backcheck.evaluate import Evaluator
from backcheck.judgement import judge
from backcheck.verdict import KINK, OK, Claim, FirstDifferences, Judgement, resolution, typical_size

#: How far the nearby points lie, in finite-difference steps.
NEARBY = 32.0
#: The gap opened on either side of a tied element tried again at a nearby point, in its steps (its differences,
#: and the refinement's, stay clear of every other element of its value).
TIE_CLEARANCE = 4.0
#: Fractions of the nearby shift tried in turn where f is not finite at the shifted point.
NEARBY_SHRINK = (1.0, 1.0 / 16, 1.0 / 256)


def witness(ev: Evaluator, sub: np.ndarray, claim: Claim, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per element of ``sub``, whether the backward pass is right at the point moved along ``shift`` (a sample of
    the gradients around the point) scaled up to :data:`NEARBY` steps (RMS), and whether, wrong there, other values
    came within its step (see :func:`_right_on_one_side`); where f is not finite there, wrong and close."""
    h = claim.steps
    scale = np.divide(shift, h, out=np.zeros_like(shift), where=h > 0)
    size = float(np.sqrt(np.mean(scale**2))) if scale.size else 0.0
    if not size > 0:
        return np.zeros(sub.size, dtype=bool), np.ones(sub.size, dtype=bool)
    right, close = _right_on_one_side(ev, sub, claim, shift * (NEARBY / size))
    if right is None:
        return np.zeros(sub.size, dtype=bool), np.ones(sub.size, dtype=bool)
    return right, close


def right_at_a_nearby_point(
    ev: Evaluator,
    sub: np.ndarray,
    claim: Claim,
    rng: np.random.Generator,
    crowded: np.ndarray | None = None,
    partly: np.ndarray | None = None,
) -> np.ndarray | None:
    """Per element of ``sub`` (flat positions; ``claim.regrad`` given), whether the backward pass is right there at
    the points a few dozen steps away in a random direction and in the opposite one, both (or closer, where f is
    not finite there); None where f is not finite at any of them on either side. One side alone vouches for
    nothing: a rule whose own mask turns at the point (``x >= -1`` for a ReLU at an integer ``x = -1``, where the
    ReLU is flat on both sides) is right on one side of its threshold and wrong on the other, and a random move
    lands on its right side half the time; the opposite move then lands on the wrong one, whatever the direction.
    A correct backward pass is right on both. An element wrong on a side whose value ties with others' is tried
    once more there, clear of the rest of its tie (:func:`_clear_of_its_tie`); ``crowded`` (if given) is set, in
    place, where it is wrong on a side but other values came within its step there (:func:`_crowded`), and right
    or so on the other; ``partly`` (if given; every element is then tried on both sides) where it is right on one
    side only."""
    direction = nearby_direction(ev, claim, rng)
    edge = sorted(ev.one_sided)
    for flip in (False, True) if edge else (False,):
        # elements on the edge of f's domain (x**1.5 at 0) keep their move on both sides, its finite one if any
        first = direction.copy()
        first[edge] *= -1.0 if flip else 1.0
        second = -first
        second[edge] = first[edge]
        found = _on_both_sides(ev, sub, claim, (first, second), partly is not None)
        if found is not None:
            right, near, some = found
            if crowded is not None:
                crowded[:] = near & ~right
            if partly is not None:
                partly[:] = some & ~right
            return right
    return None


def _on_both_sides(
    ev: Evaluator, sub: np.ndarray, claim: Claim, sides: tuple[np.ndarray, np.ndarray], every: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Per element of ``sub``: right at both moves ``sides``; right, or wrong with other values within its step, at
    each; right at one. The second side is tried only where the first leaves it open (``every``: always)."""
    right, near = np.ones(sub.size, dtype=bool), np.zeros(sub.size, dtype=bool)
    some = np.zeros(sub.size, dtype=bool)
    for side in sides:
        # (wrong on the first side, and not crowded there: wrong, unless asked on which sides)
        open_ = np.arange(sub.size) if every else np.flatnonzero(right | near)
        if not open_.size:
            break
        now, close = _right_on_one_side(ev, sub[open_], claim, side)
        if now is None:
            return None
        near[open_] = (near[open_] | right[open_]) & (now | close)
        right[open_] &= now
        some[open_] |= now
    return right, near, some


def _right_on_one_side(
    ev: Evaluator, sub: np.ndarray, claim: Claim, direction: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray]:
    """Per element of ``sub``, whether the backward pass is right at the point moved by ``direction`` (tried again
    clear of its tie where wrong and tied: :func:`_clear_of_its_tie`), and whether, wrong there still, other
    values came within its step (:func:`_crowded`); None (first) where f is not finite there nor closer."""
    crowded = np.zeros(sub.size, dtype=bool)
    right = _right_at(ev, sub, claim, direction)
    if right is None or right.all():
        return right, crowded
    wrong = np.flatnonzero(~right)
    apart = _clear_of_its_tie(ev, sub[wrong], claim, direction)
    if apart is not None:
        again = _right_at(ev, sub[wrong], claim, apart)
        if again is not None:
            right[wrong] = again
            still = wrong[~again]
            crowded[still] = _crowded(ev, sub[still], claim.steps, apart)
    return right, crowded


def _crowded(ev: Evaluator, sub: np.ndarray, steps: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Per element of ``sub`` (flat positions, each in a tie of values at the point), whether at the point moved
    by ``shift`` (its tie cleared around it) another element of its array lies within its step of it: the move
    went farther than the gaps between the array's distinct values (a float32 sort of values rounded to 0.1,
    stepped by 5e-3 and moved 32 steps), its differences there cross other kinks, and being wrong there is no
    sign of a wrong rule (:func:`nearby_verdicts` calls them inconclusive)."""
    out = np.zeros(sub.size, dtype=bool)
    if not sub.size:
        return out
    now = ev.tree.values() + shift
    tied = np.isin(sub, np.concatenate(ev.tree.ties(sub, within_arrays=True) or [sub[:0]]))
    leaf_of = np.searchsorted(ev.tree.offsets, sub, side="right") - 1
    for k in np.flatnonzero(tied):
        leaf = ev.tree.leaves[int(leaf_of[k])]
        values = np.sort(now[leaf.offset : leaf.offset + leaf.size])
        i, h = int(sub[k]), float(steps[sub[k]])
        lo, hi = np.searchsorted(values, [now[i] - h, now[i] + h])
        out[k] = hi - lo > 1  # (itself, and another)
    return out


def _right_at(ev: Evaluator, sub: np.ndarray, claim: Claim, direction: np.ndarray) -> np.ndarray | None:
    """Per element of ``sub``, whether the backward pass is right at the point moved by ``direction`` (or by a
    fraction of it, where f is not finite there); None where f is not finite at any of them."""
    for shrink in NEARBY_SHRINK:  # a nearby point outside f's domain (a softmax saturated by large steps)
        try:
            near = _judged_at(ev, sub, claim, direction * shrink)
        except NonFiniteError:
            continue
        return np.isin(near.status, (OK, KINK))
    return None


def _judged_at(ev: Evaluator, sub: np.ndarray, claim: Claim, shift: np.ndarray) -> Judgement:
    """The elements ``sub`` judged at the point moved by ``shift`` as at the point itself, against the backward
    pass there (raises :class:`NonFiniteError` where f is not finite there)."""
    assert claim.regrad is not None
    with ev.shifted(shift):
        g_near = claim.regrad()
        first = FirstDifferences(*ev.first_differences(sub, claim.steps))
        a = g_near[sub]
        res = resolution(a, first.central, 1.0, np.full_like(a, typical_size(g_near))) * claim.grad_eps[sub]
        return judge(ev, sub, a, claim.steps[sub], first, res, claim.tol)


def nearby_direction(ev: Evaluator, claim: Claim, rng: np.random.Generator) -> np.ndarray:
    """A random move of the point :data:`NEARBY` steps long per element (as little as its step shrank where that
    did at the edge of f's domain)."""
    direction = NEARBY * claim.steps * rng.standard_normal(claim.steps.size)
    for i, factor in ev.shrunk.items():
        direction[i] *= factor
    return direction


def _clear_of_its_tie(ev: Evaluator, sub: np.ndarray, claim: Claim, direction: np.ndarray) -> np.ndarray | None:
    """``direction`` with a gap of :data:`TIE_CLEARANCE` steps opened on either side of each element of ``sub``
    whose value ties with others' in its array, the tie's order kept (each element of it moved up by the gaps
    opened below it); None where no element of ``sub`` ties. A tie of many elements (a sort of a row of -1/0/1)
    moved a few dozen steps at random lies closer than one step apart somewhere, and an element's own differences
    there cross its neighbours'; with the gaps they cross none, and the elements keep their order: the same piece
    of f (the same element still leads, or is the median), a few steps farther only."""
    groups = ev.tree.ties(sub, within_arrays=True)
    if not groups:
        return None
    apart = direction.copy()
    for group in groups:
        order = group[np.argsort(direction[group], kind="stable")]
        mine = np.isin(order, sub).astype(float)
        below = np.cumsum(mine) - mine
        apart[order] = direction[order] + TIE_CLEARANCE * np.max(claim.steps[group]) * (2 * below + mine)
    return apart


def nearby_bounds(ev: Evaluator, sub: np.ndarray, claim: Claim, rng: np.random.Generator) -> np.ndarray:
    """Per element of ``sub``, the wider of the bounds of its judgement at the points :data:`NEARBY` steps away in
    a random direction and in the opposite one (inf where f is not finite at either): the least error that being
    right there rules out. A float32 loss of 5000 judges an element there within 3.9, beside a claim 0.8 off."""
    direction = nearby_direction(ev, claim, rng)
    try:
        return np.maximum(*(_judged_at(ev, sub, claim, side).bound for side in (direction, -direction)))
    except NonFiniteError:
        return np.full(sub.size, np.inf)
