"""Elements on the edge of f's domain, found by bisection so that random directions go on over the others.

A random direction moves every element of an array at once. Where one element sits within its move of the edge of
f's domain (the log of a probability of 1e-20, a square root at 0), f is NaN or infinite along the direction at
every shrink of it, and the direction says nothing about the million other elements. As with kinks
(:func:`backcheck.strategies.projected.kinked`), halves of the array are moved alone, and the halves that leave the
domain are halved again, down to single elements: about ``4 log2(N)`` evaluations for one such element. Those are
judged one by one, from their finite side (:mod:`backcheck.edges`), and the directions leave them where they are.
"""

from __future__ import annotations

import numpy as np

from backcheck.errors import NonFiniteError
from backcheck.evaluate import Evaluator
from backcheck.tree import Leaf
from backcheck.verdict import Claim

#: At most this many elements on the edge are located by bisection (about ``4 log2(N / m)`` evaluations each for
#: ``m`` of them, then a few each one by one); beyond, the check falls back as when none is found.
MAX_EDGE = 256


def inside(ev: Evaluator, steps: np.ndarray, offset: int) -> np.ndarray:
    """``steps``, the steps of the elements from flat position ``offset`` on, as a random move may take them: an
    element whose own step shrank at the edge of f's domain (:attr:`Evaluator.shrunk`) by as much, one differenced
    from one side only (:attr:`Evaluator.one_sided`: no move both ways stays inside) not at all. ``steps`` itself
    where no element of the run is either."""
    end = offset + steps.size
    shrunk = [(i - offset, factor) for i, factor in ev.shrunk.items() if offset <= i < end]
    edge = [i - offset for i in ev.one_sided if offset <= i < end]
    if not shrunk and not edge:
        return steps
    steps = steps.copy()
    for i, factor in shrunk:
        steps[i] *= factor
    steps[edge] = 0.0
    return steps


def on_the_edge(
    ev: Evaluator, claim: Claim, leaf: Leaf, rng: np.random.Generator, still: np.ndarray
) -> np.ndarray | None:
    """The positions in ``leaf`` (local) of the elements whose share of a random move of about one step in all takes
    f off its domain: halves whose move does (either way) are halved again, level by level, down to single elements;
    ``still`` (positions left out of the directions already) never move. None when more than :data:`MAX_EDGE`
    turn up at one level, or when no single element does (a move leaves the domain only jointly)."""
    steps = inside(ev, claim.steps[leaf.offset : leaf.offset + leaf.size], leaf.offset).copy()
    steps[still] = 0.0
    w = rng.random(leaf.size) - 0.5

    def leaves(lo: int, hi: int) -> bool:
        coef = steps[lo:hi] * w[lo:hi]
        norm = float(np.linalg.norm(w[lo:hi][coef != 0]))
        if norm == 0.0:
            return False
        try:
            ev.direction(slice(leaf.offset + lo, leaf.offset + hi), coef / norm, (1.0, -1.0))
        except NonFiniteError:
            return True
        return False

    found: list[int] = []
    level = [(0, leaf.size)]
    while level:
        halves = [half for lo, hi in level for half in ((lo, (lo + hi) // 2), ((lo + hi) // 2, hi))]
        level = [(lo, hi) for lo, hi in halves if hi > lo and leaves(lo, hi)]
        found += [lo for lo, hi in level if hi - lo == 1]
        level = [(lo, hi) for lo, hi in level if hi - lo > 1]
        if len(found) + len(level) > MAX_EDGE:
            return None
    return np.array(sorted(found), dtype=np.int64) if found else None
