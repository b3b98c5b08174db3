"""A gradient given as an array (no function to call at nearby points) of an order statistic at ties: elements
f does not move alone (the median of equal values) are judged by their ties moved together. A valid routing
passes, with a note that says what was not checked; a routing that does not sum right fails."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck

POINTS = [np.array([2, 2, 2, 1, 2, 2, 2.0]), np.array([3, 2, 2, 1, 2, 5, 2.0]), np.array([0, 1, 1, 1, 2, 3, 1.0])]


def median_grad(x, mode):
    g = np.zeros_like(x)
    order = np.argsort(x, kind="stable")
    mid = order[x.size // 2]
    if mode == "one":
        g[mid] = 1.0
    elif mode == "all":
        g[x == x[mid]] = 1.0
    elif mode == "half":
        g[mid] = 0.5
    else:  # the smallest element's, outside the tie
        g[order[0]] = 1.0
    return g


@pytest.mark.parametrize("x", POINTS, ids=["six-twos", "four-twos", "four-ones"])
def test_a_median_at_ties_given_as_an_array_is_judged_by_its_ties(x):
    right = backcheck.check(np.median, x, median_grad(x, "one"))
    assert right.status == "pass", right
    assert any("given as an array" in n for n in right.notes), right.notes
    for mode in ("all", "half", "outside"):
        assert backcheck.check(np.median, x, median_grad(x, mode)).status == "fail", mode


def test_a_precomputed_array_returned_by_a_function_is_told_why_it_fails():
    """The same routing returned by a function that ignores its argument is wrong at the points nearby where the
    tie is broken: it fails, and the note says so, with the hint to pass the array itself."""
    x = POINTS[0]
    g = median_grad(x, "one")
    report = backcheck.check(np.median, x, lambda x: g)
    assert report.status == "fail", report
    (said,) = [n for n in report.notes if "wrong at points nearby" in n]
    assert said.startswith("a[2] ties in value") and "pass the array it returns instead" in said, said
