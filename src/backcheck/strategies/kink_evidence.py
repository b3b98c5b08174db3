"""Evidence of kinks inside a Richardson table's steps, read from an element's differences at a few scales.

A float32 function's table over steps wider than the distance to a kink (a ReLU input a few 1e-3 from 0) can
converge to a value some percent off the derivative with a small error estimate; a mismatch it shows confirms
nothing there. These predicates read the one-sided slopes and central differences of one element at steps from four
times the table's step down to a quarter of it (``strategies.sharp._rough`` takes them and weighs them with the noise
along the element), or two tables of it: gaps between the slopes kept as the step halves (a kink at the point, or
off it), jumps kept beneath curvature, central differences that move or depart toward the claim, and two tables
that contradict each other around the claim. Pure functions of the numbers given; no evaluation.
"""

from __future__ import annotations

import numpy as np

from backcheck.verdict import bound

#: One-sided slopes whose gap shrinks to more than this share of itself as the step halves cross a kink within the
#: step (a smooth function's gap, ``f'' h``, halves).
ROUGH = 0.6
#: The margin on the next order of a central difference's truncation where :func:`finer_departs` carries the
#: leading term's miss at the widest halving to a finer step (a prediction from the widest step misses by about
#: 4/3 of that miss, carried by the square of the steps' ratio, for an ``h**4`` term).
NEXT_ORDER = 2.0
#: The share of a table's bound and a finer difference's rounding (each a few standard deviations wide) by which
#: that difference departs toward the claim to show a kink inside the table's steps. Half: a departure of two
#: deviations toward the claim leaves a mismatch unconfirmed (inconclusive) rather than failed. Beside ReLU kinks
#: on both sides of the point, a float32 network's tables were 10% off the derivative, their finer differences
#: departing toward the claim by 0.8 of the full share: right rules failed at 4 of 180 points (and a rule 5% off
#: failed there on no better evidence).
DEPART = 0.5
#: A jump between one-sided slopes that keeps this share of itself as the step halves, beyond its rounding, is a
#: kink's (a smooth f's remainder keeps an eighth): a jump of 3.5e-5 kept within 10% over four halvings, its
#: rounding a third of it at the second, fell short of ROUGH and a right rule beside it failed.
JUMP_KEPT = 0.35
#: ... and this share at the finest halving, once kept at JUMP_KEPT somewhere: it lies inside the finest step.
DEEP = 0.25
#: The rounding of a gap between one-sided slopes, ``|phi(x + h) + phi(x - h) - 2 phi(x)| / h``, in units of one
#: difference's (three values, the middle one twice: ``sqrt(6)``).
GAP_NOISE = 2.5


def tables_split(a: float, first: tuple[float, float], below: tuple[float, float], res: float) -> bool:
    """Whether two tables (estimate and error each), the first and one started below it, contradict each other
    beyond both their bounds with the claim ``a`` between them: a bound that a table's own column gave is then
    wrong for one of them at least (kinks inside their steps: a float32 ReLU input 2e-4 from 0 below the point
    and another 1e-2 above, where the first table lay 8% under the derivative and the one below 29% over it),
    and neither confirms a mismatch. A wrong rule outside both tables still fails."""
    (v1, e1), (v2, e2) = first, below
    return abs(v1 - v2) > bound(e1 + e2, 0.0, 2 * res) and min(v1, v2) <= a <= max(v1, v2)


def off_point(slopes: np.ndarray, bounds: list[float]) -> bool:
    """Whether the one-sided ``slopes`` keep a gap at some halving but not at the finest, whatever the claim: kinks
    inside the wider steps and none at the point, whose slope need not show among theirs (a float32 ReLU network's
    element with kinks 3.7e-4 above and 1.5e-3 below: its gaps grew as the step halved from 0.06, every slope down
    to 4e-3 lay 3x above the derivative, and its right rule failed on a table of them)."""
    kept, gaps = kept_gaps(slopes, bounds, None), slopes[-4::2] - slopes[-3::2]
    return any(kept) and not (kept[-1] and gaps[0] * gaps[1] > 0)  # (a kink at the point keeps its gap's sign)


