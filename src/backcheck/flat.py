"""Elements along which f stands exactly still over a span that their claimed slope would have crossed.

A function that moves only in coarse steps (its values rounded to a grid, or a jump where an element crosses a
threshold elsewhere) leaves every difference of a small step at exactly 0 and every bound at the size of its
steps: an element's numeric derivative of 0 cannot tell a flat f from a slope hidden below one step of the grid,
and the element is inconclusive. A slope ``a`` moves f by ``a s`` over a span ``s``: where f keeps exactly its
value at every point tried on both sides of the element, out to a span over which the claimed slope would have
moved it by :data:`QUANTA` of those steps, f is flat there (piecewise constant: a threshold's
``(x > 0).float()``, whose surrogate gradient a straight-through estimator claims) and the claim is refuted. A
grid hiding a real slope cannot stay still over such a span; a function with a smaller slope than the claim
moves over it too, or the claim is wrong by more than half.
"""

from __future__ import annotations

import numpy as np

from backcheck.errors import BackcheckError
from backcheck.evaluate import Evaluator
from backcheck.numeric.grad import noise_level
from backcheck.strategies.elementwise import Outcome
from backcheck.verdict import MISMATCH, NOISY, OK, Claim, sees

#: Steps of f's grid (or noise) that the claimed slope must cross over the span tried.
QUANTA = 4.0
#: Fractions of the span at which f is evaluated on each side.
FRACTIONS = (1 / 16, 0.25, 0.5, 1.0)
#: The widest span tried, in units of the element's size (at least 1).
WIDEST = 1024.0
#: Elements tried at most (one refuted element fails the check).
MOST = 16


def refute(ev: Evaluator, claim: Claim, outcome: Outcome) -> list[str]:
    """Elements left unvouched (inconclusive, or a pass whose bound sees no error that matters) whose differences
    were exactly 0 and whose claim is nonzero, tried as the module docstring says; those refuted become mismatches
    (numeric 0, bound half the claim). Returns a note."""
    if claim.tol.custom:
        return []
    checked, status = outcome.checked, outcome.status
    a = claim.g[checked]
    typical = claim.rms[checked] if claim.typical is None else claim.typical[checked]
    limit = outcome.bound if outcome.vouch_bound is None else outcome.vouch_bound
    unseen = ((status == OK) | (status == NOISY)) & ~sees(limit, np.maximum(np.abs(a), typical))
    pos = np.flatnonzero(unseen & (outcome.numeric == 0.0) & (a != 0) & np.isfinite(a))[:MOST]
    if not pos.size:
        return []
    level = max(float(ev.noise_quantum), float(noise_level(ev)))
    sizes = np.maximum(np.abs(ev.tree.values()), 1.0)
    refuted = []
    for p in pos.tolist():
        i, slope = int(checked[p]), abs(float(a[p]))
        span = QUANTA * level / slope
        if (
            not 0.0 < span <= WIDEST * sizes[i]
            or slope * _flat_length(ev, i, float(claim.steps[i]), span) < QUANTA * level
        ):
            continue
        status[p], outcome.numeric[p], outcome.bound[p] = MISMATCH, 0.0, slope / 2
        if outcome.vouch_bound is not None:
            outcome.vouch_bound[p] = slope / 2
        refuted.append(i)
    if not refuted:
        return []
    shown = ", ".join(ev.tree.element_name(i) for i in refuted[:3]) + (" ..." if len(refuted) > 3 else "")
    return [
        f"f stands exactly still around {shown} over spans its claimed slope would have moved it by "
        f"{QUANTA:g} of its steps ({level:.2g}): it is piecewise constant there (a step, a threshold), so its "
        "derivative is 0; a surrogate gradient (a straight-through estimator) is not that derivative."
    ]


def _flat_length(ev: Evaluator, i: int, h: float, span: float) -> float:
    """The length of the interval around element ``i`` over which ``phi`` keeps exactly its value at every point
    tried: from the element's own step ``h`` on each side out to the fractions of ``span``, each side as far as
    its points stay still; 0 where a point at ``h`` moves (or a value is not finite)."""
    sides = []
    for sign in (1.0, -1.0):
        moves = [sign * h, *(sign * f * span for f in FRACTIONS if f * span > h)]
        try:
            phis, disp = ev.element(i, moves)
        except BackcheckError:
            return 0.0
        still = (phis == ev.phi0) & (disp != 0.0)
        if not still[0]:
            return 0.0
        run = int(np.argmin(still)) if not still.all() else still.size  # points still, from the nearest on
        sides.append(abs(moves[run - 1]))
    return float(sum(sides))
