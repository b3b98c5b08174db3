"""A numerically stable log-sum-exp with a ``jax.custom_vjp`` rule, checked by backcheck.

Run: ``python examples/jax_custom_vjp.py``. The forward pass subtracts the maximum so large inputs do not
overflow; the backward pass returns ``g * softmax(x)`` from the saved output. A second rule that forgets to
broadcast the upstream gradient ``g`` over the reduced axis (uses its mean) fails, and the report says where.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import backcheck.jax as bj


@jax.custom_vjp
def logsumexp(x: jax.Array) -> jax.Array:
    """``log(sum(exp(x), axis=-1))`` for ``x (..., n)``, stable for large ``|x|``."""
    m = jax.lax.stop_gradient(jnp.max(x, axis=-1, keepdims=True))
    return jnp.log(jnp.sum(jnp.exp(x - m), axis=-1)) + m[..., 0]


def _fwd(x: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    out = logsumexp(x)
    return out, (x, out)


def _bwd(res: tuple[jax.Array, jax.Array], g: jax.Array) -> tuple[jax.Array]:
    x, out = res
    return (g[..., None] * jnp.exp(x - out[..., None]),)  # softmax(x), from the saved output


logsumexp.defvjp(_fwd, _bwd)


@jax.custom_vjp
def logsumexp_buggy(x: jax.Array) -> jax.Array:
    return logsumexp(x)


def _bwd_buggy(res: tuple[jax.Array, jax.Array], g: jax.Array) -> tuple[jax.Array]:
    x, out = res
    return (jnp.mean(g) * jnp.exp(x - out[..., None]),)  # one number for every row instead of g[i]


logsumexp_buggy.defvjp(_fwd, _bwd_buggy)


def main() -> None:
    x = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32) * 30  # exp(x) alone would overflow
    # float32 rule, finite differences in float64: x64 is on for these checks only
    print(bj.check(logsumexp, x, numeric_dtype="float64"))
    print()
    print(bj.check(logsumexp_buggy, x, numeric_dtype="float64"))


if __name__ == "__main__":
    main()
