"""Strategies pick the directions to difference along; the verdict module judges what they measure.

| strategy  | directions                          | evaluations                 | answers                        |
|-----------|-------------------------------------|-----------------------------|--------------------------------|
| full      | every ``e_i``                       | 2N + refinement             | every element's verdict        |
| sparse    | ``e_i`` for a random sample         | 2k + refinement             | the sampled elements           |
| projected | k random directions per array       | 2k per array, not growing with N | pass/fail per array       |
| auto      | projected, then localize failures   | O(1) when correct, O(m log N) for m wrong | verdict + culprits |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from backcheck.errors import BadInputError
from backcheck.evaluate import Evaluator
from backcheck.strategies.elementwise import Outcome, run
from backcheck.strategies.projected import DIRECTIONS, localize, project_leaf, sample_fraction
from backcheck.verdict import FAILING, KINK, Tolerance

STRATEGIES = ("full", "sparse", "projected", "auto")
#: Arrays this small are checked element by element even under 'projected' and 'auto'.
SMALL_ARRAY = 64
#: Elements checked one by one in an array whose random directions cross kinks.
KINKY_SAMPLES = 256
#: Below this many elements, strategy=None means 'full'; above, 'auto'.
AUTO_THRESHOLD = 4096


def resolve(strategy: str | None, n: int) -> str:
    if strategy is None:
        return "full" if n <= AUTO_THRESHOLD else "auto"
    if strategy not in STRATEGIES:
        raise BadInputError(f"unknown strategy={strategy!r}.", f"use one of {list(STRATEGIES)}.")
    return strategy


def choose(strategy: str, n: int, samples: int | None, rng: np.random.Generator) -> np.ndarray:
    """The elements an elementwise strategy differences."""
    if strategy == "full":
        return np.arange(n)
    k = min(n, samples if samples is not None else 100)
    if k <= 0:
        raise BadInputError(f"samples={samples} must be positive.", "pass samples=100, for example.")
    return np.sort(rng.choice(n, size=k, replace=False))


def run_strategy(
    ev: Evaluator,
    g: np.ndarray,
    steps: np.ndarray,
    strategy: str,
    samples: int | None,
    tol: Tolerance,
    grad_eps: np.ndarray,
    rms: np.ndarray,
    regrad: Callable[[], np.ndarray] | None,
    seed: int,
    skip: frozenset[str] = frozenset(),
    g_wide: np.ndarray | None = None,
) -> Outcome:
    """Run ``strategy``; arrays named in ``skip`` (no analytic gradient to check) are not evaluated."""
    rng = np.random.default_rng(seed)
    if strategy in ("full", "sparse"):
        eligible = np.concatenate(
            [np.arange(lf.offset, lf.offset + lf.size) for lf in ev.tree.leaves if lf.name not in skip]
            or [np.empty(0, dtype=np.int64)]
        )
        idx = eligible[choose(strategy, eligible.size, samples, rng)] if eligible.size else eligible
        return run(ev, g, steps, idx, tol, grad_eps, rms, regrad, seed, g_wide)
    return _projected(ev, g, steps, strategy == "auto", samples, tol, grad_eps, rms, rng, skip)


def _projected(
    ev: Evaluator,
    g: np.ndarray,
    steps: np.ndarray,
    localize_failures: bool,
    samples: int | None,
    tol: Tolerance,
    grad_eps: np.ndarray,
    rms: np.ndarray,
    rng: np.random.Generator,
    skip: frozenset[str] = frozenset(),
) -> Outcome:
    k = samples or DIRECTIONS
    checked: list[int] = []
    numeric: list[float] = []
    bound: list[float] = []
    status: list[str] = []
    notes: list[str] = []
    failed_leaves: dict[str, str] = {}
    for leaf in ev.tree.leaves:
        if leaf.name in skip:
            continue
        if leaf.size <= SMALL_ARRAY:
            # a small array is cheaper to check element by element than to project and localize
            sub = run(ev, g, steps, np.arange(leaf.offset, leaf.offset + leaf.size), tol, grad_eps, rms, None, 0)
            checked.extend(int(i) for i in sub.checked)
            numeric.extend(sub.numeric)
            bound.extend(sub.bound)
            status.extend(str(x) for x in sub.status)
            notes.extend(sub.notes)
            failed_leaves.update(sub.failed_leaves)
            continue
        proj = project_leaf(
            ev,
            g,
            steps,
            leaf.offset,
            leaf.size,
            float(grad_eps[leaf.offset]),
            tol,
            rng,
            k,
            stop_on_failure=localize_failures,
            typical=float(rms[leaf.offset]),
        )
        worst = max(abs(m.mismatch) / m.bound if m.bound > 0 else 0.0 for _, m in proj.measurements)
        if proj.kinky and not proj.failed:
            # directions through a kink prove nothing: check a sample of elements one by one instead
            pool = np.arange(leaf.offset, leaf.offset + leaf.size)
            idx = np.sort(rng.choice(pool, size=min(KINKY_SAMPLES, leaf.size), replace=False))
            sub = run(ev, g, steps, idx, tol, grad_eps, rms, None, int(rng.integers(1 << 30)))
            checked.extend(int(i) for i in sub.checked)
            numeric.extend(sub.numeric)
            bound.extend(sub.bound)
            status.extend(str(x) for x in sub.status)
            notes.extend(sub.notes)
            notes.append(
                f"{leaf.name}: {proj.kinky} of {len(proj.measurements)} random directions cross a kink at the point "
                f"(ties, ReLU inputs at 0), so {idx.size} random elements were checked one by one instead."
            )
            continue
        if not proj.failed:
            notes.append(
                f"{leaf.name}: {k} random directions agree (worst |mismatch|/bound {worst:.2g}); an error "
                f"of {proj.detectable:.2g} of the gradient (RMS, step-weighted) or more would have "
                f"failed with probability >= {1 - 1e-3:.3g}."
            )
            continue
        failing = sum(m.failed for _, m in proj.measurements)
        if not localize_failures:
            failed_leaves[leaf.name] = (
                f"{failing} of {k} random directions disagree (worst |mismatch|/bound "
                f"{worst:.3g}); use strategy='auto' or 'full' to find the elements."
            )
            continue
        weights = proj.first_gaussian_failure
        root = next((m for kind, m in proj.measurements if kind == "gaussian" and m.failed), None)
        if weights is None:
            weights = rng.standard_normal(leaf.size)
            weights /= np.linalg.norm(weights)
        found = localize(ev, g, steps, leaf.offset, leaf.size, grad_eps, rms, tol, weights, root)
        for i in found.found:
            checked.append(i)
            numeric.append(found.numeric[i])
            bound.append(found.bound[i])
            status.append(found.status[i])
        n_wrong = sum(s in FAILING for s in found.status.values())
        if not found.complete:
            idx, num, bnd, st = sample_fraction(ev, g, steps, leaf.offset, leaf.size, grad_eps, rms, tol, rng)
            wrong = int(np.isin(st, FAILING).sum())
            keep = ~np.isin(idx, checked)
            checked.extend(int(i) for i in idx[keep])
            numeric.extend(num[keep])
            bound.extend(bnd[keep])
            status.extend(str(x) for x in st[keep])
            if n_wrong == 0 and wrong == 0:
                notes.append(
                    f"{leaf.name}: a random direction disagrees; group testing met only kinks before its budget "
                    f"ran out, and a random sample of {idx.size} elements has no wrong element."
                )
                continue
            failed_leaves[leaf.name] = (
                f"too many wrong elements to localize cheaply: {n_wrong} found, then a random sample of "
                f"{idx.size} elements has {wrong} wrong (about {wrong / idx.size:.0%} of {leaf.name})."
            )
        elif n_wrong == 0 and any(st == KINK for st in found.status.values()):
            notes.append(
                f"{leaf.name}: a random direction disagrees, but group testing traced it to elements at kinks "
                f"only ({sum(st == KINK for st in found.status.values())} found; they are not differentiable "
                "there and their analytic values are valid one-sided slopes)."
            )
        elif n_wrong == 0:
            # localization pinned the disagreement on no element: check a random sample one by one
            pool = np.arange(leaf.offset, leaf.offset + leaf.size)
            idx = np.sort(rng.choice(pool, size=min(KINKY_SAMPLES, leaf.size), replace=False))
            idx = idx[~np.isin(idx, checked)]
            sub = run(ev, g, steps, idx, tol, grad_eps, rms, None, int(rng.integers(1 << 30)))
            checked.extend(int(i) for i in sub.checked)
            numeric.extend(sub.numeric)
            bound.extend(sub.bound)
            status.extend(str(x) for x in sub.status)
            if np.isin(sub.status, FAILING).any():
                notes.append(f"{leaf.name}: a random direction disagrees; a random sample found the wrong elements.")
            elif np.any(sub.status == KINK) or not _fails_again(
                ev, g, steps, leaf, grad_eps, tol, rng, k, float(rms[leaf.offset])
            ):
                notes.append(
                    f"{leaf.name}: a random direction disagreed, but no element is wrong: group testing and a "
                    f"sample of {idx.size} elements found none, and the point has kinks or fresh directions agree."
                )
            else:
                failed_leaves[leaf.name] = (
                    f"{failing} of {k} random directions disagree, and fresh ones too, but no single element is "
                    "wrong beyond its own bound: the error is spread thinly over many elements (for example a "
                    "small constant factor)."
                )
        else:
            notes.append(f"{leaf.name}: a random direction disagrees; group testing found {n_wrong} wrong element(s).")
    return Outcome(
        np.asarray(checked, dtype=np.int64),
        np.asarray(numeric, dtype=np.float64),
        np.asarray(bound, dtype=np.float64),
        np.asarray(status, dtype=object),
        notes,
        failed_leaves,
    )


def _fails_again(
    ev: Evaluator,
    g: np.ndarray,
    steps: np.ndarray,
    leaf: Any,
    grad_eps: np.ndarray,
    tol: Tolerance,
    rng: np.random.Generator,
    k: int,
    typical: float,
) -> bool:
    """Whether fresh random directions confirm a failure that localization could not pin on any element."""
    proj = project_leaf(
        ev, g, steps, leaf.offset, leaf.size, float(grad_eps[leaf.offset]), tol, rng, k, typical=typical
    )
    return proj.failed


__all__ = ["STRATEGIES", "Outcome", "choose", "resolve", "run_strategy"]
