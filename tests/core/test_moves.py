"""A pair of moves along a direction over one float64 run: the difference of their displacements dotted with the
weights in one pass (each chunk read once), the first step written and the second written later without dots;
the dots are those of the actual (rounded) displacements' difference, as moves that write each displacement out
give them."""

from __future__ import annotations

import numpy as np
import pytest

from backcheck.moves import DOTS_CHUNK, move_pair, pair_dots, write_step


@pytest.mark.parametrize("n", [5, DOTS_CHUNK + 3])
@pytest.mark.parametrize("steps", [(1.0, -1.0), (0.5, -0.25)])
def test_the_pairs_dots_are_its_rounded_displacements_and_only_the_first_is_written(n, steps):
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=n) * 1e3  # (large values: a step of 1e-6 rounds visibly)
    c = rng.uniform(-1, 1, size=n) * 1e-6
    weights = [rng.normal(size=n), rng.normal(size=n)]
    work = x0.copy()
    group = (None, slice(0, n), c, work, x0, x0)
    dots = move_pair(group, steps, weights)
    assert np.array_equal(work, x0 + steps[0] * c)  # the first step is written
    disps = [(x0 + s * c) - x0 for s in steps]
    diff = disps[0] - disps[1]
    assert not np.array_equal(diff, (steps[0] - steps[1]) * c)  # rounding shows: not (s0 - s1) * c
    for j, w in enumerate(weights):
        scale = float(np.abs(w) @ np.abs(diff))  # chunked sums: within a few ulps of one dot product
        assert abs(dots[j] - float(w @ diff)) <= 8 * n * np.finfo(float).eps * scale
    written = pair_dots([d.copy() for d in disps], weights)  # the same from displacements written out
    for j, w in enumerate(weights):
        assert abs(written[j] - dots[j]) <= 8 * n * np.finfo(float).eps * float(np.abs(w) @ np.abs(diff))
    write_step(group, steps[1])
    assert np.array_equal(work, x0 + steps[1] * c)
