"""A move along a direction over one float64 run: every step's displacement dotted with the weights in one pass
(read once per chunk), the first step written, the later ones written without dots; the dots are those of the
actual (rounded) displacements, step by step, as a move that writes each displacement out gives them."""

from __future__ import annotations

import numpy as np
import pytest

from backcheck.moves import DOTS_CHUNK, move_dots, write_step


@pytest.mark.parametrize("n", [5, DOTS_CHUNK + 3])
@pytest.mark.parametrize("steps", [(1.0, -1.0), (0.5, -0.5, 0.25)])
def test_every_steps_dots_are_its_rounded_displacements_and_only_the_first_is_written(n, steps):
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=n) * 1e3  # (large values: a step of 1e-6 rounds visibly)
    c = rng.uniform(-1, 1, size=n) * 1e-6
    weights = [rng.normal(size=n), rng.normal(size=n)]
    work = x0.copy()
    group = (None, slice(0, n), c, work, x0, x0)
    dots = move_dots(group, steps, weights)
    assert np.array_equal(work, x0 + steps[0] * c)  # the first step is written
    for k, s in enumerate(steps):
        disp = (x0 + s * c) - x0
        assert not np.array_equal(disp, s * c)  # rounding shows: the displacement is not s * c
        for j, w in enumerate(weights):
            scale = float(np.abs(w) @ np.abs(disp))  # chunked sums: within a few ulps of one dot product
            assert abs(dots[k][j] - float(w @ disp)) <= 8 * n * np.finfo(float).eps * scale
    write_step(group, steps[1])
    assert np.array_equal(work, x0 + steps[1] * c)
