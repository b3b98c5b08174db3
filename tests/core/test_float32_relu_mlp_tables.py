"""A float32 two-layer ReLU network with a softmax cross-entropy, computed in float32 (upcast=False): its elements
lie a little off ReLU kinks (here one pre-activation is planted 5e-4 below 0; others fall where they may), inside
the steps of the Richardson tables that sharpen float32 checks, whose columns still converge, to a value a few
percent off with a tight error. A table started at a quarter of the step is too noisy to tell, and the evidence
of a kink inside the steps decides: the one-sided slopes' gap kept as the step halves (judged against the noise
measured along the element, not a whole evaluation's worst rounding: that hid gaps of 3e-4 below steps of 0.06),
a jump left when the curvature is taken out of that gap, or a central difference at a quarter of the step that
departs from the table by two of its deviations toward the claim. A kink inside a quarter of the step, which the
table below crosses too, makes the element inconclusive. A right backward pass failed (torch's own autograd too,
at 300x400); it is not failed now, and wrong ones (no ReLU mask, a transposed product, one element 5% off beside
the kink, a sign flip) still fail, but where kinks on both sides of the point put the table 10% off and nothing
finer resolves the derivative: there an element 5% off is inconclusive, as the right rule is.
"""

from __future__ import annotations

import numpy as np
import pytest

import backcheck


def _mlp(seed: int, n: int = 8, width: int = 8, gap: float = 5e-4):
    """float32 inputs X (n x width), labels of 10 classes, W1 (width x width) and W2 (width x 10), with the
    pre-activation of example 0, unit 5 planted ``gap`` below 0 (through W1[3, 5])."""
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, width)).astype(np.float32)
    y = r.integers(0, 10, n)
    w1 = (r.standard_normal((width, width)) / 5).astype(np.float32)
    w2 = (r.standard_normal((width, 10)) / 20).astype(np.float32)
    rest = x[0].astype(np.float64) @ w1[:, 5].astype(np.float64) - x[0, 3] * w1[3, 5]
    w1[3, 5] = np.float32(-rest / x[0, 3] - gap)
    return x, y, {"W1": w1, "W2": w2}


def _loss(x: np.ndarray, y: np.ndarray):
    def f(p):
        z = np.maximum(x @ p["W1"], 0) @ p["W2"]
        top = z.max(1, keepdims=True)
        return np.mean(np.log(np.exp(z - top).sum(1)) + top[:, 0] - z[np.arange(len(y)), y])

    return f


def _grad(x: np.ndarray, y: np.ndarray, bug: str | None = None):
    def g(p):
        a = x @ p["W1"]
        h = np.maximum(a, 0)
        z = h @ p["W2"]
        e = np.exp(z - z.max(1, keepdims=True))
        d = e / e.sum(1, keepdims=True)
        d[np.arange(len(y)), y] -= 1
        d /= len(y)
        da = d @ p["W2"].T if bug == "no mask" else (d @ p["W2"].T) * (a > 0)
        w1 = x.T @ da
        if bug == "transposed":
            w1 = w1.T.copy()
        if bug == "5% off":
            w1[3, 5] *= np.float32(1.05)  # the element beside the planted kink
        if bug == "sign":
            w1[6, 2] *= -1
        return {"W1": w1, "W2": h.T @ d}

    return g


def _check(seed: int, n: int = 8, bug: str | None = None, gap: float = 5e-4):
    x, y, p = _mlp(seed, n, gap=gap)
    assert _loss(x, y)(p).dtype == np.float32  # (computed in float32)
    return backcheck.check(_loss(x, y), p, _grad(x, y, bug), seed=0, upcast=False)


# (n, seed): 8 examples, seeds whose gaps the old noise model hid (0, 4, 7) and one whose table a quarter-step
# difference contradicts (3); 16 examples, seed 13, whose kink of jump 3e-5 the curvature hid.
@pytest.mark.parametrize(("n", "seed"), [(8, 0), (8, 3), (8, 4), (8, 7), (16, 13)])
def test_a_right_float32_relu_mlp_does_not_fail(n, seed):
    report = _check(seed, n)
    assert report.status != "fail", report
    assert sum(leaf.n_mismatch for leaf in report.leaves) == 0, report


# (n, seed, planted gap): points where a sweep of seeds 0 to 59 failed the right rule: kinks of several examples'
# units on both sides of an element, within its table's steps, bias both one-sided slopes alike (their gap within
# rounding) and the table 10% off, while the finer differences lean toward the rule by 0.8 of their full share;
# and (seed 33) a planted weight of 6 whose kink, 2e-3 away, lies inside every table's steps: its one-sided
# slopes keep a jump at every halving down to the finest, and each table started below seconds the first; (seed
# 6) a jump of 3.5e-5 kept within 10% over four halvings, its rounding a third of it
@pytest.mark.parametrize(
    ("n", "seed", "gap"),
    [(8, 29, 2e-3), (16, 1, 1e-4), (16, 14, 1e-4), (16, 33, 1e-4), (16, 33, 2e-3), (16, 6, 2e-3)],
)
def test_a_right_rule_between_kinks_on_both_sides_does_not_fail(n, seed, gap):
    report = _check(seed, n, gap=gap)
    assert report.status != "fail", report
    assert sum(leaf.n_mismatch for leaf in report.leaves) == 0, report


