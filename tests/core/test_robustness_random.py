"""A check leaves the user's random streams as it found them: generators its functions reach, numpy's global
state and the random module's, whether the function is random or not, and when it raises mid-check."""

from __future__ import annotations

import random

import numpy as np
import pytest

import backcheck
from backcheck.errors import UserFunctionError

X = np.linspace(-1.0, 1.0, 5)


def _global_state() -> tuple[object, ...]:
    _, key, *rest = np.random.get_state()
    return (key.copy(), *rest, random.getstate())


def _same_global(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    return bool(np.array_equal(a[0], b[0])) and a[1:] == b[1:]


@pytest.mark.parametrize("draw", ["generator", "legacy_global", "random_module", "random_state"])
def test_check_leaves_every_stream_it_reaches_as_found(draw):
    gen, legacy = np.random.default_rng(7), np.random.RandomState(3)
    noise = {
        "generator": lambda: gen.random(),
        "legacy_global": lambda: np.random.rand(),
        "random_module": lambda: random.random(),
        "random_state": lambda: legacy.rand(),
    }[draw]
    np.random.seed(5)
    random.seed(5)
    before, g0, l0 = _global_state(), gen.bit_generator.state, legacy.get_state()[1].copy()
    backcheck.check(lambda x: np.sum(np.sin(x)) * (1 + 1e-3 * noise()), X, lambda x: np.cos(x))
    assert gen.bit_generator.state == g0
    assert np.array_equal(legacy.get_state()[1], l0)
    assert _same_global(_global_state(), before)


def test_check_of_a_function_that_draws_then_raises_leaves_streams_as_found():
    gen = np.random.default_rng(0)
    calls = []

    def f(x):
        calls.append(gen.random(3))
        np.random.rand()
        if len(calls) > 4:
            raise ZeroDivisionError("late")
        return float(np.sum(x**2))

    np.random.seed(1)
    before, g0 = _global_state(), gen.bit_generator.state
    with pytest.raises(UserFunctionError):
        backcheck.check(f, X.copy(), lambda x: 2 * x)
    assert len(calls) > 4
    assert gen.bit_generator.state == g0
    assert _same_global(_global_state(), before)


def test_check_layer_leaves_a_generator_argument_and_the_global_state_as_found():
    rng = np.random.default_rng(0)

    def forward(x, gen):
        np.random.rand()
        mask = gen.random(x.shape) > 0.5
        return x * mask, mask

    def backward(dout, mask):
        return dout * mask, None

    np.random.seed(2)
    before, g0 = _global_state(), rng.bit_generator.state
    r = backcheck.check_layer(forward, backward, (np.linspace(0.1, 1, 6), rng), cache=True)
    assert r.ok, r
    assert rng.bit_generator.state == g0
    assert _same_global(_global_state(), before)


def test_check_object_leaves_the_global_state_as_found():
    class Noisy:
        def __init__(self):
            self.w = np.linspace(0.5, 1.5, 3)

        def forward(self, x):
            np.random.rand()  # a layer that draws from numpy's global state (and ignores the draw)
            self.x = x
            return x * self.w

        def backward(self, dout):
            self.dw = np.sum(dout * self.x, axis=0)
            return dout * self.w

    np.random.seed(4)
    before = _global_state()
    r = backcheck.check_object(Noisy(), np.linspace(-1, 1, 6).reshape(2, 3), params=["w"], grads={"w": "dw"})
    assert r.ok, r
    assert _same_global(_global_state(), before)


def test_a_generator_passed_as_seed_is_the_checks_own_and_drawn_from():
    seed = np.random.default_rng(0)
    s0 = seed.bit_generator.state
    backcheck.check(lambda x: np.sum(x**2), X.copy(), lambda x: 2 * x, seed=seed)
    assert seed.bit_generator.state != s0
