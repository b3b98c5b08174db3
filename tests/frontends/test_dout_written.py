"""Backward passes that write into their upstream gradient ``dout`` (``dx = dout; dx[x <= 0] = 0``, ``dnext_c +=
...``): a habit of many correct CS231n-style layers. It is said (a 'dout written' finding, not a failure): every
call gets a fresh copy, so the gradients are judged as returned, and the caller's dout is never changed. A wrong
gradient beside it still fails."""

from __future__ import annotations

import numpy as np

import backcheck
from backcheck.report import FAILING_FINDINGS


def relu_forward(x):
    return np.maximum(0, x), x


def relu_backward(dout, cache):
    dx = dout
    dx[cache <= 0] = 0
    return dx


def relu_backward_wrong(dout, cache):
    dx = dout
    dx[cache < -0.5] = 0  # the mask of another threshold
    return dx


def test_a_right_rule_that_writes_into_dout_passes_with_the_finding():
    x = np.random.default_rng(0).normal(size=(4, 5))
    dout = np.random.default_rng(1).normal(size=(4, 5))
    before = dout.copy()
    report = backcheck.check_layer(relu_forward, relu_backward, (x,), dout, cache=True)
    assert report.status == "pass", report
    assert [f.kind for f in report.findings] == ["dout written"]
    assert "dout written" not in FAILING_FINDINGS
    assert "dout.copy()" in report.findings[0].message and report.findings[0].where == "relu_backward"
    np.testing.assert_array_equal(dout, before)  # the caller's array is untouched


def test_a_wrong_rule_that_writes_into_dout_still_fails():
    x = np.random.default_rng(0).normal(size=(4, 5))
    report = backcheck.check_layer(relu_forward, relu_backward_wrong, (x,), cache=True)
    assert report.status == "fail", report
    assert "dout written" in [f.kind for f in report.findings]


def test_an_accumulating_backward_of_several_outputs():
    # d_next_c += ... inside an LSTM-like cell of two outputs (h, c): each written dout is named
    def forward(x, c):
        h = np.tanh(x + c)
        return h, c + x, (x, c, h)

    def backward(dh, dc, cache):
        x, c, h = cache
        dc += dh * (1 - h**2)  # writes into the upstream gradient of c
        return dc, dc.copy()

    rng = np.random.default_rng(2)
    report = backcheck.check_layer(forward, backward, (rng.normal(size=3), rng.normal(size=3)), cache=True)
    assert report.status == "pass", report
    assert [f.kind for f in report.findings] == ["dout written"] and "dout[1]" in report.findings[0].message


def test_a_layer_object_writing_into_dout():
    class Relu:
        def forward(self, x):
            self.mask = x <= 0
            out = x.copy()
            out[self.mask] = 0
            return out

        def backward(self, dout):
            dout[self.mask] = 0
            return dout

    report = backcheck.check_object(Relu(), np.random.default_rng(3).normal(size=(3, 4)))
    assert report.status == "pass", report
    assert [f.kind for f in report.findings] == ["dout written"]
