"""A layer forward that returns integer side outputs beside its values (argmax, pool indices): they have no
dout (torch gives them none), so they are left out and backward gets the douts of the float outputs alone, with a
note. A pair (out, indices) whose backward takes (dout, cache) is the cache convention forgotten: said so."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck
from backcheck.errors import BadInputError

X = np.random.default_rng(0).normal(size=(4, 3))


def pool_forward(x):
    return x.max(1), x.argmax(1)


def pool_backward(d, x, wrong=False):
    dx = np.zeros_like(x)
    dx[np.arange(x.shape[0]), x.argmin(1) if wrong else x.argmax(1)] = d
    return dx


def test_an_index_output_is_left_out_and_said():
    report = backcheck.check_layer(pool_forward, pool_backward, (X,))
    assert report.status == "pass", report
    assert any("integer output(s) out[1] (int64)" in n for n in report.notes), report.notes


def test_a_wrong_rule_beside_an_index_output_still_fails():
    report = backcheck.check_layer(pool_forward, lambda d, x: pool_backward(d, x, wrong=True), (X,))
    assert report.status == "fail", report


def test_a_dout_given_for_every_output_keeps_the_float_ones():
    d = np.random.default_rng(1).normal(size=4)
    given = backcheck.check_layer(pool_forward, pool_backward, (X,), dout=(d, None))
    assert given.status == "pass", given


def test_several_float_outputs_get_their_douts_in_order():
    def forward(x):
        return np.sin(x), x.argmax(1), 2 * x

    def backward(douts, x):
        d_sin, d_double = douts
        return d_sin * np.cos(x) + 2 * d_double

    report = backcheck.check_layer(forward, backward, (X,))
    assert report.status == "pass", report


def test_the_cache_convention_forgotten_is_still_said():
    with pytest.raises(BadInputError, match="pass cache=True"):
        backcheck.check_layer(pool_forward, lambda dout, cache: dout, (X,))


def test_an_index_output_before_the_cache():
    def forward(x):
        return x.max(1), x.argmax(1), x

    def backward(d, cache):
        return pool_backward(d, cache)

    report = backcheck.check_layer(forward, backward, (X,), cache=True)
    assert report.status == "pass", report
    assert any("integer output(s) out[1]" in n for n in report.notes), report.notes
