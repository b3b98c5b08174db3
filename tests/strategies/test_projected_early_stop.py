"""The projected check is sequential: what the directions the detection size needs leave of the miss probability
asked for is spent on stopping after fewer directions whose mismatches lie well within their bounds. A correct
gradient's mismatches are rounding, mostly tenths of their bounds or less, so it often costs two directions of
three; the stated detection size stays what the confidence asks for."""

from __future__ import annotations

import math

import numpy as np
import pytest
from agreeing import directions

import backcheck
from backcheck.strategies.direction import Measurement
from backcheck.strategies.projected import (
    DETECT_BOUNDS,
    SMALL_BALL,
    detectable_size,
    directions_needed,
    early_stops,
    stopped_early,
)


def _staged_miss(bound: float, stops: tuple[float, ...], size: float) -> float:
    """The sequential test's miss probability for an RMS error ``size`` (every direction's bound ``bound``)."""
    return sum((SMALL_BALL * t * bound / size) ** (j + 1) for j, t in enumerate((*stops, 1.0)))


@pytest.mark.parametrize("bound", [1e-9, 1e-7, 3e-3])
@pytest.mark.parametrize("confidence", [0.99, 0.999, 0.999999])
def test_the_stages_spend_exactly_what_the_full_test_leaves(bound, confidence):
    wanted = directions_needed(bound, None, confidence)
    stops = early_stops(bound, wanted, None, confidence)
    assert len(stops) == wanted - 1 and all(0 <= t < 1 for t in stops) and stops[-1] > 0
    assert list(stops) == sorted(stops)  # spent from the last stage back: the later, the more of its bound
    target = DETECT_BOUNDS * bound
    alpha = 1 - confidence
    assert (SMALL_BALL * bound / target) ** wanted < alpha
    assert math.isclose(_staged_miss(bound, stops, target), alpha, rel_tol=1e-9)
    # the stated detection size is the target itself: the stages cost nothing the confidence did not allow
    staged = detectable_size([bound] * wanted, 1.0, confidence, stops)
    assert math.isclose(staged, target, rel_tol=1e-6)
    assert detectable_size([bound] * wanted, 1.0, confidence) < staged  # (the full test alone left slack)


def test_the_default_stops_after_two_directions_within_a_quarter_of_their_bounds():
    stops = early_stops(1e-8, 3, None, 0.999)
    assert stops[0] == 0.0 and 0.24 < stops[1] < 0.28  # (all of the slack on the later stage: it buys more there)
    per = SMALL_BALL / DETECT_BOUNDS
    assert math.isclose((per * stops[1]) ** 2, 0.001 - per**3, rel_tol=1e-12)


def test_every_earlier_stage_gets_nothing():
    stops = early_stops(1e-8, directions_needed(1e-8, None, 0.999999), None, 0.999999)
    assert len(stops) >= 4 and set(stops[:-1]) == {0.0} and 0 < stops[-1] < 1


def test_no_stages_where_one_direction_is_all_the_test_takes():
    # gradcheck's detection: one direction's bound catches 1e-3 at 0.999 on its own
    assert directions_needed(1e-7, 1e-3, 0.999) == 1 and early_stops(1e-7, 1, 1e-3, 0.999) == ()


def test_a_direction_beyond_its_stage_or_failing_goes_on():
    stops = (0.01, 0.2)
    within = Measurement(mismatch=0.005, bound=1.0, numeric=1.0, analytic=1.0)
    fifth = Measurement(mismatch=-0.15, bound=1.0, numeric=1.0, analytic=1.15)
    assert stopped_early([within], stops)
    assert not stopped_early([fifth], stops)
    assert stopped_early([fifth, within], stops) and stopped_early([within, fifth], stops)
    assert not stopped_early([within, Measurement(0.3, 1.0, 1.0, 1.3)], stops)
    assert not stopped_early([within, within, within], stops)  # the last direction is the full test's
    assert not stopped_early([Measurement(0.0, 1.0, 1.0, 1.0, kinky=True)], stops)  # crosses a kink: proves nothing
    exact = Measurement(mismatch=0.0, bound=1.0, numeric=1.0, analytic=1.0)
    assert not stopped_early([exact], (0.0, 0.2))  # a stage given no share never stops, not even at 0


def _sine(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    c, x = rng.normal(size=n), rng.uniform(-0.9, 0.9, size=n)  # |x| < 1: every element has the same step
    return (lambda x: float(np.sum(np.sin(x) * c))), (lambda x: np.cos(x) * c), x


def test_a_correct_smooth_gradient_costs_fewer_than_three_directions():
    f, g, x = _sine(10_000)
    r = backcheck.check(f, x, g, strategy="auto")
    assert r.ok and directions(r) <= 2 and r.n_evals == 1 + 2 * directions(r)
    assert "vouches as 3 directions would" in " ".join(r.notes)


def test_errors_at_the_stated_size_pass_below_it_no_more_often_than_the_confidence_allows():
    """A Gaussian error of exactly the RMS size a correct gradient's check states, added to the gradient: a pass
    stating a detection size at or below it is a miss, allowed with probability 1 - confidence."""
    confidence, trials = 0.99, 300
    f, g, x = _sine(1000)
    stated = backcheck.check(f, x, g, strategy="projected", confidence=confidence).leaves[0].floor_rel
    g0 = g(x)
    rng = np.random.default_rng(1)
    missed = 0
    for seed in range(trials):
        e = rng.normal(size=x.size)
        e *= stated * math.sqrt(np.mean(g0**2) / np.mean(e**2))
        r = backcheck.check(f, x, lambda _x, d=g0 + e: d, strategy="projected", confidence=confidence, seed=seed)
        missed += r.status == "pass" and r.leaves[0].floor_rel <= stated
    # binomial(300, 0.01): mean 3, and at most 9 with probability 0.999
    assert missed <= 9


def test_no_stages_where_they_alone_would_lift_the_stated_size_past_vouch():
    # three directions alone state 8.2 bounds; the stages, 10: between them lies VOUCH, past which an array is
    # sampled element by element instead (hundreds of evaluations)
    from backcheck.strategies.projected import _within_vouch
    from backcheck.verdict import VOUCH

    bound = VOUCH / 9.0  # 8.2 bounds below VOUCH, 10 above
    stops = early_stops(bound, 3, None, 0.999)
    assert detectable_size([bound] * 3, 1.0, 0.999) <= VOUCH < detectable_size([bound] * 3, 1.0, 0.999, stops)
    assert _within_vouch(stops, bound, 3, 1.0, 0.999) == ()
    assert _within_vouch(stops, VOUCH / 20, 3, 1.0, 0.999) == stops  # (far below: the stages stay)
