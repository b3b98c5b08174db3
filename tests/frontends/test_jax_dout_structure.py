"""backcheck.jax holds a given dout with dicts to the output's structure: other keys, or a sequence where the output
is a dict, paired the leaves with the outputs' silently in flattening order (jax.vjp refuses them too). Lists and
tuples stand for each other, and a dout of the output's own structure is taken as before."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

import backcheck.jax as bj  # noqa: E402
from backcheck.errors import GradientStructureError  # noqa: E402

X = np.array([0.3, -0.2, 0.9], np.float32)


def f(x):
    return {"loss": jnp.sum(x**2) * jnp.ones(3), "aux": jnp.sin(x)}


@pytest.mark.parametrize(
    "dout",
    [{"aux": np.zeros(3), "zzz": np.ones(3)}, (np.ones(3), np.zeros(3)), [np.ones(3), np.zeros(3)]],
    ids=["other keys", "tuple", "list"],
)
def test_a_dout_of_another_structure_is_refused(dout):
    with pytest.raises(GradientStructureError, match="structure"):
        bj.check(f, X, dout=dout)


def test_the_outputs_structure_and_sequences_for_sequences_are_taken():
    assert bj.check(f, X, dout={"aux": np.ones(3), "loss": np.ones(3)}).status == "pass"
    pair = lambda x: (jnp.sin(x), jnp.cos(x))  # noqa: E731
    assert bj.check(pair, X, dout=[np.ones(3), np.ones(3)]).status == "pass"
