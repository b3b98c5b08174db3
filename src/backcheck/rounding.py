"""What the rounding of f's value hides from a difference, judged after the elements' own refinement.

- Outputs whose true change rounds away at an element's step (:func:`rounded_away`): a layer's difference is
  taken over the outputs that moved, and an output whose true change is below its rounding (a confident
  softmax's largest probability, moved by 1e-19 when a tiny logit moves by its step, against a rounding of
  1e-16) adds nothing; the element's numeric derivative misses its term, with a bound from the moved outputs'
  tiny rounding alone. Where wider moves of the element show it moves such outputs, the element is bounded by
  every output's rounding instead.
- A rule claiming a change below the rounding of intermediates of its elements' size, where no element of its
  array moves f (:func:`below_rounding_of_inputs`), and a phi of exactly 0 (:func:`still_at_zero`).
- The size of f's rounding steps near an element (:func:`rounding_unit`), and the quanta its moves are multiples
  of (:func:`quantum`, :func:`quanta_floor`): where an element's step moves f by such units only
  (:func:`moves_by_rounding`), refinement judges it again at a wider step, where a verdict must agree with finer
  differences within their rounding (:func:`agrees`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backcheck.bits import power_of_two_grid
from backcheck.errors import BackcheckError
from backcheck.evaluate import Evaluator
from backcheck.numeric.grad import noise_level, roundoff
from backcheck.tree import Leaf
from backcheck.verdict import MISMATCH, NOISY, OK, SAFETY, TINY, VOUCH, WIDE_AGREEMENT, FirstDifferences, Four, bound


def rounded_away(
    ev: Evaluator,
    idx: np.ndarray,
    values: tuple[np.ndarray, np.ndarray],
    first: FirstDifferences,
    res: np.ndarray,
    typical: np.ndarray | None,
    verdicts: tuple[np.ndarray, np.ndarray],
) -> None:
    """Mismatches that the rounding of the whole output explains, where the element's true change of some
    outputs fell below their resolution and rounded to nothing: a confident softmax's largest probability, which
    moves by the tiny others' change, 1e-17 against its rounding of 1e-16; an iterative solve's far
    coefficients. A difference over the outputs that moved misses those changes. Where wider moves of the element
    move outputs clearly that its own steps moved by their rounding at most (:func:`_coupled_below_resolution`),
    the element is bounded by every output's rounding: a pass where that sees errors of :data:`VOUCH` of its size
    or of its tensor's typical one, else inconclusive (a wrong element of that size cannot be told from the
    rounding)."""
    (analytic, numeric), (status, limit) = values, verdicts
    size = np.maximum(np.abs(analytic), np.abs(numeric))
    # an element tiny beside its tensor, or one whose own step moved f (outputs of its own moved, others may
    # have rounded away); one that left f exactly still is no such case (a forgotten mask: a kink a larger
    # step crosses would look coupled)
    candidate = (numeric != 0) if typical is None else (numeric != 0) | (size < TINY * typical)
    if typical is not None:
        size = np.maximum(size, typical)
    whole = bound(0.0, roundoff(ev, np.abs(first.span)), res)  # every output's rounding (no scale: the largest)
    for k in np.flatnonzero((status == MISMATCH) & candidate & (np.abs(analytic - numeric) <= whole)).tolist():
        if int(idx[k]) in ev.wider:
            continue  # judged at a wider step, whose bound is the last word on it
        if _coupled_below_resolution(ev, int(idx[k]), float(first.disp_plus[k])):
            limit[k] = max(float(limit[k]), float(whole[k]))
            status[k] = OK if limit[k] <= VOUCH * size[k] else NOISY


#: Steps, as multiples of the element's own (the first) and of its size (at least 1, the others), at which an
#: element is moved to see whether outputs its own step left exactly unchanged depend on it: a confident
#: softmax's largest probability moves by a tiny one's change, which rounds away below a tenth of its size
#: where the tiny one is 1e-15 and needs a step of its size where it is 1e-17.
COUPLING_STEP = 1024.0
COUPLING_SIZES = (0.1, 1.0)


def _coupled_below_resolution(ev: Evaluator, i: int, h: float) -> bool:
    """Whether element ``i`` moves, at a larger step, outputs that its own steps ``+-h`` moved by their rounding at
    most (:data:`WIDE_AGREEMENT` units in their last place: a confident softmax's largest probability, moved by a
    tiny one's change; an iterative solve's far coefficients), rather than outputs of its own only (an
    elementwise unit: its other outputs never move, whatever the step, and its own moved clearly; a float32
    GELU's tail stays its own). Up to eight evaluations, only for mismatches that every output's rounding
    explains."""
    plus, minus = output_changes(ev, i, h), output_changes(ev, i, -h)
    if plus is None or minus is None:
        return False
    floors = [_unit(ev) * np.abs(y0) for y0 in ev.output.base]
    blurred = [(p <= f) & (m <= f) for p, m, f in zip(plus, minus, floors, strict=True)]
    if not any(b.any() for b in blurred):
        return False  # every output moved clearly at the element's own step: none rounded away
    leaf, local = ev.tree.locate(i)
    size = max(abs(float(leaf.original.reshape(-1)[local])), 1.0)
    for w in (COUPLING_STEP * h, *(f * size for f in COUPLING_SIZES)):
        for step in (w, -w) if w > h else ():  # (both ways: a larger logit leaves the largest probability at 1)
            wide = output_changes(ev, i, step)
            if wide is not None and any(
                bool((b & (c > f)).any()) for b, c, f in zip(blurred, wide, floors, strict=True)
            ):
                return True
    return False


def output_changes(ev: Evaluator, i: int, step: float) -> list[np.ndarray] | None:
    """How far a move of element ``i`` by ``step`` moves each output from the base point (per output array); None
    for a loss (one output), or where ``phi`` is not finite there or the move raises (a domain's edge)."""
    try:
        phis, _ = ev.element_anew(i, (step,))  # (a remembered value would leave another call's outputs to read)
    except BackcheckError:
        return None
    last, base = ev.output.last, ev.output.base
    if not last or len(last) != len(base) or not np.all(np.isfinite(phis)):
        return None
    return [np.abs(y - y0) for y, y0 in zip(last, base, strict=True)]


def still_at_zero(
    ev: Evaluator, idx: np.ndarray, first: FirstDifferences, status: np.ndarray, limit: np.ndarray
) -> None:
    """Passing elements along which a ``phi`` of exactly 0, with no outputs of any size, stood exactly still: held
    to the change of one rounding unit of terms of unit size over their span, not to the rounding of 0. A value of
    exactly 0 is as often terms that cancelled (a sum of saturated tanh at +-1) as nothing; a rule claiming 0
    there is right only to what ``phi`` can show, and the bound a pass states says so (it stated 1e-304), where
    a wider move shows ``phi`` is not 0 everywhere."""
    still = (status == OK) & (first.plus == 0.0) & (first.minus == 0.0) & (first.span > 0)
    # (a function that is 0 everywhere keeps its bound of 0, and so do elements that each leave it at 0 when moved
    # alone however far: a product over a vector with two zeros moves only when both zeros do)
    if still.any() and _moves_wider(ev, idx[still]) and not _flat_alone(ev, idx[still]):
        limit[still] = np.maximum(limit[still], _unit(ev) / first.span[still])


def _moves_wider(ev: Evaluator, idx: np.ndarray) -> bool:
    """Whether a move of elements ``idx`` by half their size (at least 1/2) changes ``phi``: one evaluation."""
    x = ev.tree.values()[idx]
    coef = np.where(np.isfinite(x), np.maximum(np.abs(x), 1.0), 0.0)
    try:
        phi, _ = ev.direction(idx, coef, (0.5,))
    except BackcheckError:
        return True  # not finite there: f reads them
    return bool(phi[0] != ev.phi0)


#: Elements moved one at a time by :func:`_flat_alone` (the first of them).
FLAT_ALONE = 8


def _flat_alone(ev: Evaluator, idx: np.ndarray) -> bool:
    """Whether moving each of the first :data:`FLAT_ALONE` elements ``idx`` alone, by half its size (at least
    1/2) either way, leaves ``phi`` at exactly its value: f is flat along each of them (a product over a vector
    with two zeros, whose gradient is exactly 0), not terms that cancel (a sum of saturated tanh moves when one
    of them does)."""
    x = ev.tree.values()
    for i in idx[:FLAT_ALONE].tolist():
        if not np.isfinite(x[i]):
            return False
        step = max(abs(float(x[i])), 1.0) / 2
        try:
            phis, _ = ev.element(i, (step, -step))
        except BackcheckError:
            return False
        if np.any(phis != ev.phi0):
            return False
    return True


def below_rounding_of_inputs(
    ev: Evaluator, idx: np.ndarray, a: np.ndarray, h: np.ndarray, moved: np.ndarray
) -> np.ndarray:
    """Which elements ``idx`` belong to arrays none of whose checked elements moved f (``moved``: the positions
    that did) and claim a change over their step ``h`` below the rounding of intermediates of their own size
    (:data:`WIDE_AGREEMENT` units of the output's dtype). A float32 loss of a confident classifier, ``lse - z_y``
    from logits near 25, cancels to exactly 0 wherever they move, and its gradients of 1e-12 are beyond its
    resolution: inconclusive, not wrong. A rule claiming a visible change (a forgotten mask passes ``dout``
    itself) still fails, and so does one claiming a change where other elements of the array move f."""
    offsets = ev.tree.offsets
    still = ~np.isin(np.searchsorted(offsets, idx, side="right"), np.searchsorted(offsets, moved, side="right"))
    size = np.maximum(np.abs(ev.tree.values()[idx]), 1.0)
    return still & (np.abs(a) * h <= _unit(ev) * size)


def rounding_unit(ev: Evaluator, i: int) -> float:
    """The largest step of ``phi`` rounding can make near element ``i``: :data:`WIDE_AGREEMENT` units of the
    output's dtype at the size of the element, of ``phi`` or of 1 (a value computed with cancellation moves by
    whole units of its largest intermediate: ``(1 + 1e-14 e^x) - 1`` by units of 1)."""
    leaf, local = ev.tree.locate(i)
    return float(_units(ev, np.abs(leaf.original.reshape(-1)[local : local + 1]))[0])


def hidden_window(ev: Evaluator, idx: np.ndarray, spans: np.ndarray, typical: np.ndarray) -> np.ndarray:
    """Per element, the mismatch a judgement at a wider step may absorb as an intermediate's rounding (see
    ``wider.unless_hidden``): below :data:`~backcheck.verdict.TINY` of its tensor's typical gradient and
    below what that rounding (:func:`rounding_unit`) puts a difference over its ``spans`` off by. A pass states
    no finer floor than this: an error inside it may be judged wider, and pass there."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.minimum(TINY * typical, quanta_floor(_units(ev, np.abs(ev.tree.values()[idx])), spans))


def _units(ev: Evaluator, sizes: np.ndarray) -> np.ndarray:
    """:func:`rounding_unit` of elements of these ``sizes``: at the size of the element, of ``phi`` or of 1."""
    return _unit(ev) * np.maximum(sizes, max(abs(ev.phi0), ev.scale, 1.0))


def _unit(ev: Evaluator) -> float:
    """:data:`WIDE_AGREEMENT` units in the last place of the output's dtype, at a size of 1."""
    return WIDE_AGREEMENT * ev.out_eps


#: An element whose step moves f by at most this many units of its rounding, in either direction (and not at all
#: in neither), is below f's resolution there (refinement judges it again at a wider step).
RESOLUTION_UNITS = 64.0


def moves_by_rounding(ev: Evaluator, i: int, first: Four) -> bool:
    """Whether element ``i``'s step moved f, by no more than rounding makes f move: :data:`RESOLUTION_UNITS` units
    of the output's dtype at the size of the element, of f or of 1 (a value computed with cancellation moves by
    units of its largest intermediate, a BCE's ``log(1 + e^z)`` at z of -25 by units of 1). A function rounded
    to float16 inside, or a threshold's, moves by far more, or not at all."""
    moves = max(abs(first[0] - ev.phi0), abs(first[1] - ev.phi0))
    return 0.0 < moves <= RESOLUTION_UNITS / WIDE_AGREEMENT * rounding_unit(ev, i)


def quanta_floor(q: Any, span: Any) -> Any:
    """How far quanta ``q`` of f's moves can put a central difference over ``span`` off (:data:`SAFETY` of
    them). torch's BCE at a logit of -25 and label 0 computes ``log(1 + e^z)`` from a sum with 1, and its mean of
    1e-11 moves by 2**-53 one way and not at all the other: its difference is off by up to that over the step,
    1e-12, where its modelled rounding said 1e-21; a smooth f's moves, however small, are multiples of its own
    last place only (:func:`quantum` of them)."""
    return SAFETY * q / span


#: Odd denominators of the quanta f's moves may come in besides powers of two: a mean over a batch of 37 of terms
#: that move by units of 2**-52 moves by units of 2**-52 / 37; a batch of 1000, by 2**-55 / 125.
DENOMINATORS = np.arange(3, 256, 2, dtype=np.float64)
#: Such a grid counts only where its spacing is this many times the moves' own rounding at least (a smooth f's
#: moves, generic numbers, fall on none of them; a single move, on one by chance more often: it needs the second),
#: and each move is this many of its spacings at most.
LATTICE_CLEAR = (2.0**20, 1024.0)
LATTICE_MOST = 4096.0


def quantum(*moves: float, tol: float = 0.0) -> float:
    """The spacing of the values f moves between, at most: the largest power of two all the nonzero ``moves`` are
    multiples of (0 if none moved), or, where ``tol`` (the moves' own rounding) is given, a larger power of two
    over one of :data:`DENOMINATORS` that they are all multiples of within that rounding (torch's BCE at confident
    logits, a mean over 100, moves by 16 units of 2**-52 / 100 one way and not at all the other)."""
    best = float(power_of_two_grid(np.array(moves, dtype=np.float64).reshape(-1, 1))[0])
    m = np.abs(np.array([v for v in moves if v != 0.0 and np.isfinite(v)], dtype=np.float64))
    if not (tol > 0 and m.size):
        return best
    d = DENOMINATORS[:, None]
    scaled = m[None, :] * d  # (denominator, move)
    levels = np.floor(np.log2(scaled.min(axis=1, keepdims=True))) - np.arange(13.0)  # (denominator, level)
    p = 2.0**levels
    fits = np.ones(p.shape, dtype=bool)
    for j in range(m.size):
        v = scaled[:, j : j + 1]
        fits &= np.abs(v - np.round(v / p) * p) <= d * tol
        if not fits.any():
            return best  # (on no grid: a smooth f's moves, the common case)
    fits &= (p >= LATTICE_CLEAR[m.size > 1] * d * tol) & (scaled.max(axis=1, keepdims=True) <= LATTICE_MOST * p)
    grids = np.where(fits, p / d, 0.0)
    return max(best, float(grids.max()))


def agrees(ev: Evaluator, i: int, four: Four, wide: tuple[float, float], q: float) -> bool:
    """Whether the central difference of element ``i`` in ``four`` (f at two steps, and the steps) agrees with
    ``wide`` (a numeric derivative and its bound, found at a wider step), within its own rounding and the
    quanta ``q`` f moves by."""
    span = four[2] - four[3]
    if not span > 0 or not np.isfinite(four[0] - four[1]):
        return False
    rounding = quanta_floor(float(noise_level(ev, ev.local_scale[i] or None)) + q, span)
    return abs((four[0] - four[1]) / span - wide[0]) <= rounding + wide[1]


#: A move of an element alone by this share of its size crosses many stairs of an input rounded to a narrower float
#: (bfloat16's are 2**-8 of it, float16's 2**-11) and few of a coarse grid (round(x)'s, at 1: one in 16 at x of 2).
FINE_MOVE = 2.0**-5
#: Elements of an array moved so, one at a time, each way (two evaluations each): its first nonzero ones.
FINE_TRIES = 4


def rounds_finely(ev: Evaluator, leaf: Leaf) -> bool:
    """Whether f, which stood still at every step of array ``leaf``'s checked elements and moves where every
    element moves by half its size, moves when each of its first :data:`FINE_TRIES` nonzero elements (all of them,
    in a smaller array) moves alone by :data:`FINE_MOVE` of its size, either way: stairs finer than that, a rounding
    of the array to a narrower float inside f (``x.astype(bfloat16)``), not a step or a threshold (a
    straight-through rule's ``round(x)``). False for an array of zeros (no size to move by)."""
    x = leaf.original.reshape(-1)
    tried = np.flatnonzero(np.isfinite(x) & (x != 0))[:FINE_TRIES].tolist()
    for local in tried:
        s = FINE_MOVE * abs(float(x[local]))
        try:
            phis, _ = ev.element(leaf.offset + local, (s, -s))
        except BackcheckError:
            return False
        if np.any(phis == ev.phi0):
            return False
    return bool(tried)
