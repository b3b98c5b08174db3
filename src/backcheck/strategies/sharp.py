"""A detection floor on demand: elements whose bound is wider than the floor asked for are refined sharply.

The default check screens every element with one central difference and refines only the doubtful ones, so
its bounds are those of a balanced step (about 1e-8 of the gradient in float64). With ``floor=`` the elements
still wider than ``floor`` of their size are differenced again on a Richardson table
(:func:`backcheck.numeric.grad.refine_elements`), which reaches numdifftools' accuracy on smooth functions, and
judged against the sharp estimate's own error. Where even that cannot reach the floor (noise, a kink), the
element is inconclusive: the floor asked for cannot be vouched for.
"""

from __future__ import annotations

import numpy as np

from backcheck.evaluate import Evaluator
from backcheck.numeric.grad import refine_elements
from backcheck.strategies.elementwise import Outcome
from backcheck.verdict import MISMATCH, NOISY, OK, Claim, bound, resolution


def sharpen(ev: Evaluator, claim: Claim, outcome: Outcome, floor: float) -> list[str]:
    """Refine the ``ok`` elements of ``outcome`` whose bound is wider than ``floor`` of their size, in place."""
    pos = np.flatnonzero(outcome.status == OK)
    idx = outcome.checked[pos]
    a, n = claim.g[idx], outcome.numeric[pos]
    typical = claim.typical[idx] if claim.typical is not None else np.zeros(idx.size)
    size = np.maximum(np.abs(a), np.abs(n))
    size = np.where(size > 0, size, typical)  # an element whose gradient is zero: its tensor's size
    wide = outcome.bound[pos] > floor * size
    if not wide.any():
        return [f"every checked element's bound is within the floor asked for ({floor:.2g} of its size)."]
    pos, idx, a, size = pos[wide], idx[wide], a[wide], size[wide]
    sharp = refine_elements(ev, idx, target=floor * size / 4)
    res = resolution(a, sharp.value, 1.0, claim.rms[idx]) * claim.grad_eps[idx]
    limit = bound(sharp.error, 0.0, res)
    wrong = np.isfinite(sharp.value) & (np.abs(a - sharp.value) > limit)
    reached = np.isfinite(limit) & (limit <= floor * size)
    outcome.numeric[pos] = np.where(np.isfinite(sharp.value), sharp.value, outcome.numeric[pos])
    outcome.bound[pos] = np.where(np.isfinite(limit), limit, outcome.bound[pos])
    outcome.status[pos[wrong]] = MISMATCH
    outcome.status[pos[~wrong & ~reached]] = NOISY
    if outcome.vouch_bound is not None:
        outcome.vouch_bound[pos] = outcome.bound[pos]
    notes = [
        f"floor {floor:.2g}: {pos.size} element(s) refined on a Richardson table "
        f"({int(sharp.evaluations.sum())} evaluations); {int(wrong.sum())} wrong, "
        f"{int((~wrong & ~reached).sum())} could not reach the floor (inconclusive)."
    ]
    return notes
