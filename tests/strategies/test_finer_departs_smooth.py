"""A central difference at a fine step that departs from a Richardson table's estimate, toward the claim, reads as a
kink inside the table's steps (``kink_evidence.finer_departs``), and a mismatch there is judged inconclusive. A smooth
f's differences depart from the leading term's prediction by their next order too (``h**4``): the table of
``exp(sin x) x**3``, wrong by 1e-9 of itself under ``floor=1e-9``, was judged inconclusive on one machine. The next
order, read from the widest halving, is part of the truncation allowed; a kink between the finer steps still
departs."""

from __future__ import annotations

import numpy as np
import pytest

from backcheck.strategies.kink_evidence import finer_departs

STEP = 0.0625
SCALES = [4 * STEP, 2 * STEP, STEP, STEP / 2, STEP / 4]
#: rounding of each difference, as float64 differences of an f of size 1 carry it
ROUNDING = [4 * 2.2e-16 / s for s in SCALES]


@pytest.mark.parametrize("c4", [-40.0, -10.0, -1.0, 1.0, 10.0, 40.0])
@pytest.mark.parametrize("c2", [-1.0, 0.5, 3.0])
def test_a_smooth_fs_differences_do_not_depart(c2: float, c4: float) -> None:
    # central(h) = f' + c2 h**2 + c4 h**4; the table's estimate is f' to within its bound, and the claim lies off
    # it on either side by more than that bound
    d = 1.7
    central = np.array([d + c2 * h**2 + c4 * h**4 for h in SCALES])
    for off in (1e-6, -1e-6, 1e-3, -1e-3):
        assert not finer_departs(central, SCALES, ROUNDING, d + off, (d, 1e-12)), (c2, c4, off)


@pytest.mark.parametrize("where", [0.3, 0.4, 0.6])
def test_differences_across_a_kink_between_the_finer_steps_depart(where: float) -> None:
    # f' + c2 h**2 and a kink at where * STEP, of slope jump 1: crossed by the three widest steps only (by STEP / 2
    # too, where it lies below it); the table, of rows at STEP and wider, averaged it in; the claim is f'
    d, c2, kink = 1.7, 0.5, where * STEP
    central = np.array([d + c2 * h**2 + (0.5 * (1 - kink / h) if h > kink else 0.0) for h in SCALES])
    first = float(central[2])
    assert finer_departs(central, SCALES, ROUNDING, d, (first, 1e-9))
