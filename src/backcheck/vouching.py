"""Pass means vouched: the elements of a check that passed whose bound could have seen an error that matters
(:data:`~backcheck.verdict.VOUCH` of their tensor's typical gradient, of the check's largest, or of the function's own
size where the gradient is 0), and the others made inconclusive, with the reason."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from backcheck.evaluate import Evaluator
from backcheck.strategies.elementwise import Outcome
from backcheck.strategies.sharp import COARSE_INSIDE, QUANTIZED
from backcheck.tree import Tree
from backcheck.verdict import JUMP, NOISY, OK, RES_FACTOR, SAFETY, VOUCH, VOUCH_FLOOR, rms, vouched


def value_gradient(ev: Evaluator) -> float:
    """The gradient a function of this size has over unit distances: what matters when the gradient is 0."""
    x = ev.tree.values()
    spread = rms(x) if x.size else 1.0
    return max(ev.scale, abs(ev.phi0)) / max(spread, 1.0)


def blind_cause(ev: Evaluator, grad_eps: float = 0.0) -> str:
    """Why differences may not see an error that matters here, as far as the check measured it. ``grad_eps``: the
    largest machine epsilon of the analytic gradient's dtypes, whose rounding the bounds grant (see
    :func:`~backcheck.verdict.resolution`)."""
    size = max(ev.scale, abs(ev.phi0))
    eps = ev.out_eps
    if ev.noise_quantum > QUANTIZED * eps * size:
        return f"f moves in steps of {ev.noise_quantum:.2g} (a value rounded inside)"
    if eps > 1e-10:
        return f"f returns {ev.out_name}, whose rounding of |f| ({eps:.2g} relative) limits the differences"
    if ev.noise_known > COARSE_INSIDE * eps * size:
        return f"f's measured noise, {ev.noise_known / max(eps * size, 1e-300):.2g} times its dtype's rounding of |f|"
    if SAFETY * RES_FACTOR * grad_eps > VOUCH / 2:
        # (a float16 gradient: 16 of its epsilons, by SAFETY, are 6% of its size; a float32 one's, 8e-6)
        return (
            f"the gradient's own dtype rounds to {grad_eps:.2g} of its size, and {RES_FACTOR:g} such units are granted "
            "to a backward pass computed in it, where no float64 run of the same backward pass (one that reads its "
            "inputs) tells its formula from its rounding"
        )
    return "the function's noise or rounding, an overflow, a pole or a dtype too narrow"


#: A numeric derivative whose move over the step is at most this many units of f's last place shows no size.
STILL_UNITS = 4.0


def within_rounding(ev: Evaluator, numeric: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Per element checked, whether its numeric derivative moved ``f`` over its central difference by no more than
    :data:`STILL_UNITS` units of f's last place: f stood still but for its rounding (hard ranks, a sort's plateau:
    1e-14 over a step of 1e-3 beside f of 10), which is no gradient. A derivative that moved f by tens of units
    (1e-6 sin(x) beside 1000) is one, if the differences cannot resolve it."""
    return np.abs(numeric) * 2 * steps <= STILL_UNITS * ev.out_eps * max(ev.scale, abs(ev.phi0))


def vouch(
    tree: Tree,
    g: np.ndarray,
    outcome: Outcome,
    value_gradient: Callable[[], float],
    sizes: tuple[np.ndarray, Callable[[], np.ndarray]],
    labels: set[str],
    cause: Callable[[], str],
) -> None:
    """Pass means vouched: elements whose bound could not see an error that matters become inconclusive.
    ``labels``: the verdicts present in ``outcome``; ``cause``: why, as far as measured (:func:`blind_cause`);
    ``sizes``: per element, the screen's typical size, and whether its numeric derivative shows no size
    (:func:`within_rounding`, asked where some element could not be vouched for with the derivatives' own)."""
    if OK not in labels:
        return  # nothing passed: nothing to vouch for
    limit = outcome.bound if outcome.vouch_bound is None else outcome.vouch_bound
    screen, still = sizes
    numeric = outcome.numeric
    blind, ref = _blind(tree, g, outcome, numeric, (screen, limit, labels), value_gradient)
    if blind.any():
        # a numeric derivative that is f's rounding over the step shows no size: a locally constant f's is no
        # gradient to weigh the bound against, and 0 lets the fallbacks (the other arrays' gradients, the
        # function's own size) take its place
        numeric = np.where(still(), 0.0, outcome.numeric)
        blind, ref = _blind(tree, g, outcome, numeric, (screen, limit, labels), value_gradient)
    if not blind.any():
        return
    _say_blind(tree, outcome, blind, (limit, ref, numeric), g, cause)


