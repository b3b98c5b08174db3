"""Inputs cast to bfloat16 inside a jax function: ``(x.astype(bfloat16) @ w.astype(bfloat16)).astype(float32)``.
Under jax.jit XLA keeps the product in float32; eagerly, and under jax.vjp, it is rounded to bfloat16 (1e-3 of
it). The rule's outputs are compared with the function's computed the same way (eagerly), so jax's own gradient
is no "primal output" failure, and its elements are never failed (see tests/core/test_casts_inside.py); a
custom rule of the wrong sign fails by its elements."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
bj = pytest.importorskip("backcheck.jax")
jnp = jax.numpy


def _cast_matmul(x, w):
    return (x.astype(jnp.bfloat16) @ w.astype(jnp.bfloat16)).astype(jnp.float32)


@jax.custom_vjp
def _wrong_sign(x, w):
    return _cast_matmul(x, w)


def _fwd(x, w):
    return _cast_matmul(x, w), (x, w)


def _bwd(saved, g):
    x, w = saved
    return -(g @ w.T), x.T @ g


_wrong_sign.defvjp(_fwd, _bwd)


def _point(seed):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.standard_normal((6, 5)), jnp.float32), jnp.asarray(rng.standard_normal((5, 4)), jnp.float32)


@pytest.mark.parametrize("seed", range(4))
def test_jax_gradients_through_a_bfloat16_matmul_are_never_failed(seed):
    x, w = _point(seed)
    report = bj.check(_cast_matmul, x, w)
    assert report.status in ("pass", "inconclusive"), str(report)
    assert not report.findings, str(report)


@pytest.mark.parametrize("seed", range(4))
def test_a_wrong_sign_through_a_bfloat16_matmul_fails_by_its_elements(seed):
    x, w = _point(seed)
    report = bj.check(_wrong_sign, x, w)
    assert report.status == "fail", str(report)
    assert not report.findings
    assert report.leaves[0].n_mismatch > 0
