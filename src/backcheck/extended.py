"""A float64 backward pass's own rounding, told from a wrong formula by running it in long double.

A float64 gradient computed through unit-sized intermediates carries their rounding: a saturated sigmoid's
``s - t`` with ``s`` within 1e-11 of 1 is off by up to ``eps * 1``, which is 1e-5 of the element. A numeric
derivative of a loss computed stably (``logaddexp``) sees the true slope to far better than that, so the element
mismatches although the formula is right. Where long double is wider than float64 (x86's 80-bit format, or
quad precision), the same backward pass run on long double copies of the point computes the same formula
with 11 or more bits to spare: where that run meets the numeric derivative and the float64 value differs
from it by no more than rounding of the same formula can, the element is off through rounding, not wrong.
The run is made only where elements mismatch, so a check that passes never pays for it.

Where no wider run exists (torch and jax have no dtype wider than float64; a backward that refuses long double
or casts to float64 itself), the rounding is measured instead (:func:`excuse_measured`): the backward pass runs
at points along a line through the point, each element moved by up to its own step, and what a quadratic in
the offset cannot follow is its rounding; a mismatch within a few times that is no wrong formula.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from backcheck.bits import power_of_two_grid
from backcheck.outputs import same_function_tolerance
from backcheck.tree import Tree
from backcheck.verdict import FAILING, NOISY, OK, WIDE_AGREEMENT, Claim, sees

#: Whether numpy's long double has more precision than float64 on this platform (not on Windows or Apple's
#: ARM, where it is float64 itself).
WIDER = bool(np.finfo(np.longdouble).eps < np.finfo(np.float64).eps)
EPS64 = float(np.finfo(np.float64).eps)
EPS_LONG = float(np.finfo(np.longdouble).eps)


def _rounding(size: np.ndarray) -> np.ndarray:
    """The most a float64 run may be off through rounding of the same formula: relative to the element's or
    its tensor's size, or a few epsilons of unit-sized intermediates that cancelled."""
    return np.maximum(same_function_tolerance(EPS64) * size, WIDE_AGREEMENT * EPS64)


def extended_run(call: Callable[[Any], Any], tree: Tree) -> Callable[[], np.ndarray | None] | None:
    """The gradient ``call(point)`` of a float64 ``tree``, run on long double copies of its point when first
    asked and packed as float64; the callable answers None where the run raises or answers in another dtype
    (a backward that casts to float64 itself measures nothing). None when long double is no wider here, or
    the tree is not all float64."""
    if not WIDER or not tree.leaves or any(leaf.dtype != np.float64 for leaf in tree.leaves):
        return None
    done: list[np.ndarray | None] = []

    def run() -> np.ndarray | None:
        if not done:
            done.append(_run(call, tree))
        return done[0]

    return run


def _run(call: Callable[[Any], Any], tree: Tree) -> np.ndarray | None:
    try:
        wide = Tree(tree.fresh(dtype=np.longdouble), tree.root, in_place=False)
        g, dtypes = wide.pack_dtypes(call(wide.fresh()), "gradient")
    except Exception:  # noqa: BLE001 - a backward that refuses long double is judged at float64 alone
        return None
    return None if dtypes else g  # (a leaf answered in float64: computed there after all)


def excuse_rounding(claim: Claim, outcome: Any, extended: Callable[[], np.ndarray | None], name: Any) -> list[str]:
    """Failing float64 elements of ``outcome`` (a strategy's) whose backward pass, run in long double, meets
    the numeric derivative within the element's bound, and whose float64 value is off from that run by no more
    than rounding of the same formula: they pass, held to their bound plus the rounding measured, or are
    inconclusive where that sum could not have seen an error that matters. ``name(i)`` names element ``i``.
    Returns the notes; ``outcome`` is changed in place."""
    ks = np.flatnonzero(np.isin(outcome.status, FAILING))
    ks = ks[claim.grad_eps[outcome.checked[ks]] == EPS64]
    if not ks.size:
        return []
    wide = extended()
    if wide is None:
        return []
    idx = outcome.checked[ks]
    a, w, n, b = claim.g[idx], wide[idx], outcome.numeric[ks], outcome.bound[ks]
    ref = claim.rms[idx] if claim.typical is None else claim.typical[idx]
    gap, size = np.abs(a - w), np.maximum(np.abs(w), ref)
    # the long double run rounds the same terms EPS_LONG / EPS64 as finely as the float64 one: its own rounding
    # is the gap measured, scaled down (no absolute floor: a function of size 1e-300 has no unit-sized terms)
    own = np.maximum(same_function_tolerance(EPS_LONG) * size, WIDE_AGREEMENT * gap * (EPS_LONG / EPS64))
    # (an element failed by a joint test, a tie whose shares do not sum, mismatches on no value of its own)
    own_mismatch = np.abs(a - n) > b
    met = own_mismatch & (gap > 0) & np.isfinite(w) & (np.abs(w - n) <= b + own) & (gap <= _rounding(size))
    if not met.any():
        return []
    ks, idx, limit = ks[met], idx[met], b[met] + gap[met]
    size = np.maximum(np.maximum(np.abs(w[met]), np.abs(n[met])), ref[met])
    shown = [
        f"{name(int(i))} (gradient {x:.6g}: off its long double run by {abs(x - y):.2g}, that run off the numeric "
        f"derivative by {abs(y - z):.2g})"
        for i, x, y, z in zip(idx[:3], a[met][:3], w[met][:3], n[met][:3], strict=True)
    ]
    head = (
        f"{idx.size} element(s) are off only through the float64 rounding of the backward pass (terms of unit "
        f"size that cancel, like a saturated sigmoid's s - t): the same backward run in long double matches the "
        "numeric derivative"
    )
    return _excused(outcome, (ks, limit, size), head, shown, "the rounding measured")


