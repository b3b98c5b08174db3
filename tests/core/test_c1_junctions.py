"""Points where two smooth pieces meet with the same slope (C1 junctions: sparse_plus at -1, a squared hinge at
its margin, a Huber loss at delta): the central differences approach the derivative linearly in the step, never
'settling' as a smooth function's do. Changes small beside the array's typical gradient settle (the bound a pass
states still covers them); an element that stays inconclusive says why."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck


def _hinge2(x):
    return float(np.sum(np.where(x > -1.0, (x + 1.0) ** 2 / 4.0, 0.0)))


def _hinge2_grad(x):
    return np.where(x > -1.0, (x + 1.0) / 2.0, 0.0)


def _huber(x, delta=0.5):
    a = np.abs(x)
    return float(np.sum(np.where(a <= delta, 0.5 * x**2, delta * (a - 0.5 * delta))))


def _huber_grad(x, delta=0.5):
    return np.where(np.abs(x) <= delta, x, delta * np.sign(x))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_squared_hinge_at_its_margin_passes(dtype):
    x = np.array([0.0, 1.0, -1.0, 0.5], dtype=dtype)
    report = backcheck.check(_hinge2, x, _hinge2_grad)
    assert report.status == "pass", report


def test_huber_at_delta_passes():
    x = np.array([0.5, -0.5, 1.3, 0.1, -2.0])
    report = backcheck.check(_huber, x, _huber_grad)
    assert report.status == "pass", report


def test_a_wrong_slope_at_the_junction_fails():
    def wrong(x):
        g = _hinge2_grad(x)
        return np.where(x == -1.0, 0.05, g)

    report = backcheck.check(_hinge2, np.array([0.0, 1.0, -1.0, 0.5]), wrong)
    assert report.status == "fail", report
    assert report.leaves[0].worst[0].name == "x[2]", report


def test_an_unsettled_element_says_why():
    # alone in its array, with a gradient of 0: nothing to weigh its bound against; refinement left it 'noisy'
    # and the report said nothing
    jax = pytest.importorskip("jax")
    bj = pytest.importorskip("backcheck.jax")
    with jax.enable_x64(True):
        report = bj.check(lambda x: jax.numpy.sum(jax.nn.sparse_plus(x)), jax.numpy.array([-1.0]))
    assert report.status == "inconclusive", report
    assert report.leaves[0].note, report  # a reason, whichever it is


def test_jax_sparse_plus_at_its_junction_passes():
    jax = pytest.importorskip("jax")
    bj = pytest.importorskip("backcheck.jax")
    with jax.enable_x64(True):
        report = bj.check(jax.nn.sparse_plus, jax.numpy.array([0.0, 1.0, -1.0, 0.5]))
    assert report.status == "pass", report


def test_a_reason_for_inconclusive_elements_that_no_other_names():
    from backcheck.run import _unsettled
    from backcheck.strategies.elementwise import Outcome
    from backcheck.tree import Tree

    tree = Tree({"x": np.zeros(3), "w": np.zeros(2)})
    x, w = (leaf.name for leaf in tree.leaves)
    status = np.array(["ok", "noisy", "ok", "noisy", "ok"])
    outcome = Outcome(np.arange(5), np.zeros(5), np.ones(5), status, [], {}, {w: "w's own reason"})
    _unsettled(tree, outcome)
    said = outcome.inconclusive_leaves[x]
    assert tree.element_name(1) in said and "did not settle" in said, said
    assert outcome.inconclusive_leaves[w] == "w's own reason"


def test_estimates_of_a_step_far_too_wide_do_not_settle_beside_the_typical_gradient():
    # sin at 1e8 is stepped by about 600 (a hundred periods): the first levels' estimates are near 0 and change
    # little beside the array's typical gradient; a claim of 0 there must keep being refined, and fail
    y = np.array([1.0, 1e8, 0.5])

    def grad(v):
        d = np.cos(v)
        d[1] = 0.0
        return d

    report = backcheck.check(lambda v: float(np.sum(np.sin(v))), y, grad)
    assert report.status == "fail", report


def test_a_small_wrong_value_at_a_float32_c1_junction_still_fails():
    # x * |x| at 0 (derivative 0, a C1 junction) in float32, claimed 0.3% of the typical gradient there: the
    # junction's estimates settle only where they change by under 1e-6 of the typical gradient
    rng = np.random.default_rng(3)
    x = np.r_[[0.0, 0.0], rng.standard_normal(8)].astype(np.float32)
    w = rng.standard_normal(x.size)

    def grad(x):
        g = 2 * w * np.abs(x.astype(np.float64))
        g[0] += 0.003 * np.abs(g).mean()
        return g.astype(np.float32)

    report = backcheck.check(lambda x: float(np.sum(w * x * np.abs(x))), x, grad, seed=3)
    assert report.status == "fail", report
