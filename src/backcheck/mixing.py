"""How finely a backward pass that mixes its outputs' terms can be trusted, element by element.

A backward pass ``g = J^T u`` run in a low-precision dtype sums terms of its outputs' size: a softmax's ``1 - p``
where ``p`` rounds to 1 carries the rounding of ``u_k p_k``, whatever the element's own gradient. Every element
is first held to the rounding of the largest term ``|u_k y_k|`` of all the outputs (:func:`worst_term_floor`).
Where that alone leaves an element unvouched, :func:`unmix` finds the outputs it can mix: those a step of its
own moves, and those that no difference of any element, nor a random direction (a step's size per element),
moved (their dependence rounds away at every step, as a confident softmax's largest probability's does). An
output that other elements move and this one leaves exactly where it was (a large entry of an elementwise or
linear map, a sort, a gather) holds no term of its gradient, and the element is judged again at the rounding of
its own outputs.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from backcheck.evaluate import Evaluator
from backcheck.rounding import output_changes
from backcheck.strategies.elementwise import Outcome
from backcheck.strategies.elementwise import run as run_elementwise
from backcheck.verdict import NOISY, OK, Claim, sees


def worst_term_floor(ev: Evaluator, typical: np.ndarray) -> np.ndarray:
    """Per element, the gradient size its analytic rounding is modelled on: its tensor's ``typical`` gradient,
    or the largest output term over the element's size where that is larger."""
    if ev.output.peak > float(typical.min(initial=np.inf)):
        return np.maximum(typical, ev.output.peak / np.maximum(np.abs(ev.tree.values()), 1.0))
    return typical


def unmix(ev: Evaluator, claim: Claim, outcome: Outcome, rng: np.random.Generator | None) -> None:
    """Judge again the elements left inconclusive only by :func:`worst_term_floor`, at the rounding of the outputs
    they can mix (see the module docstring): two evaluations each to find them, and the element's own differences."""
    out, typical = ev.output, claim.typical
    if not out.peak or not out.ever or typical is None or claim.tol.custom:
        return
    checked, status = outcome.checked, outcome.status
    size = np.maximum(np.maximum(np.abs(claim.g[checked]), np.abs(outcome.numeric)), typical[checked])
    limit = outcome.bound if outcome.vouch_bound is None else outcome.vouch_bound
    unseen = ((status == OK) | (status == NOISY)) & ~sees(limit, size)
    pos = np.flatnonzero(unseen & (claim.rms[checked] > typical[checked]))
    if not pos.size:
        return
    terms = [np.abs(u) * np.abs(y0) for u, y0 in zip(out.weights, out.base, strict=True)]
    lone = max((float(np.max(t[~e], initial=0.0)) for t, e in zip(terms, out.ever, strict=True)), default=0.0)
    sizes = np.maximum(np.abs(ev.tree.values()), 1.0)
    rms = claim.rms.copy()
    for p in pos.tolist():
        i = int(checked[p])
        h = float(claim.steps[i])
        plus, minus = output_changes(ev, i, h), output_changes(ev, i, -h)
        if plus is None or minus is None:
            continue
        own = max(
            (float(np.max(t[(a > 0) | (b > 0)], initial=0.0)) for t, a, b in zip(terms, plus, minus, strict=True)),
            default=0.0,
        )
        rms[i] = max(float(typical[i]), max(own, lone) / sizes[i])
    lower = pos[rms[checked[pos]] < claim.rms[checked[pos]]]
    if lower.size:
        _merge(outcome, lower, run_elementwise(ev, dataclasses.replace(claim, rms=rms), checked[lower], rng))


def _merge(outcome: Outcome, at: np.ndarray, again: Outcome) -> None:
    """Write ``again`` (an outcome over ``outcome.checked[at]``) into ``outcome`` at positions ``at``."""
    outcome.numeric[at], outcome.bound[at], outcome.status[at] = again.numeric, again.bound, again.status
    if outcome.vouch_bound is not None or again.vouch_bound is not None:
        if outcome.vouch_bound is None:
            outcome.vouch_bound = outcome.bound.copy()
        outcome.vouch_bound[at] = again.bound if again.vouch_bound is None else again.vouch_bound
    if outcome.sharp is not None or again.sharp is not None:
        if outcome.sharp is None:
            outcome.sharp = np.zeros(outcome.checked.size, dtype=bool)
        outcome.sharp[at] = False if again.sharp is None else again.sharp
    outcome.notes.extend(n for n in again.notes if n not in outcome.notes)
    outcome.failed_leaves.update(again.failed_leaves)
    outcome.inconclusive_leaves.update(again.inconclusive_leaves)