def test_an_element_5_percent_off_where_its_table_is_10_percent_off_is_not_passed():
    # 8 examples, seed 3: W1[3, 5]'s table lies 11% off the derivative (kinks inside its steps), its finer
    # differences too noisy to resolve 5%: as inconclusive as the right rule there, and never a pass
    report = _check(3, 8, "5% off")
    assert report.status == "inconclusive", report
    assert sum(leaf.n_mismatch for leaf in report.leaves) == 0, report
    assert report.leaves[0].status == "inconclusive", report


@pytest.mark.parametrize(
    ("bug", "n", "seed"),
    [("no mask", 8, 0), ("transposed", 8, 4), ("5% off", 16, 13), ("sign", 8, 0)],
)
def test_a_wrong_rule_in_it_still_fails(bug, n, seed):
    report = _check(seed, n, bug)
    assert report.status == "fail", report
    wrong = [leaf for leaf in report.leaves if leaf.status == "fail"]
    assert [leaf.name for leaf in wrong] == ["p['W1']"], report
    named = [e.name for e in wrong[0].worst if e.status == "mismatch"]
    if bug in ("5% off", "sign"):  # that element, and no other
        assert named == ["p['W1'][3, 5]" if bug == "5% off" else "p['W1'][6, 2]"], report


def test_a_kink_inside_a_quarter_of_the_step_leaves_its_element_inconclusive():
    # 16 examples, seed 33: W1[2, 5] lies so near a kink that the table started at a quarter of the step crosses
    # it too, and disagrees with the right rule; below the kink, float32's rounding drowns every difference
    report = _check(33, 16)
    assert report.status == "inconclusive", report
    assert [(leaf.status, leaf.n_mismatch) for leaf in report.leaves] == [("inconclusive", 0), ("pass", 0)], report
    assert any("neither table tells the rule's value" in note for note in report.notes), report


def test_gaps_that_show_kinks_off_the_point_leave_a_rule_outside_the_slopes_unjudged():
    # 24 examples, seed 83 (planted gap 2e-3): W1[7, 5] has kinks 3.7e-4 above, 1.5e-3 below and 1.8e-3 above; its
    # one-sided slopes at steps from 0.06 down to 4e-3 all lie 3x above the derivative 5.46e-4 (resolved only
    # below 3.7e-4, where float32 rounds every difference to the derivative's size), their gap grew as the step
    # halved and vanished at the finest: no kink at the point, kinks inside the steps. The right rule, outside
    # every slope, failed on the table's 1.9e-3 +- 5e-5
    x, y, p = _mlp(83, 24, gap=2e-3)
    report = backcheck.check(_loss(x, y), p, _grad(x, y), seed=0, upcast=False)
    assert report.status != "fail", report
    assert sum(leaf.n_mismatch for leaf in report.leaves) == 0, report
    wrong = backcheck.check(_loss(x, y), p, _grad(x, y, "sign"), seed=0, upcast=False)
    assert [e.name for lf in wrong.leaves for e in lf.worst if e.status == "mismatch"] == ["p['W1'][6, 2]"], wrong


def test_tables_that_contradict_each_other_around_a_right_rule_do_not_fail_it():
    # 24 examples, seed 71 (planted gap 2e-3): W1[1, 5] has ReLU kinks 3.4e-4 below it and 1.3e-2 above; its
    # first table (steps from 0.06) said 1.311e-3 +- 2e-5, 8% under the derivative 1.418e-3, and the table started
    # at a quarter of those steps 1.831e-3 +- 9e-5, 29% over it: the two contradict each other, the rule lies
    # between them, and the right rule was failed on the first's bound
    x, y, p = _mlp(71, 24, gap=2e-3)
    report = backcheck.check(_loss(x, y), p, _grad(x, y), seed=0, upcast=False)
    assert report.status != "fail", report
    assert sum(leaf.n_mismatch for leaf in report.leaves) == 0, report
    for bug, where in (("sign", "p['W1'][6, 2]"), ("no mask", None)):
        wrong = backcheck.check(_loss(x, y), p, _grad(x, y, bug), seed=0, upcast=False)
        assert wrong.status == "fail", (bug, wrong)
        named = [e.name for lf in wrong.leaves for e in lf.worst if e.status == "mismatch"]
        assert named and (where is None or named == [where]), (bug, wrong)
