"""Random directions over an array whose steps span orders of magnitude, band by band.

A direction moves each element by about its own step (``eps^(1/3) max(|x|, 1)``), so it weighs an error in an
element by that step: in an array holding values near 1e5 beside values near 1, an error in the small ones
weighs 1e-5 of one in the large ones, and the RMS error the directions state they catch says nothing about
them (every small element 1% off passed, 130 times the stated size). The elements are split into bands whose
steps lie within :data:`STEP_BAND` of each other, each projected with its own directions while the others stay
still (a band of a few elements is judged one by one); the array is vouched for as its weakest band.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from backcheck.evaluate import Evaluator
from backcheck.strategies.projected import LeafProjection, project_leaf
from backcheck.tree import Leaf
from backcheck.verdict import Claim

#: Steps within this factor of each other are projected together.
STEP_BAND = 16.0
#: A band of at most this many elements is judged one by one.
FEW = 16


def bands(steps: np.ndarray, still: np.ndarray) -> list[np.ndarray]:
    """The array's positions (``still`` left out) grouped by step into bands of :data:`STEP_BAND`, the largest
    band first; a single band where every step is within it of the others (the common case)."""
    moving = steps > 0
    moving[still] = False  # (a mask, not setdiff1d: a sort or hash of a million positions costs 0.25 s)
    free = np.flatnonzero(moving)
    if free.size < 2:
        return [free]
    h = steps[free]
    lo = float(h.min())
    if float(h.max()) <= STEP_BAND * lo:
        return [free]
    which = np.floor(np.log(h / lo) / np.log(STEP_BAND)).astype(np.int64)
    groups = [free[which == k] for k in np.unique(which)]
    return sorted(groups, key=lambda g: -g.size)


def one_band(steps: np.ndarray, still: np.ndarray) -> bool:
    """Whether every step moves and lies within :data:`STEP_BAND` of the others, nothing left still (the common
    case, told without a pass that writes)."""
    if still.size or steps.size < 2:
        return False
    lo = float(steps.min())
    return lo > 0 and float(steps.max()) <= STEP_BAND * lo


def project_banded(
    ev: Evaluator,
    claim: Claim,
    leaf: Leaf,
    rng: np.random.Generator,
    how: tuple[tuple[int | None, float | None, float], bool],
    still: np.ndarray,
    alone: Callable[[np.ndarray], None],
) -> LeafProjection | None:
    """:func:`project_leaf` over ``leaf`` band by band (see the module docstring), where its steps span more than
    one; ``alone(idx)`` judges flat positions one by one (a band of a few elements). None where every band was
    judged so."""
    plan, stop = how
    found: list[LeafProjection] = []
    steps = claim.steps[leaf.offset : leaf.offset + leaf.size]
    groups = [] if one_band(steps, still) else bands(steps, still)
    if len(groups) <= 1:  # (the common case: one projection, as the array's own)
        return project_leaf(ev, claim, leaf, rng, plan, stop_on_failure=stop, still=still)
    for band in groups:
        if band.size <= FEW:
            alone(band + leaf.offset)
            continue
        others = np.ones(leaf.size, dtype=bool)
        others[band] = False
        found.append(project_leaf(ev, claim, leaf, rng, plan, stop_on_failure=stop, still=np.flatnonzero(others)))
        if stop and found[-1].failed:
            break
    if not found:
        return None
    failing = next((p for p in found if p.failed), None)
    return LeafProjection(
        failed=failing is not None,
        kinky=sum(p.kinky for p in found),
        measurements=[m for p in found for m in p.measurements],
        detectable=max(p.detectable for p in found),
        failure=None if failing is None else failing.failure,
        wanted=max(p.wanted for p in found),
        early=all(p.early for p in found),
    )
