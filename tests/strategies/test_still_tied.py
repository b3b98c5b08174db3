"""Which elements of small value ties still share a value at a moved point, as a backward pass reads them: every
tie at once (:func:`backcheck.strategies.nearby._still_tied`) against each tie's distinct values counted alone."""

import numpy as np
import pytest

from backcheck.bits import BFLOAT16_EPS
from backcheck.strategies.nearby import SMALL_TIE, _still_tied, _value_ties, as_read
from backcheck.tree import Tree


class _Ev:  # (the one thing _value_ties reads: the tree)
    def __init__(self, tree):
        self.tree = tree


def _one_tie_at_a_time(values, sub, groups, eps):
    tied = np.zeros(values.size, dtype=bool)
    for group in groups:
        if group.size <= SMALL_TIE:
            tied[group] = np.unique(as_read(values[group], eps)).size < group.size
    return tied[sub]


@pytest.mark.parametrize("eps", [2.0**-52, 2.0**-23, 2.0**-10, BFLOAT16_EPS])
@pytest.mark.parametrize("seed", range(4))
def test_every_tie_at_once_is_each_tie_alone(eps, seed):
    rng = np.random.default_rng(seed)
    # integer data in two arrays: ties of every size, some across the arrays (which are not ties within them)
    a, b = rng.integers(-1, 2, size=(6, 5)).astype(float), rng.integers(-8, 9, size=40).astype(float)
    tree = Tree({"a": a, "b": b}, "p")
    sub = rng.choice(tree.size, size=30, replace=False)
    ties = _value_ties(_Ev(tree), sub, np.full(sub.size, eps))
    assert ties is not None
    members, tie, got_eps = ties
    assert got_eps == eps and members.size == tie.size
    groups = tree.ties(sub, within_arrays=True)
    assert any(g.size > SMALL_TIE for g in groups) and any(g.size <= SMALL_TIE for g in groups)
    values = tree.values()
    for scale in (1e-9, 1e-4, 1e-2, 0.0):  # moves below and above each dtype's spacing; none at all
        for _ in range(5):
            moved = values + scale * rng.integers(-2, 3, size=values.size) * rng.random(values.size) ** 4
            want = _one_tie_at_a_time(moved, sub, groups, eps)
            np.testing.assert_array_equal(_still_tied(moved, sub, members, tie, eps), want)
    assert _still_tied(values, sub, members, tie, eps).sum() == sum(
        np.isin(sub, g).sum() for g in groups if g.size <= SMALL_TIE
    )  # at the point itself every small tie still ties


def test_no_tie_is_none_and_only_large_ties_tie_nothing():
    tree = Tree(np.arange(10.0), "x")
    assert _value_ties(_Ev(tree), np.arange(10), np.full(10, 2.0**-52)) is None
    wide = Tree(np.zeros(SMALL_TIE + 1), "x")
    members, tie, _eps = _value_ties(_Ev(wide), np.arange(3), np.full(3, 2.0**-52))
    assert members.size == tie.size == 0
    assert not _still_tied(wide.values(), np.arange(3), members, tie, 2.0**-52).any()


def test_two_ties_that_meet_at_one_value_after_the_move_are_no_longer_tied():
    # ties of the value 2 in two arrays: moved apart within each, the top of one meets the bottom of the other,
    # which is no tie (they lie in different arrays)
    tree = Tree({"a": np.array([2.0, 2.0, 5.0]), "b": np.array([2.0, 2.0, 7.0])}, "p")
    sub = np.arange(6)
    members, tie, eps = _value_ties(_Ev(tree), sub, np.full(6, 2.0**-52))
    assert sorted(members.tolist()) == [0, 1, 3, 4] and eps == 2.0**-52
    moved = np.array([1.9, 2.0, 5.0, 2.0, 2.1, 7.0])
    assert not _still_tied(moved, sub, members, tie, eps).any()
    moved[1] = 1.9  # ... and tied again within a
    np.testing.assert_array_equal(_still_tied(moved, sub, members, tie, eps), [1, 1, 0, 0, 0, 0])
