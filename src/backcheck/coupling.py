"""Outputs whose true change rounds away at an element's step, and the elements they leave wrongly judged.

A layer's difference is taken over the outputs that moved: an output whose true change is below its rounding
(a confident softmax's largest probability, moved by 1e-19 when a tiny logit moves by its step, against a
rounding of 1e-16) adds nothing, and the element's numeric derivative misses its term, with a bound from the
moved outputs' tiny rounding alone. Where wider moves of the element show it moves such outputs, the element is
bounded by every output's rounding instead (:func:`rounded_away`).
"""

from __future__ import annotations

import numpy as np

from backcheck.errors import BackcheckError
from backcheck.evaluate import Evaluator
from backcheck.numeric.grad import roundoff
from backcheck.verdict import MISMATCH, NOISY, OK, TINY, VOUCH, WIDE_AGREEMENT, FirstDifferences, bound


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
    coefficients. A difference over the outputs that moved misses those changes. Confirmed by a much larger
    step moving much larger outputs (:func:`_coupled_below_resolution`), the element is bounded by every
    output's rounding: a pass where that sees errors of :data:`VOUCH` of its size or of its tensor's typical
    one, else inconclusive (a wrong element of that size cannot be told from the rounding)."""
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
    plus, minus = _output_changes(ev, i, h), _output_changes(ev, i, -h)
    if plus is None or minus is None:
        return False
    unit = WIDE_AGREEMENT * float(np.finfo(ev.out_dtype).eps)
    floors = [unit * np.abs(y0) for y0 in ev.output.base]
    blurred = [(p <= f) & (m <= f) for p, m, f in zip(plus, minus, floors, strict=True)]
    if not any(b.any() for b in blurred):
        return False  # every output moved clearly at the element's own step: none rounded away
    leaf, local = ev.tree.locate(i)
    size = max(abs(float(leaf.original.reshape(-1)[local])), 1.0)
    for w in (COUPLING_STEP * h, *(f * size for f in COUPLING_SIZES)):
        for step in (w, -w) if w > h else ():  # (both ways: a larger logit leaves the largest probability at 1)
            wide = _output_changes(ev, i, step)
            if wide is not None and any(
                bool((b & (c > f)).any()) for b, c, f in zip(blurred, wide, floors, strict=True)
            ):
                return True
    return False


def _output_changes(ev: Evaluator, i: int, step: float) -> list[np.ndarray] | None:
    """How far a move of element ``i`` by ``step`` moves each output from the base point (per output array); None
    for a loss (one output), or where ``phi`` is not finite there or the move raises (a domain's edge)."""
    try:
        phis, _ = ev.element(i, (step,))
    except BackcheckError:
        return None
    last, base = ev.output.last, ev.output.base
    if not last or len(last) != len(base) or not np.all(np.isfinite(phis)):
        return None
    return [np.abs(y - y0) for y, y0 in zip(last, base, strict=True)]
