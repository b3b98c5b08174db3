"""Random directions over an array holding a few elements on the edge of f's domain (the log of a probability of
1e-20, a square root at 0): the elements are found by bisection, judged one by one from their finite side, and
the directions go on over the others, so a large array keeps its few evaluations and its detection size.

Before, such a check fell back to every element (4,060 evaluations at N = 2000), refused an array above 65,536
elements with a NonFiniteError, or, where shrinking the directions kept f finite, grew their bounds past what
vouches and passed on a sample that misses a single wrong element."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import backcheck


def weighted_log(n: int, edge: int, seed: int = 0, at: float = 1e-20):
    """``sum(w log p)`` over ``n`` probabilities, ``edge`` of them ``at`` (within a step of the log's pole)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.1, 1.0, size=n)
    where = rng.choice(n, edge, replace=False)
    p[where] = at
    w = rng.normal(size=n)

    def f(p):
        return float(np.sum(np.log(p) * w))

    def grad(p):
        return w / p

    return f, grad, p, np.sort(where)


def wrong_at(grad, i: int, factor: float = 1.5):
    def bad(p):
        g = grad(p)
        g[i] *= factor
        return g

    return bad


def edge_note(report) -> str:
    return next(n for n in report.notes if "bisection found" in n)


#: Bisection costs 4 evaluations per level for one element on the edge, plus its own judgement (its step shrunk
#: up to 13 times: 2 evaluations each), the failed direction's shrinks (2 each), the point (twice) and at most
#: three directions after.
def edge_budget(n: int, edge: int) -> int:
    return edge * (4 * math.ceil(math.log2(n)) + 2 * 14) + 2 * 14 + 2 + 8


@pytest.mark.parametrize("n, edge", [(2000, 1), (100_000, 1), (100_000, 3)])
def test_elements_on_the_edge_are_found_and_the_rest_projected(n: int, edge: int) -> None:
    f, grad, p, where = weighted_log(n, edge)
    before = p.copy()
    r = backcheck.check(f, p, grad, strategy="auto")
    assert r.status == "pass", r
    assert r.n_evals <= edge_budget(n, edge), r.n_evals
    note = edge_note(r)
    assert all(f"p[{i}]" in note for i in where), note
    # vouched by the directions (one may do, where its mismatch is a small enough share of its bound), not a sample
    assert any(re.search(r"random directions? agrees?\b", n) for n in r.notes), r.notes
    np.testing.assert_array_equal(p, before)


def test_a_wrong_element_beside_elements_on_the_edge_fails_by_name() -> None:
    f, grad, p, where = weighted_log(100_000, 2)
    wrong = 5 if 5 not in where else 6
    r = backcheck.check(f, p, wrong_at(grad, wrong), strategy="auto")
    assert r.status == "fail", r
    leaf = r.leaves[0]
    failing = [e.name for e in leaf.worst if e.status == "mismatch"]
    assert failing == [f"p[{wrong}]"], r
    assert not leaf.kinks, r  # (not excused as a kink: the gradients around it hold the 1e20 of the edge)


@pytest.mark.parametrize("kinks", [True, False], ids=["relu_kinks", "smooth"])
def test_an_edge_element_whose_own_step_stays_inside_only_shrunk_is_left_out_and_a_wrong_one_fails(kinks: bool) -> None:
    # x[7] is 1e-14 from log's pole: a direction shrunk 1e7 times stays inside, its bound grown as much (past what
    # vouches: a sample of 256 elements then passed a single wrong one). Found by bisection and left out, the
    # directions over the others (and the elements at the ReLU's kinks, found by bisection too) vouch, and one
    # wrong element of 1e5 fails by name. (Smooth: the noise measured along a direction that leaves x[7] still
    # moved it by a unit of its grid, and log's rounding there posed as a noise 2,000 times the mismatch.)
    rng = np.random.default_rng(2)
    n = 100_000
    x = rng.uniform(-0.9, 1.0, size=n)
    zeros = rng.choice(n, 10, replace=False)
    if kinks:
        x[zeros] = 0.0
    x[7] = -1 + 1e-14
    w = rng.normal(size=n)

    def f(x):
        return float(np.sum(np.maximum(x, 0) * w) + np.sum(np.log(x + 1)))

    def grad(x):
        return (x > 0) * w + 1 / (x + 1)

    r = backcheck.check(f, x, grad, strategy="auto")
    assert r.status == "pass", r
    assert "x[7]" in edge_note(r)
    assert any(re.search(r"random directions? agrees?\b", n) for n in r.notes), r.notes
    bad = backcheck.check(f, x, wrong_at(grad, 123), strategy="auto")
    assert bad.status == "fail", bad
    assert [e.name for e in bad.leaves[0].worst if e.status == "mismatch"] == ["x[123]"], bad


def test_a_square_root_at_zero_and_an_arithmetic_error_at_the_edge() -> None:
    rng = np.random.default_rng(4)
    n = 100_000
    x = rng.uniform(0.1, 1.0, size=n)
    x[[10, 20_000]] = 0.0
    w = rng.normal(size=n)

    def f(x):  # x ** 1.5 is differentiable at 0 from the right; NaN left of it
        return float(np.sum(np.sqrt(x) ** 3 * w))

    def grad(x):
        return 1.5 * np.sqrt(x) * w

    r = backcheck.check(f, x, grad, strategy="auto")
    assert r.status == "pass", r
    assert "x[10]" in edge_note(r) and "x[20000]" in edge_note(r)

    g, dg, p, where = weighted_log(100_000, 1, seed=5)

    def raising(p):  # log of a negative number raises here instead of returning NaN
        with np.errstate(all="raise"):
            return g(p)

    r = backcheck.check(raising, p, dg, strategy="auto")
    assert r.status == "pass", r
    assert f"p[{where[0]}]" in edge_note(r)


def test_too_many_elements_on_the_edge_still_refuse_a_large_array_by_name() -> None:
    f, grad, p, _ = weighted_log(100_000, 400)
    with pytest.raises(backcheck.NonFiniteError, match="cannot stay inside the domain"):
        backcheck.check(f, p, grad, strategy="auto")

