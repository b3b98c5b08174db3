"""Moves sought toward a corner of the gradients around a point stay near it: a lead taken from a move a lead
already widened grew eightfold each time (1e80 steps after a few hundred moves), so the 'gradient around the
point' was taken far from it, where a max pool's rule routing the gradient to every tied maximum gave the sum
it claims. With a reach, every move is scaled down as a whole: within it, and its elements kept apart."""

import numpy as np

from backcheck.strategies.corners import Nearest


def _search(reach, n=400):
    rng = np.random.default_rng(0)
    nearest = Nearest(1, reach)
    open_ = np.ones(1, dtype=bool)
    widest, moves = 0.0, []
    for k in range(n):
        fresh = 1e-3 * rng.standard_normal(6)
        move = nearest.toward(k, fresh, open_, rng)
        nearest.record(move, np.array([1.0 / (k + 1)]), open_, open_)  # (each nearer: every move is kept)
        widest = max(widest, float(np.max(np.abs(move))))
        moves.append(move)
    return widest, moves


def test_unbounded_leads_run_away_and_a_reach_holds_them():
    assert _search(None)[0] > 1e6  # (the failure mode: moves far beyond the radius of the random ones)
    reach = np.full(6, 0.5)
    widest, moves = _search(reach)
    assert widest <= 0.5 * (1 + 1e-12)
    # scaled as a whole, not clipped: elements that exceeded the reach do not all land on it (ties again)
    assert all(np.unique(np.round(m, 15)).size == m.size for m in moves if np.any(m))
