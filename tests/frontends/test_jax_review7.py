"""Custom rules from public jax code that the jax frontend misread: a rule linear only up to its solver's tolerance
(not a clipping rule), a custom_jvp whose reverse mode jax cannot derive, and a rule off by a small uniform
error (an iterative solve stopped at a tolerance)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
bj = pytest.importorskip("backcheck.jax")


@pytest.fixture
def x64() -> Iterator[None]:
    """jax's x64 mode for one test, restored afterwards."""
    with jax.enable_x64(True):
        yield


#: the small input's gradient is this fraction of the large one's
SMALL = 1e-3
#: its rule's relative error per factor e of the cotangent's size (an adaptive solver's step control)
DRIFT = 1e-4


def _tolerant(clip: float | None = None):
    """``sum(sin(y)) + SMALL * sum(a ** 2)`` whose rule for ``a`` is exact for a unit cotangent and off by
    ``DRIFT * log|g|`` of itself for another (an adjoint solved to a tolerance relative to the cotangent); with
    ``clip``, the rule clips its cotangent instead."""

    @jax.custom_vjp
    def f(y, a):
        return jnp.sum(jnp.sin(y)) + SMALL * jnp.sum(a * a)

    def fwd(y, a):
        return f(y, a), (y, a)

    def bwd(res, g):
        y, a = res
        if clip is not None:
            g = jnp.clip(g, -clip, clip)
            return g * jnp.cos(y), g * 2 * SMALL * a
        drift = 1.0 + DRIFT * jnp.log(jnp.abs(g))
        return g * jnp.cos(y), g * 2 * SMALL * a * drift

    f.defvjp(fwd, bwd)
    return f


def test_a_rule_linear_up_to_a_tolerance_far_below_the_largest_gradient_is_not_called_nonlinear(x64: None) -> None:
    rng = np.random.default_rng(1)
    y, a = jnp.asarray(rng.normal(size=5)), jnp.asarray(rng.normal(size=4))
    report = bj.check(_tolerant(), y, a)
    assert "nonlinear backward" not in [f.kind for f in report.findings], str(report)
    assert report.ok, str(report)
    assert DRIFT * math.log(4.0) > 10 * np.finfo(np.float64).eps ** (1 / 3)  # on a's own scale: 'nonlinear'


def test_a_clipping_rule_beside_a_small_gradient_still_fails(x64: None) -> None:
    rng = np.random.default_rng(1)
    y, a = jnp.asarray(rng.normal(size=5)), jnp.asarray(rng.normal(size=4))
    report = bj.check(_tolerant(clip=2.0), y, a)
    assert report.status == "fail" and "nonlinear backward" in [f.kind for f in report.findings], str(report)
