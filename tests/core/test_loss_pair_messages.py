"""CS231n's loss convention, a function returning (loss, dx), met where a loss or a gradient is expected, or as a
layer whose backward hands back the saved dx whatever dout is: each is told to check the loss and its gradient
as two functions, check(lambda x: f(x)[0], x, lambda x: f(x)[1])."""

import numpy as np
import pytest

import backcheck
from backcheck.errors import GradientStructureError, NotScalarError

X = np.random.default_rng(0).normal(size=(6, 5))
Y = np.array([0, 1, 2, 3, 4, 0])


def softmax_loss(x, y=Y):
    p = np.exp(x - x.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    n = x.shape[0]
    loss = -np.log(p[np.arange(n), y]).mean()
    dx = p.copy()
    dx[np.arange(n), y] -= 1
    return loss, dx / n


def test_a_loss_returning_its_gradient_is_told_to_split_it():
    with pytest.raises(NotScalarError) as info:
        backcheck.check(softmax_loss, X, lambda x: softmax_loss(x)[1])
    assert "check(lambda x: f(x)[0], x, lambda x: f(x)[1])" in info.value.hint


def test_a_gradient_function_returning_the_loss_too_is_told_to_take_its_second():
    with pytest.raises(GradientStructureError) as info:
        backcheck.check(lambda x: softmax_loss(x)[0], X, softmax_loss)
    assert "grad(x)[1]" in info.value.hint


def test_a_layer_whose_backward_ignores_dout_is_told_so():
    report = backcheck.check_layer(softmax_loss, lambda dout, cache: cache, X, cache=True)
    assert report.status == "fail", report
    found = [f for f in report.findings if f.kind == "nonlinear backward"]
    assert found and "ignores dout" in found[0].message, report.findings


def test_the_split_loss_passes():
    report = backcheck.check(lambda x: softmax_loss(x)[0], X, lambda x: softmax_loss(x)[1])
    assert report.status == "pass", report
