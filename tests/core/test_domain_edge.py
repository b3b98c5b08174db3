"""Elements on the edge of the function's domain (``x = 0`` of a square root): no central difference exists, so
the finite side gives the derivative by a second-order one-sided stencil, and the rest of the check goes on.
A rule whose value there is the one-sided derivative passes; a wrong one fails, named; an infinite one-sided
slope (``sqrt`` at 0, claimed ``inf``) is inconclusive, neither passed nor failed."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck


def soft(x):
    """``x / (1 + sqrt(x))`` on ``x >= 0``: slope 1 at 0, from the right only."""
    return float(np.sum(x / (1 + np.sqrt(x))))


def soft_grad(x):
    r = np.sqrt(x)
    return (r + 2) / (2 * (r + 1) ** 2)


POINT = np.array([0.0, 1.0, 0.3, 0.0])


def _edge_note(report: backcheck.Report) -> str:
    return next((n for n in report.notes if "edge of" in n and "one-sided" in n), "")


def test_a_right_rule_on_the_edge_passes_and_names_the_elements() -> None:
    report = backcheck.check(soft, POINT, soft_grad)
    assert report.ok, report
    note = _edge_note(report)
    assert "2 element(s)" in note and "x[0]" in note and "x[3]" in note and "x[1]" not in note


@pytest.mark.parametrize("factor", [0.5, 1.01])
def test_a_wrong_value_on_the_edge_fails_named(factor: float) -> None:
    report = backcheck.check(soft, POINT, lambda x: soft_grad(x) * np.where(x == 0, factor, 1.0))
    assert report.status == "fail", report
    assert sorted(e.name for e in report.mismatches) == ["x[0]", "x[3]"]


def test_a_smooth_power_on_the_edge() -> None:
    def f(x):
        return float(np.sum(x**2.5))

    assert backcheck.check(f, POINT, lambda x: 2.5 * x**1.5).ok
    assert backcheck.check(f, POINT, lambda x: 2.5 * x**1.5 + (x == 0) * 0.01).status == "fail"


def test_an_infinite_one_sided_slope_is_inconclusive_and_the_rest_judged() -> None:
    with np.errstate(divide="ignore"):
        report = backcheck.check(lambda x: float(np.sum(np.sqrt(x))), POINT, lambda x: 0.5 / np.sqrt(x))
    assert report.status == "inconclusive", report
    (leaf,) = report.leaves
    assert leaf.counts == {"ok": 2, "noisy": 2}
    with np.errstate(divide="ignore"):
        wrong = backcheck.check(lambda x: float(np.sum(np.sqrt(x))), POINT, lambda x: 0.4 / np.sqrt(x))
    assert wrong.status == "fail" and {e.name for e in wrong.mismatches} == {"x[1]", "x[2]"}, wrong


def test_the_frameworks_check_a_rule_on_the_edge() -> None:
    torch = pytest.importorskip("torch")
    bt = pytest.importorskip("backcheck.torch")
    jax = pytest.importorskip("jax")
    bj = pytest.importorskip("backcheck.jax")

    class Soft(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x / (1 + x.sqrt())

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * (x.sqrt() + 2) / (2 * (x.sqrt() + 1) ** 2)

    report = bt.check_function(Soft, torch.tensor(POINT))
    assert report.ok and _edge_note(report), report

    @jax.custom_jvp
    def soft_jax(x):
        return x / (1 + jax.numpy.sqrt(x))

    @soft_jax.defjvp
    def _(primals, tangents):
        (x,), (t,) = primals, tangents
        return soft_jax(x), (jax.numpy.sqrt(x) + 2) / (2 * (jax.numpy.sqrt(x) + 1) ** 2) * t

    report = bj.check(soft_jax, jax.numpy.asarray(POINT, dtype=jax.numpy.float32), mode="both")
    assert report.ok and _edge_note(report), report


def test_random_directions_that_leave_the_domain_fall_back_to_elements() -> None:
    # auto above a few thousand elements moves every element at once: with one on the edge every direction
    # leaves the domain, so every element is differenced on its own (the edge one from its finite side)
    x = np.random.default_rng(0).uniform(0.5, 2.0, 5000)
    x[7] = 0.0

    def f(x):
        return float(np.sum(x**1.5))

    report = backcheck.check(f, x, lambda x: 1.5 * np.sqrt(x), strategy="auto")
    assert report.ok and any("left f's domain" in n for n in report.notes), report
    wrong = backcheck.check(f, x, lambda x: 1.5 * np.sqrt(x) * np.where(np.arange(x.size) == 100, 1.01, 1.0))
    assert wrong.status == "fail" and [e.name for e in wrong.mismatches] == ["x[100]"]


def test_a_mask_forgotten_by_the_rule_fails_although_wider_steps_leave_the_domain():
    # masked entries do not move f; the rule gives them -1/x. Telling a coarse f from one that does not read an
    # element widens the step, which takes a masked entry below 0 (0 * log(-0.05) is NaN): still the mismatch
    x = np.array([[0.30, 0.05, 0.60], [0.20, 0.70, 0.08]])
    m = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    f = lambda x: -np.sum(m * np.log(x))  # noqa: E731
    assert backcheck.check(f, x, lambda x: -m / x).status == "pass"
    r = backcheck.check(f, x, lambda x: -1.0 / x)
    assert r.status == "fail" and r.leaves[0].n_mismatch == 2, r


@pytest.mark.parametrize("p0", [1e-20, 1e-12, 3e-9])
def test_an_element_far_nearer_the_edge_than_its_step_is_differenced_at_its_own_scale(p0):
    # log of a confident softmax's probability: twelve shrinks of 8 from a step of 6e-6 never reached 1e-20, and
    # the element was called a jump (inconclusive, 'discontinuous there')
    p = np.array([p0, 0.5, 2.0])
    right = backcheck.check(lambda v: float(np.sum(np.log(v))), p, lambda v: 1 / v)
    assert right.status == "pass", right
    assert not [n for n in right.notes if "jumps" in n], right.notes
    wrong = backcheck.check(lambda v: float(np.sum(np.log(v))), p, lambda v: np.where(v < 1e-6, 1.01, 1.0) / v)
    assert wrong.status == "fail" and [e.name for e in wrong.mismatches] == ["v[0]"], wrong
