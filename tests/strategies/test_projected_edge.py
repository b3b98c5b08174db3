"""Random directions near the edge of f's domain (a log barrier): shrunk until f stays finite, as an
element's step is, never a NonFiniteError where the full check passes."""

import numpy as np
import pytest

import backcheck
from backcheck.evaluate import Evaluator, Output
from backcheck.strategies.projected import Along, measure
from backcheck.tree import Tree
from backcheck.verdict import Tolerance


def barrier(x):
    return float(np.sum(-np.log(x)))


def point(edge):
    x = np.random.default_rng(0).uniform(0.5, 2.0, 5000)
    x[7] = edge  # the directions' steps reach below 0 here
    return x


@pytest.mark.parametrize("strategy", ["projected", "auto"])
@pytest.mark.parametrize("edge", [1e-7, 1e-9])
def test_a_direction_that_leaves_the_domain_is_shrunk(strategy, edge):
    x = point(edge)
    report = backcheck.check(barrier, x, lambda x: -1 / x, strategy=strategy)
    assert report.status == "pass"
    assert any("left f's domain" in n and "shrunk" in n for n in report.notes)
    assert np.array_equal(x, point(edge))


def test_a_wrong_gradient_near_the_edge_still_fails():
    report = backcheck.check(barrier, point(1e-7), lambda x: -1.01 / x, strategy="projected")
    assert report.status == "fail"


def test_the_shrunk_measurement_is_given_per_unit_of_the_direction_asked_for():
    x0 = np.array([0.5, 1.0, 1.5, 2.0])

    def f(x):  # a line, NaN beyond 0.01 from the point: a direction of 0.25 per element needs 1/64 of it
        return 3.0 * float(np.sum(x)) if np.max(np.abs(x - x0)) <= 0.01 else float("nan")

    ev = Evaluator(Tree(x0.copy(), "x"), f, Output.loss("f"), "f")
    ev.baseline()
    coef = np.full(4, 0.25)
    m = measure(ev, Along(np.full(4, 3.0), slice(0, 4), Tolerance(None, None), (2.2e-16, 3.0)), coef)
    assert m.shrunk == 1 / 64 and not m.failed
    assert m.numeric == pytest.approx(3.0, rel=1e-9) and m.analytic == pytest.approx(3.0, rel=1e-12)
    assert np.array_equal(coef, np.full(4, 0.25))  # the caller's coefficients are given back


@pytest.mark.parametrize("strategy", ["auto", "full"])
def test_an_element_where_f_oscillates_finer_than_its_step_is_inconclusive_not_a_failure(strategy):
    # sin at 1e20: float64's spacing there is 16384, so f takes unrelated values at every step of that element
    x = np.random.default_rng(0).standard_normal(300)
    x[17] = 1e20
    r = backcheck.check(lambda v: float(np.sum(np.sin(v))), x, np.cos, strategy=strategy)
    assert r.status == "inconclusive", str(r)
    assert r.leaves[0].counts.get("jump") == 1 and not r.leaves[0].n_mismatch
    wrong = np.cos(x)
    wrong[5] *= -1.0
    bad = backcheck.check(lambda v: float(np.sum(np.sin(v))), x, lambda v: wrong, strategy=strategy)
    # never a pass: the noise f shows through the jumping element hides a wrong one beside it (see the note)
    assert bad.status == "inconclusive"
