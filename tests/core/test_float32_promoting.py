"""float32 parameters of a loss that promotes to float64 at its first operation (a float64 weight times the
parameter): its values at the point and at float64 copies agree to the bit, as a closure's or a cast inside's
do, and are told apart a quarter of a float32 unit off the float32 grid, where only it moves."""

import numpy as np
import pytest

import backcheck

RNG = np.random.default_rng(24)
A, W = RNG.normal(size=5), RNG.normal(size=5)
B = 1e-4 * (1 + RNG.random(5))
X, W2 = RNG.normal(size=(8, 6)), RNG.normal(size=5)


def ratio(p):
    return np.sum(W * p["a"] / p["b"])  # W (float64) * a promotes at once


def ratio_grad(p):
    return {"a": W / p["b"], "b": -W * p["a"] / p["b"] ** 2}


def point32():
    return {"a": A.astype(np.float32), "b": B.astype(np.float32)}


def one_off(grad, rel):
    def wrong(p):
        out = grad(p)
        out["a"] = out["a"].copy()
        out["a"][0] *= 1 + rel
        return out

    return wrong


@pytest.mark.parametrize("strategy", ["full", "auto"])
def test_a_promoting_loss_is_checked_at_float64_precision(strategy):
    right = backcheck.check(ratio, point32(), ratio_grad, strategy=strategy)
    asked = backcheck.check(ratio, point32(), ratio_grad, strategy=strategy, upcast=True)
    assert right.ok
    for leaf, wide in zip(right.leaves, asked.leaves, strict=True):  # (float32 steps gave 0.05 and 0.015)
        assert leaf.floor_rel <= 4 * wide.floor_rel


def test_a_promoting_loss_fails_an_error_of_a_thousandth():
    r = backcheck.check(ratio, point32(), one_off(ratio_grad, 1e-3), strategy="full")
    assert r.status == "fail"
    assert [e.index for e in r.mismatches] == [(0,)]
    assert r.mismatches[0].name == "p['a'][0]"


def test_a_promoting_matrix_product_costs_what_float64_copies_cost():
    def f(w):
        return np.sum(np.tanh(X @ w) @ W2)  # X (float64) @ w (float32): float64

    def g(w):
        return X.T @ ((1 - np.tanh(X @ w) ** 2) * W2)

    w32 = RNG.normal(size=(6, 5)).astype(np.float32)
    ours, asked = backcheck.check(f, w32, g, strategy="full"), backcheck.check(f, w32, g, strategy="full", upcast=True)
    assert ours.ok and asked.ok
    assert ours.leaves[0].floor_rel <= 4 * asked.leaves[0].floor_rel
    assert ours.n_evals <= asked.n_evals + 5  # the probe's five calls


@pytest.mark.parametrize("rel", [0.0, 1e-2])
def test_a_cast_inside_stays_on_the_float32_grid(rel):
    """A loss that casts its argument to float32 first is a staircase in float64: it is differenced at its own
    dtype's steps (a right gradient passes, a wrong one fails), not on float64 copies."""
    x = RNG.normal(size=6).astype(np.float32)

    def f(v):
        return float(np.sum(np.sin(v.astype(np.float32)) * W[0]))

    def g(v):
        out = (np.cos(v.astype(np.float32)) * W[0]).astype(np.float64)
        out[2] *= 1 + rel
        return out

    r = backcheck.check(f, x, g, strategy="full")
    assert r.status == ("pass" if rel == 0 else "fail")
    if rel:
        assert [e.index for e in r.mismatches] == [(2,)]
