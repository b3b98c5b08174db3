"""Kernels that compute in float32 whatever dtype they are handed: wrong backwards fail, correct ones pass."""

import numpy as np
import pytest

import backcheck

F = np.float32
C, A = F(0.7978845608), F(0.044715)


def gelu(x):
    x = np.asarray(x, F)
    return 0.5 * x * (1 + np.tanh(C * (x + A * x**3)))


def gelu_backward(d, x, k=1.0):
    x = np.asarray(x, F)
    t = np.tanh(C * (x + A * x**3))
    g = 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * C * (1 + 3 * A * x**2)
    return (np.asarray(d, F) * g * F(k),)


def layernorm(x):
    x = np.asarray(x, F)
    mu = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    return (x - mu) / np.sqrt(var + F(1e-5))


def layernorm_backward(d, x, k=1.0):
    x, d = np.asarray(x, F), np.asarray(d, F)
    mu = x.mean(axis=1, keepdims=True)
    inv = 1 / np.sqrt(x.var(axis=1, keepdims=True) + F(1e-5))
    xh = (x - mu) * inv
    g = inv * (d - d.mean(axis=1, keepdims=True) - xh * (d * xh).mean(axis=1, keepdims=True))
    return (g * F(k),)


def matmul(x, w):
    return np.asarray(x, F) @ np.asarray(w, F)


def matmul_backward(d, x, w, k=1.0):
    d, x, w = np.asarray(d, F), np.asarray(x, F), np.asarray(w, F)
    return d @ w.T, (x.T @ d) * F(k)


KERNELS = {
    "gelu": (gelu, gelu_backward, lambda rng, dt: (rng.normal(size=(16, 16)).astype(dt),)),
    "layernorm": (layernorm, layernorm_backward, lambda rng, dt: (rng.normal(size=(8, 32)).astype(dt),)),
    "matmul": (
        matmul,
        matmul_backward,
        lambda rng, dt: (rng.normal(size=(12, 10)).astype(dt), rng.normal(size=(10, 9)).astype(dt)),
    ),
}


def _check(name, k, dtype, strategy):
    fwd, bwd, make = KERNELS[name]
    inputs = make(np.random.default_rng(0), dtype)
    return backcheck.check_layer(fwd, lambda d, *xs: bwd(d, *xs, k=k), inputs, strategy=strategy)


