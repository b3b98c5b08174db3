"""Output entries infinite at the point are left out with a cotangent of 0; where the gradient is then not finite
(a rule's 0 * inf: exp overflowing, log at 0, log(softmax) of a -inf mask) the check is a NonFiniteError naming
it, as backcheck.torch says, not a failing element with an analytic NaN and no word of why. A mask that
reaches no gradient (log_softmax, a where) still passes."""

from __future__ import annotations

import pytest

from backcheck.errors import NonFiniteError

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
bj = pytest.importorskip("backcheck.jax")


@pytest.mark.parametrize(
    "fn, x",
    [
        (jnp.exp, [0.5, 800.0, -1.0]),
        (jnp.log, [0.0, 1.0, 2.0]),
        (lambda z: jnp.log(jax.nn.softmax(z)), [0.3, -jnp.inf, 1.2, 0.1]),
    ],
    ids=["exp-overflow", "log-at-0", "log-of-masked-softmax"],
)
def test_infinite_outputs_with_a_non_finite_gradient_are_named(fn, x):
    with jax.enable_x64(True), pytest.raises(NonFiniteError, match="infinite entries"):
        bj.check(fn, jnp.array(x))


@pytest.mark.parametrize(
    "fn",
    [jax.nn.log_softmax, lambda z: jnp.where(jnp.arange(4) == 1, -jnp.inf, z)],
    ids=["log_softmax", "where"],
)
def test_masks_that_reach_no_gradient_pass(fn):
    with jax.enable_x64(True):
        assert bj.check(fn, jnp.array([0.3, -jnp.inf, 1.2, 0.1])).status == "pass"
