"""The power-of-two grid float64 values lie on (backcheck.bits.power_of_two_grid), and the quantum of f's moves
built on it (backcheck.rounding.quantum)."""

import numpy as np

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
