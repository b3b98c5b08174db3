"""Custom rules from public jax code that the jax frontend misread: a rule linear only up to its solver's tolerance
(not a clipping rule), a custom_jvp whose reverse mode jax cannot derive, and a rule off by a small uniform
error (an iterative solve stopped at a tolerance)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest

from backcheck.errors import UserFunctionError

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


def _narrow_rule():
    """sin, whose rule refuses float64 (a kernel written for float32 only)."""

    @jax.custom_vjp
    def f(x):
        return jnp.sin(x)

    def bwd(x, g):
        if g.dtype == jnp.float64:
            raise TypeError("kernel compiled for float32 only")
        return (g * jnp.cos(x),)

    f.defvjp(lambda x: (jnp.sin(x), x), bwd)
    return f


def test_a_rule_refusing_float64_is_judged_at_its_own_dtype_with_a_note_naming_its_error() -> None:
    x = jnp.asarray(np.random.default_rng(2).normal(size=6), dtype=jnp.float32)
    report = bj.check(_narrow_rule(), x)
    assert report.ok, str(report)
    said = [n for n in report.notes if "kernel compiled for float32 only" in n]
    assert said and "jax.vjp of f" in said[0] and "own dtype" in said[0], report.notes


def _jvp_by_iteration():
    """sqrt whose custom_jvp solves ``2 y dy = da`` for the tangent by a while_loop (as a solver such as gmres
    does): right in forward mode, and jax cannot transpose it into reverse mode."""

    @jax.custom_jvp
    def root(a):
        return jnp.sqrt(a)

    @root.defjvp
    def _(primals, tangents):
        (a,), (t,) = primals, tangents
        y = root(a)

        def body(state):
            dy, k = state
            return dy + (t - 2 * y * dy) / (2 * y), k + 1

        dy, _ = jax.lax.while_loop(lambda s: s[1] < 3, body, (jnp.zeros_like(t), 0))
        return y, dy

    return root


def test_a_custom_jvp_jax_cannot_transpose_says_so_and_points_to_forward_mode() -> None:
    a = jnp.asarray([0.5, 1.5, 2.0], dtype=jnp.float32)
    with pytest.raises(UserFunctionError, match="cannot derive reverse mode") as info:
        bj.check(_jvp_by_iteration(), a, mode="rev")
    assert "custom_jvp" in str(info.value) and "mode='fwd'" in str(info.value)
    assert bj.check(_jvp_by_iteration(), a, mode="fwd").ok
    # mode='both' checks forward mode and says reverse mode could not be built (jax.grad cannot either)
    both = bj.check(_jvp_by_iteration(), a, mode="both")
    assert both.ok and any("reverse mode was not checked" in n for n in both.notes), both.notes


# -- a rule off by a small error spread over the gradient (solved to a tolerance) --------------------------------


def _sine(error: float, drift: float = 0.0):
    """``sum(sin(x))`` whose rule is off by ``error`` of the gradient in every element, and (``drift``) by that
    much more per factor e of the cotangent's size: a rule solved to a tolerance, or an approximate formula."""

    @jax.custom_vjp
    def f(x):
        return jnp.sum(jnp.sin(x))

    def bwd(x, g):
        return (g * jnp.cos(x) * (1.0 + error + drift * jnp.log(jnp.abs(g))),)

    f.defvjp(lambda x: (f(x), x), bwd)
    return f


def test_a_rule_off_by_a_small_uniform_error_fails_with_a_note_on_solver_tolerance(x64: None) -> None:
    x = jnp.asarray(np.random.default_rng(3).uniform(-1.0, 1.0, size=8))
    report = bj.check(_sine(2e-5), x)
    assert report.status == "fail", str(report)
    (said,) = [n for n in report.notes if "small error spread over it" in n]
    assert "8 of the 8 elements" in said and "tolerance" in said and "atol=1e-04" in said
    # a wrong term (off by a good part of the gradient) is not called small; nor is a check with its own atol
    assert not [n for n in bj.check(_sine(0.3), x).notes if "small error" in n]
    assert not [n for n in bj.check(_sine(2e-5), x, atol=1e-9).notes if "small error" in n]


def test_a_rule_whose_cotangent_dependence_is_within_its_own_error_is_not_called_nonlinear(x64: None) -> None:
    x = jnp.asarray(np.random.default_rng(3).uniform(-1.0, 1.0, size=8))
    report = bj.check(_sine(1e-3, drift=1e-4), x)
    assert report.status == "fail" and not report.findings, str(report)
    assert [n for n in report.notes if "linear in its cotangent only up to" in n], report.notes
    assert [n for n in report.notes if "small error spread over it" in n], report.notes
    # the same dependence on a rule right at the default cotangent is beyond the check's bounds: nonlinear
    right = bj.check(_sine(0.0, drift=1e-4), x)
    assert "nonlinear backward" in [f.kind for f in right.findings], str(right)
