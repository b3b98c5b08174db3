"""A function the check wraps (to replay its random streams at every call) keeps its own name in the report: the
wrapper's code is one for every function it wraps, and a lambda's name read from its source was cached by code,
so every later lambda was named after the first."""

import numpy as np
import pytest

import backcheck


def test_jax_checks_of_two_lambdas_are_named_after_each():
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    bj = pytest.importorskip("backcheck.jax")

    x = np.random.default_rng(0).normal(size=(3, 4))
    first = bj.check(lambda x: jnp.sum(jnp.sin(x) ** 2), x)
    second = bj.check(lambda a: jax.nn.logsumexp(a, 1), x)
    assert first.title == "lambda x: jnp.sum(jnp.sin(x) ** 2)", first.title
    assert second.title == "lambda a: jax.nn.logsumexp(a, 1)", second.title


def test_random_numpy_checks_of_two_lambdas_are_named_after_each():
    x = np.random.default_rng(0).normal(size=5)
    rng = np.random.default_rng(1)
    # (a draw added to the value, replayed at every call: the gradient is the function's without it)
    first = backcheck.check(lambda x: float(np.sum(x**2) + rng.uniform()), x, np.ones(5) * 2 * x)
    second = backcheck.check(lambda y: float(np.sum(np.sin(y)) + rng.uniform()), x, np.cos)
    assert first.status == second.status == "pass", (first, second)
    assert first.title.startswith("lambda x: float(np.sum(x**2)"), first.title
    assert second.title.startswith("lambda y: float(np.sum(np.sin(y))"), second.title
