"""A straight-through estimator whose forward casts its output to float32 (``(x > 0).float()``, the usual
spelling; ``torch.round(x).float()``; a jax ``.astype(float32)``) is as locally constant as the same step in x's
own dtype: its derivative is 0, a surrogate rule fails with the 'locally constant' finding. The float32 steps
(5e-3 of |x|) widened by the noise probe once reached past the element's own size, across the threshold at 0,
and the jump passed for the quantum of a value rounded inside ('f moves in steps of 0.37'): inconclusive, or
fail, depending on the point. A genuinely quantized f (bfloat16 inside) stays as it was."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck

# every element at least 1 from the threshold (the hunt's points), and plain normal draws
FAR = [
    np.array([[1.5, -2.0, 1.2, -1.1], [2.2, -1.7, 1.9, -1.3]]),
    np.array([[2.1, -1.3, -3.2, 1.6], [-2.1, -1.7, 1.3, -1.8], [1.4, 1.3, 1.7, -1.9]]),
    np.array([[-2.1, -1.4, -1.1, 1.6], [1.5, 1.1, -1.5, 1.2], [-1.1, 1.9, -1.1, 2.3]]),
]


def _normal(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((3, 4))


def _kinds(report) -> list[str]:
    return [f.kind for f in report.findings]


def _fails_as_a_step(report) -> bool:
    # the finding, or (where a step of the differences crosses the threshold: f moved) elements that fail
    located = "locally constant" in _kinds(report) or report.leaves[0].n_mismatch > 0
    return report.status == "fail" and located and "a value rounded inside" not in str(report)


@pytest.mark.parametrize("k", range(3))
def test_a_float32_step_with_a_surrogate_rule_fails_as_locally_constant(k: int) -> None:
    x = FAR[k]
    w = np.arange(1.0, x.size + 1).reshape(x.shape)

    def step(p):
        return np.float32(np.sum((p > 0).astype(np.float32) * w))

    for dtype in (np.float64, np.float32):
        r = backcheck.check(step, x.astype(dtype), lambda p: w)
        assert r.status == "fail" and "locally constant" in _kinds(r), r
        assert "a value rounded inside" not in str(r), r
    assert backcheck.check(step, x, lambda p: 0 * w).status == "pass"  # its derivative


@pytest.mark.parametrize("k", range(3))
def test_a_torch_straight_through_estimator_with_a_float32_output_fails(k: int) -> None:
    torch = pytest.importorskip("torch")
    import backcheck.torch as bt

    class STE(torch.autograd.Function):  # aras-ai DCLS's STEFunction
        @staticmethod
        def forward(ctx, x):
            return (x > 0).float()

        @staticmethod
        def backward(ctx, g):
            return torch.nn.functional.hardtanh(g)

    class RoundSTE(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return torch.round(x).float()

        @staticmethod
        def backward(ctx, g):
            return g

    for x in (FAR[k], _normal(k)):
        for fn in (STE, RoundSTE):
            for dtype in (torch.float64, torch.float32):
                r = bt.check_function(fn, torch.tensor(x, dtype=dtype))
                assert _fails_as_a_step(r), r
                assert fn is RoundSTE or x is not FAR[k] or "locally constant" in _kinds(r), r  # (x.5: round's edge)


@pytest.mark.parametrize("k", range(3))
def test_a_jax_straight_through_estimator_fails_at_every_point(k: int) -> None:
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    import backcheck.jax as bj

    @jax.custom_vjp
    def ste(x):
        return (x > 0).astype(jnp.float32)

    ste.defvjp(lambda x: (ste(x), None), lambda _, g: (g,))
    for x in (FAR[k], _normal(k)):
        r = bj.check(ste, jnp.asarray(x, dtype=jnp.float32))
        assert _fails_as_a_step(r), r
        assert x is not FAR[k] or "locally constant" in _kinds(r), r


def test_a_float32_function_rounded_to_bfloat16_inside_keeps_its_verdict() -> None:
    # a grid of 2**-8 of |x|: many equal small steps within the reach, a quantum; a right rule is not failed
    torch = pytest.importorskip("torch")
    import backcheck.torch as bt

    for seed in range(3):
        x = torch.tensor(_normal(seed), dtype=torch.float32, requires_grad=True)
        r = bt.check(lambda v: torch.tanh(v.bfloat16().float()).sum(), x)
        assert r.status == "inconclusive", r


@pytest.mark.parametrize("scale", [0.3, 0.1, 0.03])
def test_a_straight_through_rule_at_small_inputs_fails(scale):
    # (inputs below 1: a reach of a tenth of max(|x|, 1) still carried them across the threshold, and integer
    # weights' jumps passed for a rounding grid's quanta; the reach is a tenth of |x| itself, or of its step)
    weights = np.arange(1.0, 13).reshape(3, 4)
    for seed in range(3):
        x = (np.random.default_rng(seed).standard_normal((3, 4)) * scale).astype(np.float32)
        r = backcheck.check(lambda p: float(np.sum((p > 0).astype(np.float32) * weights)), x, lambda p: weights)
        assert r.status == "fail", (seed, r)
