"""mode='both' on a custom_jvp rule jax cannot transpose (a lax.cond on the tangents under vmap): forward mode is
checked, with a note that reverse mode could not be built (jax.grad cannot differentiate it either); it raised
before. A wrong forward rule still fails."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

import backcheck.jax as bj  # noqa: E402


def _huber(scale: float):
    @jax.custom_jvp
    def huber(x, delta):
        return jnp.where(jnp.abs(x) <= delta, 0.5 * x**2, delta * (jnp.abs(x) - 0.5 * delta))

    @huber.defjvp
    def _(primals, tangents):
        (x, delta), (xd, dd) = primals, tangents

        def one(xi, xdi, ddi):
            return jax.lax.cond(
                jnp.abs(xi) <= delta,
                lambda _: scale * xi * xdi,
                lambda _: delta * jnp.sign(xi) * xdi + (jnp.abs(xi) - delta) * ddi,
                None,
            )

        return huber(x, delta), jax.vmap(one)(x, xd, jnp.broadcast_to(dd, x.shape))

    return lambda x, d: jnp.sum(huber(x, d))


X, D = np.array([0.3, -2.0, 1.5, -0.1], np.float32), np.float32(1.0)


@pytest.mark.parametrize("scale", [1.0, 1.5])
def test_both_modes_check_forward_mode_where_reverse_cannot_be_built(scale):
    r = bj.check(_huber(scale), X, D, mode="both")
    assert r.status == ("pass" if scale == 1.0 else "fail"), r
    assert any("reverse mode was not checked" in n for n in r.notes), r.notes


def test_a_function_not_finite_on_either_side_of_an_element_says_no_step_helps():
    from backcheck.errors import NonFiniteError

    @jax.custom_jvp
    def weighted_logsoftmax(x, w):
        ls = jax.nn.log_softmax(x, axis=-1)
        return jnp.where(w != 0.0, w * ls, jnp.zeros_like(ls))

    @weighted_logsoftmax.defjvp
    def _(primals, tangents):
        (x, w), (xd, wd) = primals, tangents
        ls = jax.nn.log_softmax(x, axis=-1)
        soft = jnp.sum(jax.nn.softmax(x, axis=-1) * xd, axis=-1, keepdims=True)
        t = jnp.where(x != -jnp.inf, w * (xd - soft), 0.0) + jnp.where(w != 0.0, wd * ls, 0.0)
        return jnp.where(w != 0.0, w * ls, jnp.zeros_like(ls)), t

    x = np.array([[0.5, -np.inf, 1.0, 0.2]], np.float32)
    w = np.array([[1.0, 0.0, 0.5, 2.0]], np.float32)
    with pytest.raises(NonFiniteError) as info:
        bj.check(weighted_logsoftmax, x, w, mode="fwd")
    assert "w[0, 1]" in str(info.value) and "argnums=" in (info.value.hint or ""), info.value
    assert bj.check(weighted_logsoftmax, x, w, mode="fwd", argnums=0).status == "pass"
