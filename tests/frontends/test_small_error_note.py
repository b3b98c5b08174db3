"""A gradient off everywhere by a small error (a forward guarded by log(p + 1e-7) whose rule is the gradient of
log(p); a solve stopped at a tolerance) fails in every frontend, with a note that says how small, what gives such
errors, and the atol that would accept them."""

from __future__ import annotations

import numpy as np

import backcheck


def _softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class SoftmaxWithLoss:  # the deep-learning-from-scratch layer: a 1e-7 guard in the loss, none in the rule
    def forward(self, x, t):
        self.t, self.y = t, _softmax(x)
        return -np.sum(np.log(self.y[np.arange(x.shape[0]), t] + 1e-7)) / x.shape[0]

    def backward(self, dout=1):
        dx = self.y.copy()
        dx[np.arange(self.t.size), self.t] -= 1
        return dout * dx / self.t.size


def _point():
    rng = np.random.default_rng(0)
    return 2 * rng.normal(size=(5, 4)), rng.integers(0, 4, size=5)


def test_check_object_says_the_error_is_small_and_how_to_accept_it():
    x, t = _point()
    report = backcheck.check_object(SoftmaxWithLoss(), x, t)
    assert report.status == "fail", report
    note = next(n for n in report.notes if "small error spread over it" in n)
    assert "log(p + 1e-7)" in note and "atol=1e-05" in note


def test_check_says_it_too_and_the_atol_it_names_accepts_the_rule():
    x, t = _point()
    n = x.shape[0]

    def loss(x):
        return -np.sum(np.log(_softmax(x)[np.arange(n), t] + 1e-7)) / n

    def grad(x):
        dx = _softmax(x)
        dx[np.arange(n), t] -= 1
        return dx / n

    report = backcheck.check(loss, x, grad)
    assert report.status == "fail" and any("small error spread over it" in n for n in report.notes), report
    assert backcheck.check(loss, x, grad, atol=1e-5).status == "pass"


def test_a_wrong_term_gets_no_such_note():
    x, t = _point()
    n = x.shape[0]

    def loss(x):
        return -np.sum(np.log(_softmax(x)[np.arange(n), t])) / n

    def grad(x):  # the softmax's own term dropped: off by a good part of the gradient
        dx = np.zeros_like(x)
        dx[np.arange(n), t] -= 1
        return dx / n

    report = backcheck.check(loss, x, grad)
    assert report.status == "fail" and not any("small error spread" in n for n in report.notes), report


def test_a_float32_constant_in_a_float64_rule_is_told_where_the_gradient_acts():
    """torch's own hardsigmoid: its float64 backward multiplies by 1/6 held in float32 (3e-8 off); outside
    [-3, 3] its gradient is exactly 0, so fewer than half of all the elements are wrong, but every one where it
    acts is."""
    import torch

    import backcheck.torch as bt

    x = torch.linspace(-6.0, 6.0, 26, dtype=torch.float64).reshape(2, 13) + 0.01
    report = bt.check(torch.nn.functional.hardsigmoid, x)
    assert report.status == "fail", report
    note = next(n for n in report.notes if "small error spread over it" in n)
    assert "narrower dtype" in note


def test_a_wrong_term_beside_one_large_element_gets_no_such_note():
    """Elements off by twice their own gradient are a wrong term however small beside one large element."""
    x = np.array([3.0, 0.4, -0.7, 0.9])

    def loss(x):
        return float(500 * x[0] ** 2 + 0.5 * np.sum(x[1:] ** 2))

    def grad(x):
        g = np.concatenate([[1000 * x[0]], 2 * x[1:]])  # the others' half is missing: 2x theirs
        return g

    report = backcheck.check(loss, x, grad)
    assert report.status == "fail" and not any("small error spread" in n for n in report.notes), report
