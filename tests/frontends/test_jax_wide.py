"""A low-precision jax rule against float64 finite differences: the same reverse pass runs in float64 (x64 mode,
every floating argument widened), judges the formula at float64's resolution, and the rule's own rounding is
measured against it, as the torch frontend does. A confident softmax's ``p - 1`` is a small difference of values
near 1: its float32 rounding is far above float32's epsilon times the element, and no bug."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
bj = pytest.importorskip("backcheck.jax")

LABELS = np.arange(6) % 4


@pytest.fixture
def x64() -> Iterator[None]:
    """jax's x64 mode for one test, restored afterwards."""
    with jax.enable_x64(True):
        yield


def _confident_logits(seed: int, margin: float = 9.0) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(6, 4)).astype(np.float32)
    logits[np.arange(6), LABELS] += margin
    return logits


def _cross_entropy(scale: float) -> Callable[[Any], Any]:
    """Per-row softmax cross-entropy with the textbook rule ``(p - onehot) * g``, ``scale`` times."""

    @jax.custom_vjp
    def loss(x):
        return -jnp.take_along_axis(jax.nn.log_softmax(x, 1), jnp.asarray(LABELS)[:, None], 1)[:, 0]

    def bwd(x, g):
        p = jax.nn.softmax(x, 1)
        return ((p - jax.nn.one_hot(LABELS, 4, dtype=x.dtype)) * g[:, None] * scale,)

    loss.defvjp(lambda x: (loss(x), x), bwd)
    return loss


@pytest.mark.parametrize("seed", range(4))
def test_a_confident_float32_softmax_cross_entropy_passes_and_a_1_percent_error_fails(seed: int, x64: None) -> None:
    x = jnp.asarray(_confident_logits(seed))
    p = jax.nn.softmax(x, 1)
    # the label's p - 1 is about 1e-4, but p itself rounds at float32's epsilon: far above eps32 * |p - 1|
    assert float(jnp.max(1 - p[np.arange(6), LABELS])) < 3e-3
    right = bj.check(_cross_entropy(1.0), x)
    assert right.ok, str(right)
    native = bj.check(lambda t: -jnp.take_along_axis(jax.nn.log_softmax(t, 1), jnp.asarray(LABELS)[:, None], 1), x)
    assert native.ok, str(native)
    assert bj.check(_cross_entropy(1.01), x).status == "fail"


def test_the_float64_run_serves_a_float64_numeric_side_with_x64_off_too() -> None:
    x = jnp.asarray(_confident_logits(7))
    report = bj.check(_cross_entropy(1.0), x, numeric_dtype="float64")
    assert report.ok, str(report)
    assert bj.check(_cross_entropy(1.01), x, numeric_dtype="float64").status == "fail"


def _scaled_sin(scale: float, narrow_only: bool = False) -> Callable[[Any], Any]:
    @jax.custom_vjp
    def f(x):
        return jnp.sin(x)

    def bwd(x, g):
        k = scale if not narrow_only or x.dtype != jnp.float64 else 1.0
        return (g * jnp.cos(x) * k,)

    f.defvjp(lambda x: (f(x), x), bwd)
    return f


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_rules_are_judged_through_the_float64_run(dtype: str, x64: None) -> None:
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4)), dtype=getattr(jnp, dtype))
    right = bj.check(_scaled_sin(1.0), x)
    assert right.ok, str(right)
    assert right.leaves[0].floor_rel < 0.25  # a few bfloat16 epsilons, not the modelled 16 of them
    assert bj.check(_scaled_sin(1.03), x).status == "fail"
    # a rule wrong only in the narrow dtype: its float64 run is another computation and stands in for nothing
    narrow = bj.check(_scaled_sin(1.5, narrow_only=True), x)
    assert narrow.status != "pass", str(narrow)
    assert any("float64 run" in n for n in narrow.notes), narrow.notes


def test_x64_off_differences_run_in_float64_by_default() -> None:
    # the user's jax without x64: the rule runs as they run it (float32); the differences in float64
    assert not bj.x64_enabled()
    x = jnp.asarray(_confident_logits(11))
    report = bj.check(_cross_entropy(1.0), x)
    assert report.ok and any("x64 mode was on for the finite differences only" in n for n in report.notes), report
    assert bj.check(_cross_entropy(1.01), x).status == "fail"
    assert not bj.x64_enabled()


def test_a_function_that_is_another_one_in_x64_mode_keeps_float32_differences() -> None:
    # random draws from a key come out differently in x64 mode: another function, so float32 differences
    key = jax.random.PRNGKey(3)

    def noisy_scale(x):
        return jnp.sum(jnp.sin(x) * jax.random.normal(key, x.shape))

    x = jnp.asarray(np.random.default_rng(2).normal(size=5), dtype=jnp.float32)
    with jax.enable_x64(True):
        wide = jax.random.normal(key, (5,))
    assert not np.allclose(np.asarray(wide), np.asarray(jax.random.normal(key, (5,))), rtol=1e-3)
    report = bj.check(noisy_scale, x)
    assert report.ok, str(report)
    assert any("another function than as you run it" in n for n in report.notes), report.notes


def _clip_rule(lo: float, hi: float) -> Callable[[Any], Any]:
    """sin of x whose rule clips its incoming gradient to [lo, hi] (jax's clip_gradient example)."""

    @jax.custom_vjp
    def clipped(x):
        return x

    clipped.defvjp(lambda x: (x, None), lambda _, g: (jnp.clip(g, lo, hi),))
    return lambda x: jnp.sin(clipped(x))


