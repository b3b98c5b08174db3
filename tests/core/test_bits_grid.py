"""The power-of-two grid float64 values lie on (backcheck.bits.power_of_two_grid), and the quantum of f's moves
built on it (backcheck.rounding.quantum)."""

import numpy as np
import pytest

from backcheck.bits import power_of_two_grid
from backcheck.rounding import quantum


def test_the_grid_is_the_largest_power_of_two_every_value_of_a_column_is_a_multiple_of():
    values = np.array([[3 * 2.0**-56, 6.0, 0.0], [2.0**-54, -10.0, 0.0], [np.nan, 1.5, np.inf]])
    assert power_of_two_grid(values).tolist() == [2.0**-56, 0.5, 0.0]  # (non-finite and 0 say nothing)


def test_an_odd_mantissa_has_its_last_place_as_grid():
    x = np.nextafter(1.0, 2.0)  # 1 + 2**-52
    assert power_of_two_grid(np.array([[x]]))[0] == 2.0**-52


def test_the_quantum_of_moves_is_their_common_grid_and_0_where_none_moved():
    assert quantum(2.0**-53, -(2.0**-54)) == 2.0**-54
    assert quantum(0.0, 0.0) == 0.0 and quantum(np.nan) == 0.0
    assert quantum(1e-16 / 37) < 1e-30  # a mean over 37 terms keeps no coarse power-of-two grid


def test_quanta_over_an_odd_denominator_within_the_moves_rounding() -> None:
    """Moves of 64 and 96 units of 2**-52 / 37 (a mean over 37), each off by its rounding: the quantum is 32 such
    units; generic moves of a smooth f fall on no such grid, and without ``tol`` only powers of two count."""
    unit = 2.0**-52 / 37
    up, down = 64 * unit * (1 + 3e-12), -96 * unit * (1 - 2e-12)
    tol = 1e-25
    assert quantum(up, down, tol=tol) == pytest.approx(32 * unit, rel=1e-12)
    assert quantum(up, down) < 1e-30
    rng = np.random.default_rng(0)
    for m in rng.uniform(1e-16, 1e-15, size=(50, 2)):
        assert quantum(m[0], -m[1], tol=tol) < 1e-20
    assert quantum(0.0, 0.0, tol=tol) == 0.0


def test_one_move_alone_needs_a_grid_far_above_its_rounding() -> None:
    """A single move is a multiple of some grid within its rounding by chance more often than two are: it counts
    only where the grid is a million times its rounding (16 units of 2**-52 / 100, to 1e-25), not a thousand."""
    unit = 2.0**-52 / 100
    move = 16 * unit * (1 + 2e-11)
    assert quantum(move, 0.0, tol=8e-26) == pytest.approx(16 * unit, rel=1e-9)
    assert quantum(move, 0.0, tol=3e-21) == quantum(move)  # the grid 1e3-1e6 times the rounding: not enough
    rng = np.random.default_rng(1)
    assert all(quantum(m, 0.0, tol=1e-25) < 1e-20 for m in rng.uniform(1e-16, 1e-15, size=200))


def _quantum_whole(*moves, tol):
    """The lattice search of backcheck.rounding.quantum with every move and every condition taken in full."""
    from backcheck.rounding import DENOMINATORS, LATTICE_CLEAR, LATTICE_MOST

    best = quantum(*moves)
    m = np.abs(np.array([v for v in moves if v != 0.0 and np.isfinite(v)], dtype=np.float64))
    if not m.size:
        return best
    d = DENOMINATORS[:, None]
    scaled = m[None, :] * d
    p = 2.0 ** (np.floor(np.log2(scaled.min(axis=1, keepdims=True))) - np.arange(13.0))
    fits = np.all([np.abs(v - np.round(v / p) * p) <= d * tol for v in scaled.T[:, :, None]], axis=0)
    fits &= (p >= LATTICE_CLEAR[m.size > 1] * d * tol) & (scaled.max(axis=1, keepdims=True) <= LATTICE_MOST * p)
    return max(best, float(np.where(fits, p / d, 0.0).max()))


def test_the_quantum_stops_at_the_first_move_on_no_grid_with_the_whole_searchs_answer():
    # moves on a lattice (k units of 2**-52 / q, each off by a little rounding), moves of which only one lies on
    # one, and generic moves: the search that stops once no grid holds the moves so far answers as the whole one
    rng = np.random.default_rng(5)
    for _ in range(300):
        q, tol = int(rng.choice([3, 37, 100, 125])), 1e-25
        unit = 2.0**-52 / q
        on = [int(rng.integers(1, 200)) * unit * (1 + rng.uniform(-3e-12, 3e-12)) for _ in range(2)]
        generic = list(rng.uniform(1e-16, 1e-14, size=2))
        for moves in (on, [on[0], generic[0]], [generic[0], on[1]], generic, [on[0], 0.0]):
            assert quantum(*moves, tol=tol) == _quantum_whole(*moves, tol=tol), moves
