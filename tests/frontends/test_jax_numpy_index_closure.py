"""A jax function that closes over a numpy int64 index array, checked with x64 off: jax's x64 mode (switched on
for the differences) cannot run it, and the eager calls that follow hand it jax arrays (``x.at[idx]`` works on
them), not numpy ones; the note names the cause and the way to float64 differences."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
bj = pytest.importorskip("backcheck.jax")

IDX = np.array([0, 2, 2])


def test_a_numpy_index_closure_is_checked_and_the_note_says_why_float32():
    assert not bj.x64_enabled()
    report = bj.check(lambda x: jnp.sum(jnp.tanh(x.at[IDX].add(x[1])) ** 2), jnp.linspace(0.1, 1.0, 5))
    assert report.ok, report
    note = next(n for n in report.notes if "finite differences run in float32" in n)
    assert "AttributeError" not in note and "make it a jnp array" in note


def test_a_wrong_rule_over_a_numpy_index_closure_still_fails():
    @jax.custom_vjp
    def f(x):
        return jnp.sum(jnp.tanh(x.at[IDX].add(x[1])) ** 2)

    def fwd(x):
        return f(x), x

    def bwd(x, g):
        return (1.1 * g * jax.grad(lambda v: jnp.sum(jnp.tanh(v.at[IDX].add(v[1])) ** 2))(x),)

    f.defvjp(fwd, bwd)
    assert bj.check(f, jnp.linspace(0.1, 1.0, 5)).status == "fail"
