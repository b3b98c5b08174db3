"""The random directions' weights: 32-bit integers scaled to uniform on [-1/2, 1/2), the same for every kind of
bit generator numpy offers, drawn again from a saved state exactly (a failing direction is settled that way)."""

import math

import numpy as np
import pytest

from backcheck.strategies.projected import INT32_SCALE, direction

KINDS = [np.random.PCG64, np.random.PCG64DXSM, np.random.SFC64, np.random.Philox, np.random.MT19937]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
@pytest.mark.parametrize("n", [1, 2, 3, 100_001])
def test_weights_are_uniform_with_the_steps_variance(kind, n):
    steps = np.full(n, 3.0)
    v = direction(np.random.Generator(kind(7)), steps * INT32_SCALE)
    assert v.shape == (n,) and v.dtype == np.float64
    assert np.all(v >= -1.5) and np.all(v < 1.5)  # 3 times [-1/2, 1/2)
    if n > 1000:
        # mean 0 and variance 9 / 12 of uniform weights, within 6 standard errors of the sample's
        assert abs(v.mean()) < 6 * math.sqrt(0.75 / n)
        assert abs(v.var() - 0.75) < 6 * math.sqrt((81 / 80 - 0.75**2) / n)
        assert np.unique(v).size > 0.99 * n  # 32 bits each: repeats are rare


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_a_saved_state_draws_the_same_direction_and_consecutive_ones_differ(kind):
    rng = np.random.Generator(kind(3))
    hc = np.linspace(0.5, 2.0, 1001) * INT32_SCALE
    direction(rng, hc)
    state = rng.bit_generator.state
    first = direction(rng, hc)
    second = direction(rng, hc)
    again = kind()
    again.state = state
    np.testing.assert_array_equal(direction(np.random.Generator(again), hc, np.empty(1001)), first)
    assert not np.array_equal(first, second)
