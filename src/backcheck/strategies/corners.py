"""Moves sought toward a corner of the gradients around a point, where random moves reach it by chance only.

:func:`backcheck.strategies.nearby.nearby_verdicts` outlines the valid subgradients at a point where several kinks
meet by the gradients at random moves around it; a subgradient that is the gradient of one narrow cone of moves
(every ReLU unit at 0 turned off at once) is a corner of them, reached here from the moves that came nearest.
"""

from __future__ import annotations

import numpy as np

#: Moves sought, after the random ones (:data:`~backcheck.strategies.nearby.NEARBY_SAMPLES`), from those whose
#: gradients came nearest a claim still outside them.
GUIDED_SAMPLES = 512
#: A leading element's move, in times the largest of the others' (see :meth:`Nearest.toward`).
LEAD = 8.0
#: Elements followed at once, one move kept for each (the memory stays bounded whatever the number asked).
FOLLOWED = 8
#: Moves sought in a row that bring no followed element nearer end the search (a rule wrong at a max pool's ties
#: is the gradient of no move, and is not sought for all 512).
STALLED = 128


class Nearest:
    """The move whose gradient came nearest the claim, per element, and new moves sought from it.

    Where many kinks meet at once (ReLU units at 0 over a zero background, each a half-space of the moves), the
    convention's subgradient (ReLU'(0) = 0 in every unit) is the gradient of one cone of them only, a corner of the
    gradients around the point: random moves reach it by chance only (a float64 convolution's ReLUs on an image of
    zeros with a blob: ten units at 0 under one element; a right rule failed at 9 of 36 images). A move that came
    nearest, with a random share of its elements drawn anew, one element turned the other way, or one made to lead
    the units it enters, turns a few units at a time, and is kept where it comes as near or nearer: the corner is
    reached unit by unit, where the gradient is the claim itself."""

    def __init__(self, n: int, reach: np.ndarray | None = None) -> None:
        self.distance = np.full(n, np.inf)  # the nearest the gradient came to the claim so far, per element
        self.reach = reach  # the largest move sought, per element of the point (None: unbounded)
        self.move: dict[int, np.ndarray] = {}  # ... and the move it came there at, per element followed
        self.stalled = 0  # moves in a row that brought no followed element nearer

    def record(self, shift: np.ndarray, distance: np.ndarray, free: np.ndarray, open_: np.ndarray) -> None:
        """Keep ``shift`` for the elements followed (the first :data:`FOLLOWED` still ``open_``) whose gradient
        there is as near the claim as ever (``distance``; ``free``: sampled; as near: a plateau is crossed by moves
        that keep it); the others' moves are let go."""
        followed = np.zeros(open_.size, dtype=bool)
        followed[_followed(open_)] = True
        self.distance[~followed] = np.inf
        near = free & followed & (distance <= self.distance)
        self.stalled = 0 if (near & (distance < self.distance)).any() else self.stalled + 1
        self.distance[near] = distance[near]
        kept = {k: self.move[k] for k in _followed(open_).tolist() if k in self.move}
        self.move = kept | dict.fromkeys(np.flatnonzero(near).tolist(), shift)

    def toward(self, n: int, fresh: np.ndarray, open_: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A move sought for a followed element still ``open_`` (in turn, by ``n``) from the one that brought its
        gradient nearest the claim: a random share of its elements takes ``fresh``'s values, or one element turns
        the other way, or one leads every unit it enters (:data:`LEAD`); ``fresh`` itself where none was kept.
        Every element's move is held within its reach, the move scaled down as a whole: a lead taken from a move
        that a lead already widened grows eightfold each time, and moves of 1e80 steps, far from the point, gave a
        max pool's rule routing the gradient to every tied maximum the sum it claims."""
        ks = _followed(open_)
        base = self.move.get(int(ks[n % ks.size])) if ks.size else None
        if base is None:
            return fresh
        kind = int(rng.integers(3))
        if kind == 0:
            return np.where(rng.random(fresh.size) < 2.0 ** -rng.integers(1, 7), fresh, base)
        move = base.copy()
        j = int(rng.integers(fresh.size))
        move[j] = -move[j] if kind == 1 else np.copysign(LEAD * float(np.max(np.abs(base))), fresh[j])
        if self.reach is None:
            return move
        # scaled down whole, not clipped: elements clipped to one bound would tie again (a tie's rule then sampled)
        over = np.divide(np.abs(move), self.reach, out=np.zeros_like(move), where=self.reach > 0)
        return move / max(1.0, float(np.max(over, initial=0.0)))


def _followed(open_: np.ndarray) -> np.ndarray:
    """The elements followed: the first :data:`FOLLOWED` still open."""
    return np.flatnonzero(open_)[:FOLLOWED]
