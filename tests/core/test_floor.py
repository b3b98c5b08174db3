"""A detection floor on demand: floor= finds single elements wrong by as little as 1e-9 on smooth functions."""

import numpy as np
import pytest

import backcheck
from backcheck.errors import BadInputError


def f(x):
    return float(np.sum(np.exp(np.sin(x)) * x**3))


def g(x):
    return np.exp(np.sin(x)) * (np.cos(x) * x**3 + 3 * x**2)


def point(seed):
    return np.random.default_rng(seed).uniform(-2, 2, 30)


@pytest.mark.parametrize("seed", range(3))
def test_a_single_element_wrong_by_1e9_fails_when_a_floor_of_1e9_is_asked_for(seed):
    x = point(seed)

    def wrong(x):
        out = g(x)
        out[7] *= 1 + 1e-9
        return out

    r = backcheck.check(f, x, wrong, floor=1e-9)
    assert r.status == "fail", r
    assert [e.name for e in r.leaves[0].worst if e.status == "mismatch"] == ["x[7]"]
    assert r.leaves[0].floor_rel < 1e-8


@pytest.mark.parametrize("floor", [1e-6, 1e-8, 1e-10])
@pytest.mark.parametrize("seed", range(3))
def test_no_false_alarm_at_any_floor(seed, floor):
    # a floor the rounding cannot reach is inconclusive for those elements, never a failure
    r = backcheck.check(f, point(seed), g, floor=floor)
    assert r.ok if floor >= 1e-8 else r.status != "fail", r
    x = point(seed).reshape(5, 6)
    layer = backcheck.check_layer(np.tanh, lambda d, x: (d * (1 - np.tanh(x) ** 2),), (x,), floor=floor)
    assert layer.ok if floor >= 1e-8 else layer.status != "fail", layer


def test_a_floor_the_noise_forbids_is_inconclusive():
    x = point(0)

    def noisy(x):
        bits = np.frombuffer(np.ascontiguousarray(x).tobytes(), dtype=np.uint64)
        return f(x) + 1e-9 * float((bits % 1000003).sum()) / 1000003.0

    r = backcheck.check(noisy, x, g, floor=1e-10)
    assert r.status == "inconclusive", r


@pytest.mark.parametrize("bad", [0, -1e-9, 1.5, float("nan"), "tight"])
def test_a_floor_is_a_relative_error_between_0_and_1(bad):
    with pytest.raises(BadInputError, match="floor"):
        backcheck.check(f, point(0), g, floor=bad)