def test_a_rule_that_clips_its_cotangent_fails_whatever_the_cotangent() -> None:
    x = jnp.asarray([0.1, 3.0, 6.2], dtype=jnp.float32)
    # with the default cotangent the clip need not bite (the gradient is then right there) ...
    report = bj.check(_clip_rule(-0.75, 0.75), x)
    assert report.status == "fail", str(report)
    (found,) = [f for f in report.findings if f.kind == "nonlinear backward"]
    assert "clips, normalizes or thresholds" in found.message and found.where == "x"
    # ... and a clip far beyond every cotangent tried is the identity: right
    assert bj.check(_clip_rule(-1e30, 1e30), x).ok


def test_linear_rules_that_round_a_scaled_cotangent_differently_pass(x64: None) -> None:
    @jax.custom_vjp
    def lse(x):
        return jax.nn.logsumexp(x)

    def bwd(x, g):  # in log space: exp(log|g| + x - lse), not g times a softmax
        return (jnp.sign(g) * jnp.exp(jnp.log(jnp.abs(g)) + x - jax.nn.logsumexp(x)),)

    lse.defvjp(lambda x: (lse(x), x), bwd)
    x = jnp.asarray(np.random.default_rng(5).normal(size=8) * 30)
    report = bj.check(lse, x)
    assert report.ok and not report.findings, str(report)


def _implicit_sqrt() -> Callable[[Any], Any]:
    """sqrt(a) as the fixed point of Newton's map, differentiated implicitly: the adjoint u solves
    u = g + (dmap/dx)^T u by iteration to an absolute tolerance of 1e-6, in the input's dtype, as implicit layers
    do. On a cotangent a thousand times larger that tolerance lies below float32's spacing: it never converges."""

    def newton(a, x):
        return 0.5 * (x + a / x)

    def solve(step, x0):
        def go(carry):
            return jnp.abs(carry[0] - carry[1]) > 1e-6

        return jax.lax.while_loop(go, lambda c: (c[1], step(c[1])), (x0, step(x0)))[1]

    @jax.custom_vjp
    def root(a):
        return solve(lambda x: newton(a, x), a)

    def bwd(res, g):
        a, x = res
        _, pull_x = jax.vjp(lambda x: newton(a, x), x)
        u = solve(lambda u: g + pull_x(u)[0], g)
        return (jax.vjp(lambda a: newton(a, x), a)[1](u)[0],)

    root.defvjp(lambda a: (root(a), (a, root(a))), bwd)
    return root


def test_the_linearity_probe_keeps_to_cotangents_an_iterative_rule_converges_on() -> None:
    import threading

    done: list[Any] = []
    worker = threading.Thread(target=lambda: done.append(bj.check(_implicit_sqrt(), jnp.float32(2.0))), daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert done, "the check did not return: a probe at a far larger cotangent never converges"
    assert done[0].ok, str(done[0])


def test_an_inf_mask_beside_the_points_own_rounding_probe_warns_nothing() -> None:
    import warnings

    x = jnp.asarray([0.0, 1.0, -jnp.inf, 2.0], dtype=jnp.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        report = bj.check(lambda x: jnp.sum(jnp.where(jnp.isfinite(x), x**2.5, 0.0)), x)
        # jax's gradient of x**2.5 under a where is NaN at the mask (0 * nan: the where's well-known trap), which
        # fails as such, and nothing else does; the where applied to the input first gives 0 there, and passes
        assert [f.kind for f in report.findings] == ["non-finite gradient"], str(report)
        assert all(lf.status != "fail" for lf in report.leaves), str(report)
        safe = bj.check(lambda x: jnp.sum(jnp.where(jnp.isfinite(x), jnp.where(jnp.isfinite(x), x, 1.0) ** 2.5, 0)), x)
    assert safe.status != "fail", str(safe)


def test_a_float32_input_beside_a_float16_one_carries_its_rounding_and_passes() -> None:
    # sin(a) with a in float16 enters b's gradient rounded at float16: measured, it is no bug; a rule 3% off is
    a = jnp.linspace(0.1, 1.0, 5).astype(jnp.float16)
    b = jnp.linspace(0.1, 1.0, 5)
    assert bj.check(lambda a, b: jnp.sum(jnp.sin(a) * b), a, b).ok

    @jax.custom_vjp
    def prod(a, b):
        return jnp.sum(jnp.sin(a) * b)

    prod.defvjp(
        lambda a, b: (prod(a, b), (a, b)),
        lambda r, g: (g * jnp.cos(r[0]) * r[1], (g * jnp.sin(r[0]) * 1.03).astype(r[1].dtype)),
    )
    assert bj.check(prod, a, b).status == "fail"


def _bce_rule(factor: Any) -> Callable[[Any], Any]:
    def loss(z: Any) -> Any:
        return jnp.mean(jnp.logaddexp(0.0, -z))

    @jax.custom_vjp
    def bce(z: Any) -> Any:
        return loss(z)

    bce.defvjp(lambda z: (loss(z), z), lambda z, g: (g * (jax.nn.sigmoid(z) - 1) / z.size * factor,))
    return bce


def test_a_float64_bce_rule_at_confident_logits_has_its_rounding_measured(x64: None) -> None:
    z = jnp.asarray(np.random.default_rng(0).normal(size=8) * 3 + 25)  # sigmoid(z) - 1 keeps sigmoid's rounding
    report = bj.check(_bce_rule(1.0), z)
    assert report.status == "pass", str(report)
    assert any("measured along a line" in n for n in report.notes)
    wrong = bj.check(_bce_rule(jnp.where(jnp.arange(8) == 3, 1.001, 1.0)), z)
    assert [e.name for e in wrong.leaf("z").worst if e.status == "mismatch"] == ["z[3]"], str(wrong)
