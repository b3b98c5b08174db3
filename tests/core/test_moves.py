"""A pair of moves along a direction over one float64 run: the difference of their displacements dotted with the
weights in one pass (each chunk read once), the first step written and the second written later without dots;
the dots are those of the actual (rounded) displacements' difference, as moves that write each displacement out
give them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from backcheck.moves import DOTS_CHUNK, move, move_pair, pair_dots, write_step

#: The one attribute of a leaf a move reads.
FLOAT64_LEAF = SimpleNamespace(dtype=np.dtype(np.float64))


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


def test_dots_of_more_than_a_pair_of_displacements_are_refused():
    d = [np.ones(3), np.zeros(3), np.ones(3)]
    with pytest.raises(ValueError, match="pair"):
        pair_dots(d, [np.ones(3)])
    np.testing.assert_array_equal(d[0], np.ones(3))  # refused before anything is overwritten


@pytest.mark.parametrize("s", [1.0, -1.0, 0.37])
def test_a_float64_run_moved_in_place_gives_its_exact_displacement(s):
    rng = np.random.default_rng(1)
    x0 = rng.normal(size=7) * 1e3
    c = rng.uniform(-1, 1, size=7) * 1e-6
    work = x0.copy()
    disp = move((FLOAT64_LEAF, slice(0, 7), c, work, x0, x0), None, s)
    assert np.array_equal(work, x0 + s * c) and np.array_equal(disp, (x0 + s * c) - x0)
