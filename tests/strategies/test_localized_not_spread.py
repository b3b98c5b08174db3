"""One element 1% off among 1e5, found by group testing, was told it was 'a small error spread over' the gradient
and to accept it with atol=1e-02 (1 of the 1 elements checked was wrong). Group testing went through all of the
array's elements: the note counts them, and a confined error gets no such advice; a scale error over the whole
array still does."""

from __future__ import annotations

import numpy as np

import backcheck

X = np.random.default_rng(0).normal(size=100_000)


def _f(x):
    return float(np.sum(np.sin(x)))


def test_one_wrong_element_is_not_called_a_spread_error():
    def grad(x):
        d = np.cos(x)
        d[12345] *= 1.01
        return d

    report = backcheck.check(_f, X, grad)
    assert report.status == "fail", report
    assert not any("spread over it" in n for n in report.notes), report.notes


def test_a_scale_error_over_the_array_still_is():
    report = backcheck.check(_f, X, lambda x: np.cos(x) * 1.001)
    assert report.status == "fail", report
    assert any("spread over it" in n for n in report.notes), report.notes


def test_an_array_failed_as_spread_thinly_names_what_refining_found_after():
    # random directions disagreed, a sample of 256 elements agreed ('no single element is wrong beyond its own
    # bound'), then the float32 refinement run after the strategy called one of the sample wrong: the report said
    # both (a top-k of 1e5 tied values whose noise was overestimated); the reason now says what refining found
    from backcheck.evaluate import Evaluator, Output
    from backcheck.strategies.elementwise import SPREAD_FOUND, SPREAD_THIN, Outcome
    from backcheck.strategies.sharp import restate_spread
    from backcheck.tree import Tree

    ev = Evaluator(Tree({"a": np.zeros(3), "b": np.zeros(4)}, "p"), lambda p: 0.0, Output.loss("f"), "f")
    status = np.array(["ok"] * 7, dtype=object)
    reason = f"1 of 2 random directions disagree, and fresh ones too{SPREAD_THIN}"
    thin = {leaf.name: reason for leaf in ev.tree.leaves}
    outcome = Outcome(np.arange(7), np.zeros(7), np.ones(7), status, [], dict(thin))
    restate_spread(ev, outcome, np.array([4]))  # an element of b
    a, b = (outcome.failed_leaves[leaf.name] for leaf in ev.tree.leaves)
    assert b.endswith(SPREAD_FOUND) and "no single element" not in b
    assert a == reason
