"""Log-domain jax rules at the points where they are used: masked logits and a value next to a pole.

Run: ``python examples/jax_log_domain.py``. A masked-attention row softmax takes its mask as a keyword
array of 0 and -inf; backcheck leaves the -inf entries out (they are masks, not coordinates) and checks the
rest. ``log1mexp(x) = log(1 - exp(-x))`` has a pole at 0. By default the differences run in float64 (jax's
x64 mode for the numeric side only, the rule as you run it), whose step at ``x = 1e-3`` stays inside the
domain; with float32 differences (``numeric_dtype='float32'``) the step would cross the pole, so that element
is differenced with a smaller step inside the domain, and the report says so. A rule that uses the small-x
slope ``1/x`` everywhere fails, and the report names the elements.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import backcheck.jax as bj


@jax.custom_vjp
def masked_softmax(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """Row softmax of ``logits + mask`` (``mask`` holds 0 and -inf)."""
    return jax.nn.softmax(logits + mask, axis=-1)


def _softmax_fwd(logits: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    p = masked_softmax(logits, mask)
    return p, p


def _softmax_bwd(p: jax.Array, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    d = p * (g - jnp.sum(g * p, axis=-1, keepdims=True))
    return d, d  # the mask moves the logits one for one


masked_softmax.defvjp(_softmax_fwd, _softmax_bwd)


@jax.custom_vjp
def log1mexp(x: jax.Array) -> jax.Array:
    """``log(1 - exp(-x))`` for ``x > 0``."""
    return jnp.log(-jnp.expm1(-x))


log1mexp.defvjp(lambda x: (log1mexp(x), x), lambda x, g: (g / jnp.expm1(x),))


@jax.custom_vjp
def log1mexp_small_x(x: jax.Array) -> jax.Array:
    return jnp.log(-jnp.expm1(-x))


log1mexp_small_x.defvjp(lambda x: (log1mexp_small_x(x), x), lambda x, g: (g / x,))  # right only as x -> 0


def main() -> None:
    logits = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    causal = np.triu(np.full((3, 4), -np.inf, dtype=np.float32), k=2)  # each row sees the first r + 2 keys
    print(bj.check(masked_softmax, logits, mask=causal))
    print()
    x = np.array([1e-3, 0.5, 2.0], dtype=np.float32)
    print(bj.check(log1mexp, x))
    print()
    print(bj.check(log1mexp, x, numeric_dtype="float32"))
    print()
    print(bj.check(log1mexp_small_x, x))


if __name__ == "__main__":
    main()
