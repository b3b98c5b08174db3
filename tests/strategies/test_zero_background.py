"""A convolution's ReLUs over an image of zeros with a blob: the units whose window holds only zeros sit at 0, ten
or more under one element, and the convention's subgradient (ReLU'(0) = 0 in each) is the gradient of one cone of
moves only, where every such unit turns off at once: a corner of the gradients around the point. Random moves
reach it by chance; moves sought from the nearest ones reach it unit by unit. A right rule passes, a rule outside
every such corner fails."""

import numpy as np
import pytest
from zero_background import problem

import backcheck
import backcheck.strategies.nearby as nearby


def _problem(n, seed, slope_at_0=0.0, flipped=False):
    """f, its gradient and the point, in float64 (see zero_background.problem)."""
    return problem(n, seed, np.float64, slope_at_0, flipped)


@pytest.mark.parametrize(("n", "seed", "slope_at_0"), [(6, 0, 0.0), (6, 3, 0.0), (8, 5, 0.0), (6, 0, 1.0)])
def test_a_right_rule_on_a_zero_background_passes(n, seed, slope_at_0):
    # (ReLU'(0) = 1 in every unit is the opposite corner's gradient: right too)
    f, grad, point = _problem(n, seed, slope_at_0)
    kept = [a.copy() for a in point]
    report = backcheck.check(f, point, grad)
    assert report.status == "pass", report
    assert report.leaves[0].n_kinks > 0  # (the background's elements were judged at their kinks)
    assert all(np.array_equal(a, b) for a, b in zip(point, kept, strict=True))


def test_random_moves_alone_miss_the_corner(monkeypatch):
    monkeypatch.setattr(nearby, "GUIDED_SAMPLES", 0)
    f, grad, point = _problem(6, 0)
    assert backcheck.check(f, point, grad).status == "fail"  # (a right rule: what the guided moves mend)


@pytest.mark.parametrize(("slope_at_0", "flipped"), [(2.0, False), (-1.0, False), (0.0, True)])
def test_a_wrong_rule_there_still_fails(slope_at_0, flipped):
    f, grad, point = _problem(6, 0, slope_at_0, flipped)
    report = backcheck.check(f, point, grad)
    assert report.status == "fail", report
    assert report.leaves[0].n_mismatch > 0
