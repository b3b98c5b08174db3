"""check_object gives a backward one dout per output where forward returns several arrays and backward takes as
many (an LSTM-like cell's ``forward(x, c) -> (h, c)`` and ``backward(dh, dc)``), as check_layer does for CS231n's
step functions; a parameter it cannot fill otherwise is still a typed error naming it."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck
from backcheck.errors import ArgumentError

RNG = np.random.default_rng(9)


class Cell:
    def __init__(self) -> None:
        self.W = np.random.default_rng(0).normal(size=(3, 2))

    def forward(self, x, c):
        self.x, self.c = x, c
        self.z = np.tanh(self.W @ x)
        return self.z * c, c + self.z

    def backward(self, dh, dc):
        da = (dh * self.c + dc) * (1 - self.z**2)
        self.dW = da @ self.x.T
        return self.W.T @ da, dh * self.z + dc


class _ForgetsDc(Cell):
    def backward(self, dh, dc):
        da = dh * self.c * (1 - self.z**2)
        self.dW = da @ self.x.T
        return self.W.T @ da, dh * self.z + dc


def test_a_dout_per_output():
    x, c = RNG.normal(size=(2, 4)), RNG.normal(size=(3, 4))
    assert backcheck.check_object(Cell(), x, c).status == "pass"
    wrong = backcheck.check_object(_ForgetsDc(), x, c)
    assert {leaf.name for leaf in wrong.leaves if leaf.status == "fail"} == {"x", "W"}, wrong


class _Slope:
    def __init__(self) -> None:
        self.W = np.ones(3)

    def forward(self, x):
        return x * self.W

    def backward(self, dout, alpha):
        return dout * alpha


def test_a_parameter_after_dout_of_a_single_output_is_still_refused():
    with pytest.raises(ArgumentError, match="requires a parameter alpha after dout"):
        backcheck.check_object(_Slope(), np.ones(3))


class _ProbsAndLoss:  # forward(x, y) -> (probs, loss), backward() differentiates the loss: no dout
    def forward(self, x, y):
        e = np.exp(x - x.max(1, keepdims=True))
        self.p, self.y = e / e.sum(1, keepdims=True), y
        return self.p, -np.mean(np.log(self.p[np.arange(len(y)), y]))

    def backward(self):
        d = self.p.copy()
        d[np.arange(len(self.y)), self.y] -= 1
        return d / len(self.y)


class _ProbsAndLossUnaveraged(_ProbsAndLoss):
    def backward(self):
        return super().backward() * len(self.y)


def test_a_loss_beside_other_outputs_is_the_one_a_doutless_backward_differentiates():
    x, y = RNG.normal(size=(4, 5)), RNG.integers(0, 5, 4)
    report = backcheck.check_object(_ProbsAndLoss(), x, y)
    assert report.status == "pass", report
    assert any("output 1 is the loss" in n for n in report.notes), report.notes
    assert backcheck.check_object(_ProbsAndLossUnaveraged(), x, y).status == "fail"


class _PerSampleLoss:  # forward -> one loss per sample; backward() is the gradient of their sum
    def forward(self, z, y):
        self.z, self.y = z, y
        m = z.max(1, keepdims=True)
        return m[:, 0] + np.log(np.exp(z - m).sum(1)) - z[np.arange(len(y)), y]

    def backward(self):
        p = np.exp(self.z - self.z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(len(self.y)), self.y] -= 1
        return p


class _PerSampleMean(_PerSampleLoss):  # backward() is the gradient of their mean
    def backward(self):
        return super().backward() / len(self.y)


def test_one_loss_per_sample_is_checked_with_the_reduction_the_user_names():
    z, y = RNG.normal(size=(4, 5)), RNG.integers(0, 5, 4)
    with pytest.raises(ArgumentError, match="not one number") as info:
        backcheck.check_object(_PerSampleLoss(), z, y)
    assert "dout=np.ones(n)" in (info.value.hint or "")
    assert backcheck.check_object(_PerSampleLoss(), z, y, dout=np.ones(4)).status == "pass"
    assert backcheck.check_object(_PerSampleMean(), z, y, dout=np.full(4, 0.25)).status == "pass"
    assert backcheck.check_object(_PerSampleMean(), z, y, dout=np.ones(4)).status == "fail"
