"""The detection floor: what a pass promises, and a finer one on demand.

floor= finds single elements wrong by as little as 1e-9 on smooth functions; by default an element wrong by 1e-6
fails; no correct backward of the zoo's smooth layers fails at any floor (seeds 0-11); and the floor a pass prints
is never below what the check could see: an error just above it, in any element, fails."""

import numpy as np
import pytest

import backcheck
from backcheck.errors import BadInputError
from backcheck.zoo import SMOOTH_LAYERS, get


def f(x):
    return float(np.sum(np.exp(np.sin(x)) * x**3))


def g(x):
    return np.exp(np.sin(x)) * (np.cos(x) * x**3 + 3 * x**2)


def point(seed):
    return np.random.default_rng(seed).uniform(-2, 2, 30)


def one_wrong(k, rel):
    def wrong(x):
        out = g(x)
        out[k] *= 1 + rel
        return out

    return wrong


@pytest.mark.parametrize("seed", range(3))
def test_a_single_element_wrong_by_1e9_fails_when_a_floor_of_1e9_is_asked_for(seed):
    r = backcheck.check(f, point(seed), one_wrong(7, 1e-9), floor=1e-9)
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


SMOOTH = SMOOTH_LAYERS
SEEDS = range(12)


@pytest.mark.parametrize("seed", range(6))
def test_an_element_wrong_by_1e6_fails_by_default(seed):
    k = int(np.random.default_rng(100 + seed).integers(30))
    r = backcheck.check(f, point(seed), one_wrong(k, 1e-6))
    assert r.status == "fail" and [e.name for e in r.leaves[0].worst if e.status == "mismatch"] == [f"x[{k}]"]


@pytest.mark.parametrize("name", SMOOTH)
@pytest.mark.parametrize("floor", [None, 1e-6, 1e-9])
def test_no_smooth_layer_fails_at_any_floor(name, floor):
    layer = get(name)
    statuses = []
    for seed in SEEDS:
        inputs = tuple(layer.make_inputs(np.random.default_rng(seed), np.dtype(np.float64)).values())
        statuses.append(backcheck.check_layer(layer.forward, layer.backward, inputs, floor=floor, seed=seed).status)
    assert "fail" not in statuses, statuses
    if floor != 1e-9:  # 1e-9 may be out of the rounding's reach for a layer: inconclusive there, never a fail
        assert statuses == ["pass"] * len(SEEDS), statuses


@pytest.mark.parametrize("floor", [None, 1e-8])
@pytest.mark.parametrize("seed", range(3))
def test_an_error_just_above_the_printed_floor_fails_in_any_element(seed, floor):
    x = point(seed)
    passed = backcheck.check(f, x, g, floor=floor)
    assert passed.ok
    printed = passed.leaves[0].floor  # the largest bound a passing element was held to (absolute)
    for k in np.random.default_rng(seed).choice(30, size=6, replace=False):
        k = int(k)
        rel = 1.2 * printed / abs(g(x)[k])  # |error| = 1.2 x the printed floor
        r = backcheck.check(f, x, one_wrong(k, rel), floor=floor)
        assert r.status == "fail", (k, rel, str(r))
        assert [e.name for e in r.leaves[0].worst if e.status == "mismatch"] == [f"x[{k}]"]


def test_a_floor_is_held_for_every_element_above_the_size_auto_projects_at():
    # floor= asks every element to a precision: random directions state an RMS size instead, so a check of more
    # elements than 'auto' projects at checks each element; an explicit 'projected' says what the floor covered
    x = np.random.default_rng(0).normal(size=4100)

    def wrong(x):
        g = np.cos(x)
        g[5] *= 1 + 1e-7
        return g

    r = backcheck.check(lambda x: np.sum(np.sin(x)), x, wrong, floor=1e-8)
    assert r.status == "fail" and r.strategy == "full", r
    p = backcheck.check(lambda x: np.sum(np.sin(x)), x, np.cos, floor=1e-8, strategy="projected")
    assert any("none was here" in n for n in p.notes) and not any("every checked element" in n for n in p.notes)