@pytest.mark.parametrize("strategy", ["full", "projected", "auto"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_float32_kernels_pass_when_right_and_fail_at_1e2(name, dtype, strategy):
    right = _check(name, 1.0, dtype, strategy)
    assert right.ok, right
    assert _check(name, 1 + 1e-2, dtype, strategy).status == "fail"
    # 1e-3 is at float32's own floor for kernels that sum many products: caught, or the floor says so
    finer = _check(name, 1 + 1e-3, dtype, strategy)
    assert finer.status == "fail" or any(lf.floor_rel >= 1e-3 / 4 for lf in finer.leaves), finer


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_an_error_of_1e4_is_caught_or_below_the_stated_floor(name):
    r = _check(name, 1 + 1e-4, np.float64, "full")
    if r.status != "fail":
        assert any(lf.floor_rel >= 1e-4 or lf.status == "inconclusive" for lf in r.leaves), r


WIDE_NOTE = "the numeric side was evaluated in float64"


def _dropout(x):
    keep = np.random.default_rng(0).random(x.shape, dtype=x.dtype) < 0.5  # regions drawn in x's own dtype
    return x * keep, keep


def test_a_layer_that_draws_in_its_inputs_dtype_is_judged_in_that_dtype():
    x = np.random.default_rng(1).normal(size=(5, 5)).astype(np.float32)
    right = backcheck.check_layer(lambda x: _dropout(x)[0], lambda d, x: (d * _dropout(x)[1],), (x,))
    assert right.ok and not any(WIDE_NOTE in n for n in right.notes), right
    wrong = backcheck.check_layer(lambda x: _dropout(x)[0], lambda d, x: (d,), (x,))
    assert wrong.status == "fail"


def test_outputs_that_underflow_in_float32_keep_the_numeric_side_in_float32():
    x = np.full(4, 1e-23, dtype=np.float32)
    r = backcheck.check_layer(lambda x, y: x * y, lambda d, x, y: (d * y, d * x), (x, x.copy()))
    assert not any(WIDE_NOTE in n for n in r.notes), r
    ordinary = backcheck.check_layer(lambda x, y: x * y, lambda d, x, y: (d * y, d * x), (x * 1e20, x * 1e20))
    assert ordinary.ok and any(WIDE_NOTE in n for n in ordinary.notes), ordinary


def test_outputs_computed_alike_beyond_rounding_and_not():
    from backcheck.outputs import computes_alike

    y32 = np.random.default_rng(0).normal(size=50).astype(np.float32)
    y64 = y32.astype(np.float64) * (1 + 4 * float(np.finfo(np.float32).eps))  # float32 rounding, no more
    assert computes_alike(y64, y32)
    assert not computes_alike(np.full(4, 1e-46), np.zeros(4, np.float32))  # float32 underflows to 0
    assert not computes_alike(y64[::-1].copy(), y32)  # another function
    assert not computes_alike(np.where(np.arange(50) == 3, np.inf, y64), y32)  # finite in one dtype only
    assert computes_alike(y64, y32.astype(np.float64))  # a float64 'narrow' side has nothing to tell


def test_the_refined_sample_of_a_large_float32_kernel_is_stated_against_its_whole():
    x = np.random.default_rng(0).normal(size=(24, 32)).astype(np.float32)  # 768 elements, above the 512 refined
    r = backcheck.check_layer(gelu, gelu_backward, (x,), strategy="full")
    assert r.ok, r
    assert any("a random sample of 512 of 768" in n for n in r.notes), r.notes


def test_a_loss_value_tells_its_computed_dtype_as_an_array_of_one_does():
    from backcheck.outputs import computed_dtype, computed_dtype_of

    rng = np.random.default_rng(0)
    wide = rng.normal(size=200) * 10.0 ** rng.integers(-30, 30, size=200)
    mantissa, exponent = np.frexp(wide)
    values = [
        *wide,  # float64 computations: more digits than float32 holds
        *wide.astype(np.float32).astype(np.float64),  # exactly float32: a float32 kernel's
        *np.ldexp(mantissa.astype(np.float16).astype(np.float64), exponent),  # short mantissas: no evidence
        0.0, -0.0, 3.0, 1e10, -2.0**60, 0.5, 3.25, np.inf, -np.inf, np.nan, 2.0**-1074, 1.0 + 2.0**-52,
    ]
    answers = set()
    for v in values:
        for dtype in (np.dtype(np.float64), np.dtype(np.float32)):
            expected = computed_dtype([np.asarray(v)], dtype)
            assert computed_dtype_of(float(v), dtype) == expected, (v, dtype)
            answers.add((dtype, expected))
    # both answers occur for float64 outputs, so the comparison above could fail either way
    assert (np.dtype(np.float64), np.dtype(np.float32)) in answers
    assert (np.dtype(np.float64), np.dtype(np.float64)) in answers


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_a_float64_loss_around_a_float32_kernel_is_judged_as_the_kernel(name, seed):
    # the habit: a float32 model, its output cast to float64 for the loss; check() sees a float64 function whose
    # noise is float32's rounding, and refines as it would a float32 one (no longer inconclusive everywhere)
    fwd, bwd, make = KERNELS[name]
    x, *rest = make(np.random.default_rng(seed), np.float64)
    dout = np.random.default_rng(99).normal(size=np.shape(fwd(x, *rest)))

    def loss(v):
        return float(np.sum(np.asarray(fwd(v, *rest), dtype=np.float64) * dout))

    def grad(k):  # (the kernels' own k scales another input's gradient for matmul)
        return lambda v: k * np.asarray(bwd(dout, v, *rest)[0], dtype=np.float64)

    right = backcheck.check(loss, x.copy(), grad(1.0))
    assert right.ok, right
    assert any("coarser than the float64 it returns" in note for note in right.notes), right.notes
    assert backcheck.check(loss, x.copy(), grad(1 + 1e-2)).status == "fail"


def test_an_oscillation_finer_than_the_step_is_no_float32_rounding():
    # noise far above float32's rounding is no coarse dtype inside: refining at larger steps would average the
    # oscillation away and call the right rule wrong
    x = 1 + np.random.default_rng(0).random(5)
    r = backcheck.check(
        lambda p: float(np.sum(np.sin(p)) + 1e-4 * np.sum(np.sin(1e10 * p))),
        x,
        lambda p: np.cos(p) + 1e-4 * 1e10 * np.cos(1e10 * p),
    )
    assert r.status == "inconclusive", r
