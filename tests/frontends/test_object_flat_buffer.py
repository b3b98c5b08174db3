"""A layer whose weights are views of one flat parameter vector (``self.W1 = self.flat[:12].reshape(3, 4)``) and
whose gradients are views of one flat gradient vector, checked as ``params=['flat'], grads={'flat': 'gflat'}``.
The check's deep copies gave each view its own memory: moving ``flat`` moved nothing forward reads, backward's
writes never reached ``gflat``, and a wrong gradient passed (0 against 0) while a right one, built whole, failed
as an unread input. Views of an attribute's memory now stay views of its copy."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck

X = np.random.default_rng(0).normal(size=(5, 3))


def _views(buf: np.ndarray) -> tuple[np.ndarray, ...]:
    return buf[0:12].reshape(3, 4), buf[12:16], buf[16:24].reshape(4, 2), buf[24:26]


class _FlatMLP:
    def __init__(self, bug: bool = False, whole: bool = False) -> None:
        self.flat = np.random.default_rng(5).normal(size=26) * 0.5
        self.gflat = np.zeros(26)
        self.W1, self.b1, self.W2, self.b2 = _views(self.flat)
        self.dW1, self.db1, self.dW2, self.db2 = _views(self.gflat)
        self.bug, self.whole = bug, whole

    def forward(self, x):
        self.x, self.h = x, np.tanh(x @ self.W1 + self.b1)
        return self.h @ self.W2 + self.b2

    def backward(self, dout):
        dh = dout @ self.W2.T * (1 - self.h**2)
        db1 = dh.mean(0) if self.bug else dh.sum(0)  # (the bug: a mean for a sum)
        grads = (self.x.T @ dh, db1, self.h.T @ dout, dout.sum(0))
        if self.whole:  # built anew, as np.concatenate
            self.gflat = np.concatenate([g.reshape(-1) for g in grads])
        else:  # written through the gradient views
            for view, g in zip(_views(self.gflat), grads, strict=True):
                view[...] = g
        return dh @ self.W1.T


@pytest.mark.parametrize("whole", [False, True])
def test_a_flat_parameter_vector_with_views_is_checked_as_the_layer_computes(whole: bool) -> None:
    right = backcheck.check_object(_FlatMLP(whole=whole), X, params=["flat"], grads={"flat": "gflat"})
    assert right.status == "pass", right
    wrong = backcheck.check_object(_FlatMLP(bug=True, whole=whole), X, params=["flat"], grads={"flat": "gflat"})
    assert wrong.status == "fail" and wrong.leaf("flat").status == "fail", wrong
    assert wrong.leaf("flat").worst[0].index[0] in range(12, 16)  # (b1's part of flat)


def test_the_layer_and_its_views_are_left_as_they_were() -> None:
    layer = _FlatMLP(bug=True)
    flat, before = layer.flat, layer.flat.copy()
    backcheck.check_object(layer, X, params=["flat"], grads={"flat": "gflat"})
    assert layer.flat is flat and np.array_equal(layer.flat, before) and not layer.gflat.any()
    assert layer.W1.base is layer.flat and np.shares_memory(layer.dW1, layer.gflat)


@pytest.mark.parametrize("whole", [False, True])
def test_the_flat_layout_is_found_without_naming_it(whole: bool) -> None:
    # gflat is flat's gradient by its name (g + the parameter's, as gW for W): the views W1, ... are tied to flat
    # and checked as it; gflat was taken for a parameter a backward "steps" (a typed error that misled)
    right = backcheck.check_object(_FlatMLP(whole=whole), X)
    assert right.status == "pass" and [lf.name for lf in right.leaves] == ["x", "flat"], right
    wrong = backcheck.check_object(_FlatMLP(bug=True, whole=whole), X)
    assert wrong.status == "fail" and wrong.leaf("flat").status == "fail", wrong
