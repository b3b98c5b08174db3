"""backcheck.jax replays the numpy and Python streams a function reaches (a Generator argument or closure,
numpy's global state, the random module) at every call, as backcheck.check does: a dropout mask drawn from
them is the same at every evaluation, so a right gradient passes and a wrong one fails; the streams are left as
the user had them, and a note says the stream was replayed. And its inputs' finite entries are coordinates,
however large (1e300 in x64 mode)."""

from __future__ import annotations

import random

import numpy as np
import pytest

jnp = pytest.importorskip("jax.numpy")
bj = pytest.importorskip("backcheck.jax")

X = np.random.default_rng(0).normal(size=(3, 4))


def test_a_generator_argument_is_replayed_and_left_as_it_was() -> None:
    g = np.random.default_rng(0)
    before = g.bit_generator.state
    r = bj.check(lambda x, g: jnp.sum(x * (g.random(x.shape) > 0.5)), X, g)
    assert r.status == "pass", r
    assert g.bit_generator.state == before
    assert any("replayed the same random stream" in n for n in r.notes), r.notes


def test_a_wrong_rule_under_a_replayed_mask_still_fails() -> None:
    import jax

    rng = np.random.default_rng(1)

    @jax.custom_vjp
    def masked(x, m):
        return x * m

    masked.defvjp(lambda x, m: (x * m, m), lambda m, g: (g, jnp.zeros_like(m)))  # forgets the mask

    r = bj.check(lambda x: jnp.sum(masked(x, jnp.asarray(rng.random(x.shape) > 0.5, x.dtype))), X)
    assert r.status == "fail", r


def test_numpy_global_state_and_the_random_module_are_left_as_they_were() -> None:
    np.random.seed(3)
    random.seed(3)
    legacy, python = np.random.get_state()[1].copy(), random.getstate()
    r = bj.check(lambda x: jnp.sum(x * (np.random.rand(*x.shape) > 0.5) * (1 + 0 * random.random())), X)
    assert r.status == "pass", r
    assert np.array_equal(np.random.get_state()[1], legacy)
    assert random.getstate() == python


def test_a_deterministic_function_gets_no_replay_note() -> None:
    r = bj.check(lambda x: jnp.sum(jnp.tanh(x)), X)
    assert r.status == "pass"
    assert not any("random" in n for n in r.notes), r.notes


def test_large_finite_float64_entries_are_coordinates_in_x64(x64) -> None:
    """Entries above float32's range (1e300) are finite in float64: checked, not left out as non-finite."""
    import jax

    @jax.custom_vjp
    def scaled(x):
        return x * 1e-300

    wrong = np.array([5e-300, 1e-300, 1e-300])
    scaled.defvjp(lambda x: (scaled(x), None), lambda _, g: (g * wrong,))  # 5 times too large at x[0]
    for x in (np.full(3, 1e300), np.array([1e300, 0.5, 0.2])):
        r = bj.check(lambda x: jnp.sum(scaled(x)), x)
        assert r.status == "fail", r
        assert not any("non-finite" in n for n in r.notes), r.notes