def _blind(
    tree: Tree,
    g: np.ndarray,
    outcome: Outcome,
    numeric: np.ndarray,
    given: tuple[np.ndarray, np.ndarray, set[str]],
    value_gradient: Callable[[], float],
) -> tuple[np.ndarray, Any]:
    """The elements :func:`vouch` cannot vouch for with ``numeric`` as the numeric derivatives' sizes, and the
    typical size each was weighed against. ``given``: the screen's sizes, the bounds, the verdicts present."""
    screen, limit, labels = given
    checked, status = outcome.checked, outcome.status
    # (no mask where it would select everything: every element a derivative)
    derivative = (status != JUMP) & (status != NOISY) if JUMP in labels or NOISY in labels else None
    # the typical size of each tensor, from the elements that have a derivative (not a pole's jump): one
    # number for a check of one tensor, else one per element
    which = None if len(tree.leaves) == 1 else np.searchsorted(tree.offsets, checked, side="right") - 1
    if which is None:
        ref: Any = rms(numeric if derivative is None else numeric[derivative])
        largest = ref if checked.size else 0.0
    else:
        ref = np.zeros(checked.size)
        for k in range(len(tree.leaves)):
            sel = which == k
            ref[sel] = rms(numeric[sel if derivative is None else sel & derivative])
        largest = float(ref.max()) if ref.size else 0.0
    # a tensor whose true gradient is about zero is judged against the largest typical gradient of the check
    typical = max((rms(g[lf.offset : lf.offset + lf.size]) for lf in tree.leaves if lf.size), default=0.0)
    # ... and a check whose gradient is zero everywhere (a constant) against the function's own size
    biggest = max(typical, largest)
    least = VOUCH_FLOOR * (biggest if biggest > 0 else value_gradient())
    ref = _maximum(ref, least) if which is None else np.maximum(ref, least)
    ref = np.maximum(ref, screen[checked])  # never stricter than the screen was
    blind = ~vouched(g[checked], numeric, limit, ref)
    if len(labels) > 1:
        blind &= status == OK
    return blind, ref


def _say_blind(
    tree: Tree,
    outcome: Outcome,
    blind: np.ndarray,
    measured: tuple[np.ndarray, Any, np.ndarray],
    g: np.ndarray,
    cause: Callable[[], str],
) -> None:
    """Each array's elements that could not be vouched for made inconclusive, with the reason."""
    checked, status = outcome.checked, outcome.status
    limit, ref, numeric = measured
    which = None if len(tree.leaves) == 1 else np.searchsorted(tree.offsets, checked, side="right") - 1
    for k in np.unique(which[blind]).tolist() if which is not None else (0,):
        leaf = tree.leaves[k]
        here = blind if which is None else blind & (which == k)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(np.isfinite(limit[here]), limit[here] / ref[here], np.inf)
        worst = float(np.max(ratio))
        size = "an unbounded error" if not np.isfinite(worst) else f"errors up to {worst:.2g} of the gradient's size"
        if np.isfinite(worst) and not np.any(g[checked][here]) and not np.any(numeric[here]):
            # (a gradient of 0 both ways has no size to weigh the bound against: the bound itself is said)
            size = f"errors up to {float(np.max(limit[here])):.2g}, in a gradient that is 0 both ways here"
        outcome.inconclusive_leaves.setdefault(
            leaf.name,
            f"{int(here.sum())} element(s) of {leaf.name} agree only within {size}: the finite differences "
            f"cannot see smaller errors here ({cause()}), so they are inconclusive rather than passed.",
        )
    status[blind] = NOISY


def _maximum(a: float, b: float) -> float:
    """``np.maximum`` of two floats, NaN included, without a ufunc call."""
    return math.nan if a != a or b != b else (a if a >= b else b)
