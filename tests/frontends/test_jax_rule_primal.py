"""A custom rule whose forward value is not the function's: a custom_vjp whose fwd returns 1.01 * sin(x) for sin,
a custom_jvp whose rule does. Under jax.value_and_grad the value is then the rule's and the gradient belongs to
another function; backcheck compared the rule's gradient with differences of the function alone and passed. It
fails now with a 'primal output' finding; right rules (float64 and float32) pass as before."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
bj = pytest.importorskip("backcheck.jax")


def _vjp_rule(scale: float):
    @jax.custom_vjp
    def f(x):
        return jnp.sin(x)

    f.defvjp(lambda x: (scale * jnp.sin(x), x), lambda x, g: (g * jnp.cos(x),))
    return f


def _jvp_rule(scale: float):
    @jax.custom_jvp
    def g(x):
        return jnp.sin(x)

    @g.defjvp
    def g_jvp(primals, tangents):
        (x,), (tx,) = primals, tangents
        return scale * jnp.sin(x), jnp.cos(x) * tx

    return g


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_rule_whose_forward_value_is_not_the_functions_fails(dtype, x64: None) -> None:
    x = jnp.asarray([0.3, -1.2, 2.0], dtype=dtype)
    for make, mode in ((_vjp_rule, "rev"), (_jvp_rule, "both")):
        report = bj.check(make(1.01), x, mode=mode)
        assert report.status == "fail", report
        assert [f.kind for f in report.findings] == ["primal output"], report.findings
        assert bj.check(make(1.0), x, mode=mode).status == "pass"
