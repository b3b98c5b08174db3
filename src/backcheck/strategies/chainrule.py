"""The values a chain rule may take where ReLU kinks of both signs meet.

At a point where many ReLU inputs are exactly 0 (a bias-free convolution over an image of exact zeros), f is, to
first order, ``<c, d> + sum_k w_k relu(<n_k, d>)`` along a move ``d``, with the ``w_k`` of both signs. A backward
pass that takes ReLU'(0) = t_k in [0, 1] at each unit returns ``c + sum_k t_k w_k n_k``: a valid chain-rule value
(torch's, with t_k = 0), yet not generally a limit of gradients around the point, where only the sign patterns
``[<n_k, d> > 0]`` some move ``d`` reaches are seen (eight channels over a 3-wide patch reach few of their 256).
Per element, those values fill ``center +- TV / 2``: ``center`` the mean of the gradients at two opposite nearby
points (``c + sum_k w_k n_k / 2``, whatever the pattern, and the central difference along the element's axis), and
``TV`` the total of the jumps ``|w_k n_k|`` in the element's gradient. A half circle of moves, from ``d0`` to
``-d0``, crosses every kink at the point once, so the element's gradient along it, sampled finely enough to part
the kinks, shows each jump once: :func:`chain_rule_range` bounds the values so.

The local model holds where the gradients at opposite nearby points average to one vector (the odd part of f's
first-order model is linear, as every sum of ReLUs of linear maps is); a tie of three maxima, a median or a sort
does not, and is judged as before.
"""

from __future__ import annotations

import math

import numpy as np

from backcheck.evaluate import Evaluator
from backcheck.strategies.own_rounding import ULPS_AWAY
from backcheck.verdict import Claim

#: Arcs the half circle starts with; each arc whose end gradients differ is halved ...
ARCS = 16
#: ... until a split leaves one half unchanged this many times in a row (a single kink inside, or kinks whose jumps
#: share their sign) ...
QUIET = 3
#: ... or this many backward passes are spent (the jumps found by then are too few: a narrower range, never a
#: wider one).
CHAIN_SAMPLES = 1024
#: Pairs of opposite moves besides the half circle's ends that must average to the same gradient.
OPPOSITE_PAIRS = 3
#: A change of an element's gradient below this fraction of its bound is no jump (no arc is split for it).
QUIET_SHARE = 1.0 / 16
#: ... nor one within this many units of the gradient's rounding.
ROUNDING_UNITS = 64


def chain_rule_range(
    ev: Evaluator, claim: Claim, sub: np.ndarray, slack: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per element of ``sub`` (flat positions; ``claim.regrad`` given): the center and half-width of the values a
    chain rule may take at the point where ReLU kinks meet, and whether the local model holds there (the gradients
    at opposite nearby points average to the center within ``slack``)."""
    regrad = claim.regrad
    assert regrad is not None

    def at(d: np.ndarray) -> np.ndarray:
        with ev.shifted(d, evaluate=False):
            return np.array(regrad()[sub], dtype=np.float64)

    shifts = _moves(ev, claim, rng)
    d0, d1 = next(shifts), next(shifts)
    ends = at(d0), at(-d0)
    center = (ends[0] + ends[1]) / 2
    symmetric = np.ones(sub.size, dtype=bool)
    for _ in range(OPPOSITE_PAIRS):
        d = next(shifts)
        symmetric &= np.abs((at(d) + at(-d)) / 2 - center) <= slack
    # (a change within a few units of the gradient's rounding is none either)
    quiet = np.maximum(QUIET_SHARE * slack, ROUNDING_UNITS * claim.grad_eps[sub] * np.abs(center))
    rise, fall = _jumps(at, d0, d1, ends, quiet)
    # a kink of ReLUs of linear maps is crossed once by any half circle; a curved one (a hinge of a quadratic) may
    # be crossed back and forth, its jump counted thrice: the smaller total of two half circles stands
    d2 = next(shifts)
    other = _jumps(at, d1, d2, (at(d1), at(-d1)), quiet)
    total = np.minimum(rise + fall, other[0] + other[1])
    return center, total / 2, symmetric & np.isfinite(total)


def _moves(ev: Evaluator, claim: Claim, rng: np.random.Generator):  # noqa: ANN202 - an endless generator
    """Random moves of the point, each element by a Gaussian share of one scale of its own, drawn once: within
    :data:`~backcheck.strategies.nearby.SAMPLE_RADIUS` steps, mixed per array and per element, and at least a few
    units in the last place of its dtype (a float32 layer's move rounds back onto the point below that). Moves of
    one scale cross the kinks of a half circle through them at angles spread evenly (of scales drawn apart, those
    of a patch of three elements, all small in one move, crowd within a thousandth of the circle)."""
    from backcheck.strategies.nearby import SAMPLE_RADIUS  # (nearby imports this module)

    steps, values = claim.steps, ev.tree.values()
    leaf_of = np.searchsorted(ev.tree.offsets, np.arange(steps.size), side="right") - 1
    scale = 10.0 ** rng.uniform(-1, 0, size=len(ev.tree.leaves))[leaf_of] * np.exp(rng.standard_normal(steps.size) / 2)
    floor = 2 * ULPS_AWAY * claim.grad_eps * np.abs(values)
    size = np.maximum(SAMPLE_RADIUS * steps * scale, floor)
    while True:
        yield size * rng.standard_normal(steps.size)


def _jumps(at, d0: np.ndarray, d1: np.ndarray, ends: tuple[np.ndarray, np.ndarray], quiet: np.ndarray):  # noqa: ANN001, ANN202
    """The summed rises and falls (each >= 0) of the gradients ``at`` the moves ``cos(a) d0 + sin(a) d1`` as ``a``
    goes from 0 to pi: arcs whose ends differ by more than ``quiet`` are halved until each holds one jump (see
    :data:`QUIET`) or :data:`CHAIN_SAMPLES` is spent."""

    def point(a: float) -> np.ndarray:
        return at(math.cos(a) * d0 + math.sin(a) * d1)

    grid = np.linspace(0.0, math.pi, ARCS + 1)
    values = [ends[0], *(point(a) for a in grid[1:-1]), ends[1]]
    stack = [(grid[k], grid[k + 1], values[k], values[k + 1], 0) for k in range(ARCS)]
    rise, fall = np.zeros(quiet.size), np.zeros(quiet.size)
    spent = ARCS + 1
    while stack:
        a, b, ra, rb, calm = stack.pop()
        step = rb - ra
        changed = np.abs(step) > quiet
        if not changed.any() or calm >= QUIET or spent >= CHAIN_SAMPLES:
            # a jump is a change that stays as its arc shrinks; a change that shrank below ``quiet`` with it is f's
            # curvature (a hinge of a quadratic: the gradient moves along the arc on its open side), no kink's
            jump = np.where(changed, step, 0.0)
            rise += np.maximum(jump, 0.0)
            fall -= np.minimum(jump, 0.0)
            continue
        mid = (a + b) / 2
        rm = point(mid)
        spent += 1
        left, right = rm - ra, rb - rm
        # one half unchanged wherever the arc changed: one kink inside (or several of one sign), so far
        single = np.all(~changed | (np.abs(left) <= quiet) | (np.abs(right) <= quiet))
        calm = calm + 1 if single else 0
        stack.append((a, mid, ra, rm, calm))
        stack.append((mid, b, rm, rb, calm))
    return rise, fall
