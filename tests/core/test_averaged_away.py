"""sin at 1e8 is stepped by about 600 (eps^(1/3) of the argument): the differences average a hundred periods
away and agree with each other near 0, and the right gradient failed as a mismatch. A mismatch whose estimate
is far below the claim at a step wider than 1 is judged at much finer steps too: the right gradient is
inconclusive there (float64 resolves little more), never a fail; a gross error at ordinary arguments costs no
more evaluations."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck


@pytest.mark.parametrize("big", [1e8, 1e10])
def test_a_right_gradient_at_huge_arguments_is_not_failed(big):
    y = np.array([1.0, big, 2 * big])
    report = backcheck.check(lambda v: float(np.sum(np.sin(v))), y, np.cos)
    assert report.status != "fail", report


def test_a_gross_error_at_ordinary_arguments_costs_what_it_did():
    x = np.linspace(-2.0, 2.0, 40)
    report = backcheck.check(lambda v: float(np.sum(np.sin(v))), x, lambda v: 100 * np.cos(v))
    assert report.status == "fail", report
    assert report.n_evals <= 5 * x.size + 8, report.n_evals  # (187 before and after)
