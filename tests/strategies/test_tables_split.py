"""Two Richardson tables of one element, the first and one started below its steps, that contradict each other
beyond both their bounds with the claim between them confirm no mismatch (strategies/kink_evidence.tables_split): one of
their bounds is wrong at least (kinks inside their steps). Constructed estimates, so no machine's rounding
enters; a claim outside both tables, or tables that agree within their bounds, still leave the mismatch."""

from __future__ import annotations

import numpy as np
import pytest

from backcheck.strategies.kink_evidence import off_point, tables_split
from backcheck.verdict import bound


@pytest.mark.parametrize(
    ("claim", "first", "below", "split"),
    [
        (1.418e-3, (1.311e-3, 2e-5), (1.831e-3, 9e-5), True),  # a float32 ReLU network's element: between them
        (1.489e-3, (1.311e-3, 2e-5), (1.831e-3, 9e-5), True),  # a rule 5% off there is no more confirmed
        (1.831e-3, (1.311e-3, 2e-5), (1.831e-3, 9e-5), True),  # (at one end: between)
        (-1.418e-3, (1.311e-3, 2e-5), (1.831e-3, 9e-5), False),  # a sign flip lies outside both
        (2.5e-3, (1.311e-3, 2e-5), (1.831e-3, 9e-5), False),  # beyond both
        (1.418e-3, (1.311e-3, 2e-5), (1.350e-3, 9e-5), False),  # the tables agree within their bounds
    ],
)
def test_tables_split_around_the_claim(claim, first, below, split):
    assert tables_split(claim, first, below, 0.0) is split


def test_the_split_is_judged_beyond_both_bounds_and_the_resolution():
    first, below = (1.0, 0.01), (1.2, 0.01)
    apart = 0.2
    # just beyond the bound of both errors and twice the claim's resolution: split; at it: not
    res = (apart / bound(1.0, 0.0, 0.0) - 0.02) / 2
    assert tables_split(1.1, first, below, res * 0.99)
    assert not tables_split(1.1, first, below, res * 1.01)


def _slopes(gaps, centre=1.0):
    """Forward and backward slopes (interleaved, widest step first) with the given gaps about ``centre``."""
    return np.array([v for g in gaps for v in (centre + g / 2, centre - g / 2)])


BOUNDS = [1e-6, 2e-6, 4e-6, 8e-6, 1.6e-5]  # each halving doubles a gap's rounding


@pytest.mark.parametrize(
    ("gaps", "off"),
    [
        ([3.4e-4, 6.2e-4, 4.9e-4, 2.4e-4, -3.0e-4], True),  # grew, then fell away and flipped: kinks off the point
        ([8e-4, 4e-4, 2e-4, 1e-4, 5e-5], False),  # a smooth f's gap halves with the step
        ([5e-4, 5e-4, 5e-4, 5e-4, 5e-4], False),  # kept down to the finest: a kink at the point (its slopes decide)
        ([1e-4, 3e-4, 3e-4, 3e-4, 3e-4], False),  # kept at the finest too
        ([5e-4, 5e-4, 5e-4, 5e-4, -5e-4], True),  # kept, but turned over at the finest: another kink took over
    ],
)
def test_kinks_off_the_point_are_told_from_one_at_it(gaps, off):
    assert off_point(_slopes(gaps), BOUNDS) is off
