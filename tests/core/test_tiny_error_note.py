"""A failing check whose wrong elements are a few, each off by a hair (a small term of the forward the rule leaves
out, 1e-7 x[2] beside x**2 / 2) says so, with the atol that accepts it; a wrong term, off by a good part of the
gradient where it acts, gets no such note."""

from __future__ import annotations

import numpy as np

import backcheck

P = np.array([0.3, 0.5, 0.7, 0.8, 1.1, 0.9, 0.4])


def test_a_term_the_rule_leaves_out_is_said_to_be_a_hair():
    r = backcheck.check(lambda p: float(np.sum(p**2) / 2 + 1e-7 * p[2]), P.copy(), lambda p: p.copy())
    assert r.status == "fail" and [e.name for e in r.mismatches] == ["p[2]"], r
    assert any("off at 1 element(s)" in n and "atol=" in n for n in r.notes), r.notes


def test_a_wrong_term_gets_no_such_note():
    def wrong(p):
        g = 1 / p
        g[2] *= 1.01
        return g

    r = backcheck.check(lambda p: float(np.sum(np.log(p))), P.copy(), wrong)  # (1% off at one element)
    assert r.status == "fail" and not any("off at 1 element(s)" in n for n in r.notes), r.notes


def test_a_forward_solved_to_a_tolerance_is_named_beside_the_rule():
    """x*(a) = a cos x*, iterated until its steps fall below 1e-6: the implicit rule is exact for the solution,
    the differences follow where the iteration stopped; the note names the forward's tolerance too."""

    def solve(a):
        x = np.zeros_like(a)
        while True:
            new = a * np.cos(x)
            if np.max(np.abs(new - x)) < 1e-6:
                return new
            x = new

    def implicit(a):
        x = solve(a)
        return np.cos(x) / (1 + a * np.sin(x))

    for a in (0.5, 0.7, 0.9):
        r = backcheck.check(lambda a: float(np.sum(solve(a))), np.array([a]), implicit)
        assert r.status == "fail", r
        assert any("A forward solved to a tolerance" in n and "the forward's first" in n for n in r.notes), r.notes
