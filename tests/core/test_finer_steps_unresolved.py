"""Finer steps end where they no longer resolve the element: at a kink of a float32 function, the steps below the
first difference are tried until one passes whose next finer step rounds by more than the element's size (a
float32 convolution's ReLU on a zero background: its finer passes had bounds 2, 70 and 2,000 times the element)."""

import numpy as np
from zero_background import problem

import backcheck
import backcheck.refinement as refinement


def _problem(flipped=False):
    """A float32 convolution's ReLUs on an 8x8 image of zeros with a blob (see zero_background.problem)."""
    return problem(8, 0, np.float32, flipped=flipped)


def _summary(report):
    return report.status, [(leaf.name, leaf.n_mismatch, leaf.n_kinks) for leaf in report.leaves]


def test_finer_steps_stop_where_they_round_by_more_than_the_element(monkeypatch):
    f, grad, point = _problem()
    kept = [a.copy() for a in point]
    cut = backcheck.check(f, point, grad)
    assert cut.status == "pass", cut
    assert all(np.array_equal(a, b) for a, b in zip(point, kept, strict=True))
    monkeypatch.setattr(refinement, "UNRESOLVED", np.inf)  # every fraction tried, as before the cut
    every = backcheck.check(f, point, grad)
    assert _summary(cut) == _summary(every)
    assert cut.n_evals <= 0.9 * every.n_evals  # (a few hundred of the kinks' evaluations saved)


def test_a_flipped_kernel_still_fails_there():
    f, grad, point = _problem(flipped=True)
    wrong = backcheck.check(f, point, grad)
    assert wrong.status == "fail", wrong
    assert wrong.leaves[0].n_mismatch > 0 and wrong.leaves[1].n_mismatch == 0
