"""backcheck.jax.check called inside a jax transformation (its arguments are tracers) is a typed error that says
so and tells to call it outside, not jax's raw TracerArrayConversionError."""

from __future__ import annotations

import pytest

from backcheck.errors import BadInputError

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
bj = pytest.importorskip("backcheck.jax")


def _inside(x):
    bj.check(lambda x: jnp.sum(jnp.sin(x)), x)
    return x


def _inside_kw(x):
    bj.check(lambda a, w: jnp.sum(jnp.sin(a) * w), jnp.ones(3), w=x)
    return x


@pytest.mark.parametrize(
    "transform,point",
    [
        (jax.jit, jnp.ones(3)),
        (jax.vmap, jnp.ones((2, 3))),
        (lambda f: jax.grad(lambda x: jnp.sum(f(x))), jnp.ones(3)),
    ],
    ids=["jit", "vmap", "grad"],
)
@pytest.mark.parametrize("inner", [_inside, _inside_kw], ids=["positional", "keyword"])
def test_a_check_inside_a_jax_transformation_is_a_typed_error(transform, point, inner):
    with pytest.raises(BadInputError, match="jax tracer") as info:
        transform(inner)(point)
    text = str(info.value)
    assert "inside a jax transformation" in text and "Hint: call the check outside jit" in text


def test_the_same_check_outside_the_transformation_runs():
    assert bj.check(lambda x: jnp.sum(jnp.sin(x)), jnp.ones(3)).ok