def kept_gaps(slopes: np.ndarray, bounds: list[float], a: float | None) -> list[bool]:
    """Whether the one-sided ``slopes`` (forward, backward at each scale) keep a gap as the step halves beyond its
    rounding (``bounds``, one per scale), with ``a`` among them, at each halving."""
    gaps = [abs(slopes[j] - slopes[j + 1]) for j in range(0, 2 * len(bounds), 2)]
    among = a is None or float(np.min(slopes)) - bounds[-1] <= a <= float(np.max(slopes)) + bounds[-1]
    # kept more than ROUGH of itself as the step halved, even were the wider gap rounded down by its bound and the
    # narrower one up by its: the rounding of gaps near their bounds does not make a smooth f's halving look kept
    return [among and gaps[k + 1] - bounds[k + 1] > ROUGH * (gaps[k] + bounds[k]) for k in range(len(bounds) - 1)]


def jump_kept(slopes: np.ndarray, bounds: list[float], a: float) -> list[float]:
    """The share of itself, beyond its rounding, that a jump between the one-sided ``slopes`` keeps as the step
    halves, with ``a`` among them, at each pair of halvings (the last: down to the finest step; -inf where the
    jump turns over or ``a`` lies outside): a
    gap ``f'' h + J`` (a kink inside the steps, of jump ``J``) leaves ``2 gap(h / 2) - gap(h) = J`` at every
    halving, where a smooth f's gap leaves a remainder that shrinks eightfold (of ``h**3``). Curvature hid the
    kink from :func:`kept_gaps`: a gap of 4e-4 at 1.3 falling to 6e-6 at 0.08, a ReLU input 5e-4 from 0 under
    a jump of 3e-5."""
    gaps = slopes[0::2] - slopes[1::2]
    jumps = [2 * gaps[k + 1] - gaps[k] for k in range(len(bounds) - 1)]
    rounding = [2 * bounds[k + 1] + bounds[k] for k in range(len(bounds) - 1)]
    # the claim between the one-sided slopes at the point, each drawn straight from the two finest steps (the
    # slopes at the widest ones differ by the curvature, not the jump: a rule 5% off lay among them)
    limits = 2 * slopes[-2:] - slopes[-4:-2]
    among = float(np.min(limits)) - rounding[-1] <= a <= float(np.max(limits)) + rounding[-1]
    return [
        (abs(jumps[k + 1]) - rounding[k + 1]) / (abs(jumps[k]) + rounding[k])
        if among and jumps[k] * jumps[k + 1] > 0
        else -np.inf
        for k in range(len(jumps) - 1)
    ]


def kept_steps(central: np.ndarray, rounding: list[float]) -> bool:
    """Whether the ``central`` differences move, as the step halves, by more than ROUGH of their previous move,
    beyond their ``rounding`` (one per scale): a smooth f's move shrinks fourfold (``f''' h**2``), one
    across a kink a little off the point (``J d / h``) grows, or turns back (several kinks, 2e-3 and 6e-3 off,
    whose gaps kept no pattern while the differences crept 1e-4 per halving toward the rule)."""
    moves = [central[k + 1] - central[k] for k in range(len(rounding) - 1)]
    bounds = [rounding[k] + rounding[k + 1] for k in range(len(rounding) - 1)]
    return any(abs(moves[k + 1]) - bounds[k + 1] > ROUGH * (abs(moves[k]) + bounds[k]) for k in range(len(moves) - 1))


def finer_departs(
    central: np.ndarray, scales: list[float], rounding: list[float], a: float, table: tuple[float, float]
) -> bool:
    """Whether a ``central`` difference at one of the two finest ``scales`` departs from the table's estimate
    ``first`` toward the claim ``a`` by more than :data:`DEPART` of the table's bound and the difference's
    ``rounding`` (one per scale), taken together, and the truncation a smooth f's wider differences imply (their
    departure, by the square of the ratio of the steps; the largest of them). ``table``: the estimate and its
    bound."""
    first, first_bound = table
    offs = [c - first for c in central]
    # how far the leading term's model missed at the widest halving (the h**4 term, clear of rounding there),
    # carried to the finer scale as the leading term would be, NEXT_ORDER times over: a smooth f's exp(sin x) x**3
    # at a step of 0.06 departed 1.6e-9 from the leading term's prediction, toward a rule 6.6e-9 off
    missed = abs(offs[1] - offs[0] * (scales[1] / scales[0]) ** 2)
    for j in range(len(scales) - 2, len(scales)):
        truncation = max(abs(offs[k]) * (scales[j] / scales[k]) ** 2 for k in range(j))
        truncation += NEXT_ORDER * missed * (scales[j] / scales[1]) ** 2
        off = offs[j]
        # the table's bound and the difference's rounding (two values: sigma / sqrt(2) over the step) independent,
        # DEPART of them
        beyond = abs(off) > truncation + DEPART * float(np.hypot(first_bound, rounding[j]))
        if beyond and np.sign(off) == np.sign(a - first):
            return True
    return False