def _excused(
    outcome: Any, held: tuple[np.ndarray, np.ndarray, np.ndarray], head: str, shown: list[str], plus: str
) -> list[str]:
    """Elements at positions ``ks`` of ``outcome`` pass, held to ``limit``, or are inconclusive where that could
    not see an error that matters against ``size`` (``held``); the note says so, ``head`` first, then the first
    elements ``shown`` and what their bound adds (``plus``)."""
    ks, limit, size = held
    seen = sees(limit, size)
    outcome.status[ks] = np.where(seen, OK, NOISY)
    outcome.bound[ks] = limit
    if outcome.sharp is not None:
        outcome.sharp[ks] = False  # (held to more than a table's bound now: refinement at half the step applies)
    more = f" and {ks.size - 3} more" if ks.size > 3 else ""
    said = f"{head}: {', '.join(shown)}{more}; each is held to its bound plus {plus}"
    if not seen.all():
        said += f", which leaves {int((~seen).sum())} of them inconclusive (too coarse to see an error that matters)"
    return [said + "."]


#: Points along a line through the point (the point itself among them, whose gradient is known) where the backward
#: pass measures a gradient's own rounding where no wider run exists (:func:`excuse_measured`), and the residual
#: of their quadratic fit a mismatch may reach, in multiples.
ALONG = 9
RESIDUALS = 4.0
#: Two more backward calls, at these fractions of the line's steps: a gradient quantized so that each step of the
#: line moves it by whole quanta (torch's BCE at a logit of 24, whose sigmoid moves in units of 2**-52 and by 8
#: of them per step) lies exactly on a line there, and off it by a part of a quantum here.
FRACTIONS = (-1.0 / 64.0, 1.0 / 45.0)
#: A residual above this part of the element's size is no rounding but the gradient changing its formula
#: along the line (a ReLU mask flipping within a step of the point).
SMOOTH = 2.0**-10


def excuse_measured(ev: Any, claim: Claim, outcome: Any, name: Any) -> list[str]:
    """Failing float64 elements of ``outcome`` (their own value off the numeric derivative beyond their bound) whose
    mismatch lies within :data:`RESIDUALS` times the rounding the backward pass shows along a line through the
    point (:data:`ALONG` points, one backward call each but at the point itself, and two at :data:`FRACTIONS` of a
    step; each element moved by up to its own step in a random sign; the residual of a quadratic fit per
    element): they pass, held to their bound plus that, or are inconclusive where that sum could not have seen
    an error that matters. A residual beyond :data:`SMOOTH` of the element is the gradient changing along the
    line (a kink crossed), and excuses nothing. ``outcome`` is changed in place."""
    if claim.regrad is None or claim.g_wide is not None:
        return []  # (a low-precision gradient's float64 run has judged its formula already: never overruled)
    ks = np.flatnonzero(np.isin(outcome.status, FAILING))
    idx = outcome.checked[ks]
    a, n, b = claim.g[idx], outcome.numeric[ks], outcome.bound[ks]
    # float64 gradients only: a float32 one rounds by far more than errors that matter to a float32 check
    own = np.isfinite(a) & np.isfinite(n) & (np.abs(a - n) > b) & (claim.grad_eps[idx] == EPS64)
    if not own.any():
        return []
    ks, idx, a, n, b = ks[own], idx[own], a[own], n[own], b[own]
    signs = np.where(np.random.default_rng(0).random(claim.steps.size) < 0.5, -1.0, 1.0)
    ts = np.concatenate([np.linspace(-1.0, 1.0, ALONG), FRACTIONS])
    rows = []
    for t in ts:
        if t == 0.0:  # the point itself: the gradient the check was given
            rows.append(claim.g[idx])
            continue
        with ev.shifted(t * signs * claim.steps, evaluate=False):
            rows.append(claim.regrad()[idx])
    fit = np.vander(ts, 3)
    along = np.array(rows)
    resid = along - fit @ np.linalg.lstsq(fit, along, rcond=None)[0]
    ref = claim.rms[idx] if claim.typical is None else claim.typical[idx]
    size = np.maximum(np.maximum(np.abs(a), np.abs(n)), ref)
    # what a quadratic cannot follow, or the grid every value lies on (a difference of unit-sized terms scaled
    # by a power of two keeps their grid: constant along the line, or moving by whole steps of it)
    r = np.maximum(np.max(np.abs(resid), axis=0), power_of_two_grid(along) / 2)
    met = np.isfinite(r) & (r > 0) & (r <= SMOOTH * size) & (np.abs(a - n) <= b + RESIDUALS * r)
    if not met.any():
        return []
    ks, idx, limit, size = ks[met], idx[met], b[met] + RESIDUALS * r[met], size[met]
    shown = [
        f"{name(int(i))} (off the numeric derivative by {abs(x - y):.2g}; rounding along the line {z:.2g})"
        for i, x, y, z in zip(idx[:3], a[met][:3], n[met][:3], r[met][:3], strict=True)
    ]
    head = (
        f"{idx.size} element(s) are off only through the rounding of the backward pass itself (terms of unit size "
        f"that cancel, like a saturated sigmoid's s - t), measured along a line through the point "
        f"({ALONG - 1 + len(FRACTIONS)} more backward calls)"
    )
    return _excused(outcome, (ks, limit, size), head, shown, f"{RESIDUALS:g} times that rounding")
