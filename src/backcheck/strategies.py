"""Strategies pick which directions to difference along; the verdict module judges what they measure.

- ``full``: every basis vector ``e_i`` (2N evaluations plus refinement of doubtful elements).
- ``sparse``: ``e_i`` for a seeded random sample of ``samples`` elements.

Both end with a joint test of the elements found at kinks (see :func:`joint_kink_test`), which catches a
subgradient that is valid element by element but not as a whole (a max routed to every tied element).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backcheck.errors import BadInputError
from backcheck.evaluate import Evaluator
from backcheck.numeric.grad import roundoff
from backcheck.verdict import KINK, MISMATCH, SAFETY, Tolerance, judge, resolution

STRATEGIES = ("full", "sparse")


@dataclass
class Outcome:
    """Per-element results of a strategy, aligned with ``checked`` (flat indices)."""

    checked: np.ndarray
    numeric: np.ndarray
    bound: np.ndarray
    status: np.ndarray
    notes: list[str]


def choose(strategy: str, n: int, samples: int | None, rng: np.random.Generator) -> np.ndarray:
    if strategy == "full":
        return np.arange(n)
    if strategy == "sparse":
        k = min(n, samples if samples is not None else 100)
        if k <= 0:
            raise BadInputError(f"samples={samples} must be positive.", "pass samples=100, for example.")
        return np.sort(rng.choice(n, size=k, replace=False))
    raise BadInputError(f"unknown strategy={strategy!r}.", f"use one of {list(STRATEGIES)}.")


def run(ev: Evaluator, g: np.ndarray, steps: np.ndarray, idx: np.ndarray, tol: Tolerance,
        grad_eps: np.ndarray, rms: np.ndarray) -> Outcome:
    """Difference along ``e_i`` for every ``i`` in ``idx`` and judge each element."""
    m = idx.size
    fp, fm, dp, dm = np.empty(m), np.empty(m), np.empty(m), np.empty(m)
    for k, i in enumerate(idx):
        phis, disp = ev.element(int(i), (steps[i], -steps[i]))
        fp[k], fm[k] = phis
        dp[k], dm[k] = disp
    a = g[idx]
    numeric0 = (fp - fm) / (dp - dm)
    res = resolution(a, numeric0, 1.0, rms[idx]) * grad_eps[idx]
    j = judge(ev, idx, a, steps[idx], fp, fm, dp, dm, res, tol)
    notes: list[str] = []
    kinks = np.flatnonzero(j.status == KINK)
    if kinks.size >= 2:
        bad = joint_kink_test(ev, idx[kinks], g, steps, grad_eps, rms)
        if bad is not None:
            j.status[kinks[np.isin(idx[kinks], bad)]] = MISMATCH
            notes.append(
                f"{bad.size} element(s) at kinks are each a valid one-sided slope, but not jointly: moving them "
                "together changes the output by a different amount than their gradients sum to (for example a "
                "max whose gradient is routed to every tied element)."
            )
    return Outcome(idx, j.numeric, j.bound, j.status, notes)


def joint_kink_test(ev: Evaluator, kink_idx: np.ndarray, g: np.ndarray, steps: np.ndarray,
                    grad_eps: np.ndarray, rms: np.ndarray, n_subsets: int = 4) -> np.ndarray | None:
    """Move groups of kink elements together; return the group whose gradients are jointly inconsistent.

    Along a direction ``v``, a valid (sub)gradient satisfies ``<g, v>`` between the one-sided directional
    derivatives ``-f'(x; -v)`` and ``f'(x; v)``. Directions: all kink elements at once, then seeded random
    subsets (both with coefficients +1).
    """
    rng = np.random.default_rng(1234)
    subsets = [kink_idx]
    for _ in range(n_subsets):
        pick = kink_idx[rng.random(kink_idx.size) < 0.5]
        if pick.size >= 2:
            subsets.append(pick)
    for sub in subsets:
        t = float(np.min(steps[sub]))
        coef = np.ones(sub.size)
        phis, disps = ev.direction(sub, coef, (t, -t, t / 2, -t / 2))
        fwd1, bwd1 = (phis[0] - ev.phi0) / t, (ev.phi0 - phis[1]) / t
        fwd, bwd = (phis[2] - ev.phi0) / (t / 2), (ev.phi0 - phis[3]) / (t / 2)
        gs = g[np.sort(sub)]
        analytic = float(np.sum(gs))
        disp_err = (abs(float(np.dot(gs, disps[2] - t / 2))) + abs(float(np.dot(gs, disps[3] + t / 2)))) / (t / 2)
        res = float(np.sum(resolution(gs, gs, 1.0, rms[np.sort(sub)]) * grad_eps[np.sort(sub)]))
        trunc = max(abs(fwd - fwd1), abs(bwd - bwd1))
        slack = SAFETY * (trunc + 2 * roundoff(ev, t / 2) + res) + disp_err
        if not (min(fwd, bwd) - slack <= analytic <= max(fwd, bwd) + slack):
            return np.sort(sub)
    return None
