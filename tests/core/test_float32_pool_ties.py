"""A max pool computing in float32 (tinynn's MaxPool2D) on integer images: its windows' maxima tie, and a right
backward routes each window's gradient to the first of them, a valid one-sided slope. The forward rounds to
float32, so the one-sided slopes carry a slack of a tenth of their gap from rounding alone, while the slopes
themselves stand still as the step halves: a kink at the point, not one inside the step. Such an element passed
no more: it was inconclusive, and no note, leaf reason or table row named it."""

from __future__ import annotations

import numpy as np
import pytest
from float32_pools import CASES, image, pool

import backcheck
from backcheck.report import summarize
from backcheck.run import _unsettled
from backcheck.strategies.elementwise import Outcome
from backcheck.tree import Tree


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", [0, 1, 3, 4, 5])
@pytest.mark.parametrize("case", list(CASES))
def test_a_float32_max_pool_routing_each_window_to_its_first_maximum_passes(case, seed, dtype):
    (k, stride, pad), _ = CASES[case]
    x = image(case, seed, dtype)
    report = backcheck.check_layer(*pool(k, stride, pad), (x,))
    assert report.status == "pass", report
    assert report.leaves[0].n_kinks > 0, report


@pytest.mark.parametrize("strategy", ["full", "auto"])
@pytest.mark.parametrize("bug", ["every_tie", "next_value"])
@pytest.mark.parametrize("seed", [2, 4])
@pytest.mark.parametrize("case", list(CASES))
def test_a_float32_max_pool_routed_wrongly_at_its_ties_still_fails(case, seed, bug, strategy):
    (k, stride, pad), _ = CASES[case]
    x = image(case, seed, np.float32)
    report = backcheck.check_layer(*pool(k, stride, pad, bug), (x,), strategy=strategy)
    assert report.status == "fail", report


def _lse_pool_at_1e4():
    """A log-sum-exp pool of float32 inputs of spread 0.01 near 1e4: stepped by 1e4's step, it looks like a max
    of tied elements whose slopes keep moving with the step (tests/core/test_kinks_beyond_scale.py)."""
    x = (np.random.default_rng(0).normal(size=(3, 2, 3, 3)) * 0.01 + 1e4).astype(np.float32)
    dout = np.random.default_rng(7).normal(size=(3, 2)).astype(np.float32)

    def forward(x):
        y = 2.0 * x.astype(np.float32)
        m = y.max(axis=(2, 3), keepdims=True)
        return ((m + np.log(np.exp(y - m).mean(axis=(2, 3), keepdims=True)))[:, :, 0, 0] / 2.0).astype(np.float32)

    def backward(d, x):
        e = np.exp(2.0 * x.reshape(3, 2, -1) - 2.0 * x.reshape(3, 2, -1).max(-1, keepdims=True))
        return (d[:, :, None, None] * (e / e.sum(-1, keepdims=True)).reshape(x.shape)).astype(np.float32)

    return backcheck.check_layer(forward, backward, (x,), dout)


def test_elements_inconclusive_at_a_kink_inside_the_step_are_named_and_shown_first():
    report = _lse_pool_at_1e4()
    assert report.status == "inconclusive", report
    leaf = report.leaves[0]
    status = np.asarray(report.element_status["x"])
    noisy = [tuple(int(i) for i in ix) for ix in zip(*np.nonzero(status == "noisy"), strict=True)]
    assert noisy, report
    first = "x[{}, {}, {}, {}]".format(*noisy[0])
    assert first in leaf.note, leaf.note  # the leaf's reason names them
    assert any(first in n and "inside the step" in n for n in report.notes), report.notes
    assert leaf.worst[0].status == "noisy", leaf.worst  # shown, though their bound is infinite (diff/bound 0)


def test_an_inconclusive_element_with_no_bound_gets_a_reason_and_a_row():
    tree = Tree({"x": np.zeros(4)})
    (x,) = (leaf.name for leaf in tree.leaves)
    status = np.array(["ok", "ok", "noisy", "ok"])
    bound = np.array([1e-3, 1e-3, np.inf, 1e-3])
    numeric = np.array([0.0, 0.0, 0.1, 0.0])
    outcome = Outcome(np.arange(4), numeric, bound, status, [], {}, {})
    _unsettled(tree, outcome)
    assert tree.element_name(2) in outcome.inconclusive_leaves[x], outcome.inconclusive_leaves
    (leaf,) = summarize(tree, np.zeros(4), outcome)
    assert leaf.status == "inconclusive" and tree.element_name(2) in leaf.note, leaf.note
    assert leaf.worst[0].name == tree.element_name(2), leaf.worst
