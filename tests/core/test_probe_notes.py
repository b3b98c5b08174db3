"""A function that raises where the check only asks a side question (float64 copies of float32 parameters, the
backward at -4 times dout) is checked without that answer, and the report says what it raised: the user's
exception is not swallowed without a word."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck

W = np.random.default_rng(0).normal(size=5).astype(np.float32)


def float32_only(w: np.ndarray) -> float:
    if w.dtype != np.float32:
        raise TypeError(f"expects float32, got {w.dtype}")
    return float(np.sum(np.tanh(w)))


def test_a_loss_that_refuses_float64_copies_is_checked_in_float32_and_says_why() -> None:
    r = backcheck.check(float32_only, W, lambda w: (1 - np.tanh(w) ** 2).astype(np.float32))
    assert r.status in ("pass", "inconclusive") and r.leaves[0].n_mismatch == 0, r
    said = [n for n in r.notes if "raised TypeError (expects float32, got float64)" in n]
    assert said and "own dtype" in said[0], r.notes


def test_a_layer_whose_forward_refuses_float64_says_so() -> None:
    def forward(x: np.ndarray) -> np.ndarray:
        if x.dtype != np.float32:
            raise TypeError("float32 layer")
        return np.tanh(x)

    r = backcheck.check_layer(forward, lambda d, x: d * (1 - np.tanh(x) ** 2), (W,))
    assert r.status == "pass", r
    assert any("forward pass raised TypeError (float32 layer)" in n for n in r.notes), r.notes


def test_a_backward_that_refuses_a_negative_dout_says_its_linearity_was_not_checked() -> None:
    x = np.random.default_rng(1).normal(size=(3, 4))

    def backward(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
        if np.all(dout < 0) or (dout < 0).mean() > 0.9:
            raise ValueError("negative upstream gradient")
        return dout * (1 - np.tanh(x) ** 2)

    r = backcheck.check_layer(np.tanh, backward, (x,), dout=np.abs(np.random.default_rng(2).normal(size=(3, 4))))
    assert r.status == "pass", r
    assert any("raised ValueError (negative upstream gradient)" in n and "linearity" in n for n in r.notes), r.notes


def test_upcast_true_insists_on_float64_copies() -> None:
    """upcast=True is no question asked: a forward pass that refuses float64 copies is the user's error there."""

    def forward(x: np.ndarray) -> np.ndarray:
        if x.dtype != np.float32:
            raise TypeError("float32 layer")
        return np.tanh(x)

    with pytest.raises(backcheck.errors.UserFunctionError, match="float32 layer"):
        backcheck.check_layer(forward, lambda d, x: d * (1 - np.tanh(x) ** 2), (W,), upcast=True)
    with pytest.raises(backcheck.errors.UserFunctionError, match="expects float32"):
        backcheck.check(float32_only, W, lambda w: (1 - np.tanh(w) ** 2).astype(np.float32), upcast=True)
