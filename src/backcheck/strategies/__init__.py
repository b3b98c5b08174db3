"""Strategies pick the directions to difference along; the verdict module judges what they measure.

| strategy  | directions                          | evaluations                 | answers                        |
|-----------|-------------------------------------|-----------------------------|--------------------------------|
| full      | every ``e_i``                       | 2N + refinement             | every element's verdict        |
| sparse    | ``e_i`` for a random sample         | 2k + refinement             | the sampled elements           |
| projected | k random directions per array       | 2k per array, not growing with N | pass/fail per array       |
| auto      | projected, then localize failures   | O(1) when correct, O(m log N) for m wrong | verdict + culprits |
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from backcheck.errors import BadInputError, NonFiniteError
from backcheck.evaluate import Evaluator
from backcheck.findings import LOCALIZED
from backcheck.strategies.around import agrees_around
from backcheck.strategies.bands import project_banded
from backcheck.strategies.domain import on_the_edge
from backcheck.strategies.elementwise import SPREAD_THIN, Outcome, plausible_rounding, run
from backcheck.strategies.projected import (
    MAX_KINKED,
    LeafProjection,
    kinked,
    localize,
    project_leaf,
    suspects,
    tied_together,
)
from backcheck.strategies.wording import (
    UNMET,
    agreed,
    blind_sample,
    crossed,
    exhaustive,
    how_many,
    on_edge,
    shrunk,
    unmet,
)
from backcheck.verdict import FAILING, JUMP, KINK, OK, VOUCH, Claim, rms, vouched

STRATEGIES = ("full", "sparse", "projected", "auto")
#: Arrays this small are checked element by element even under 'projected' and 'auto' (2 evaluations per
#: element cost no more than the three directions a correct array needs).
SMALL_ARRAY = 3
#: Elements checked one by one in an array whose random directions cross kinks.
KINKY_SAMPLES = 256
#: ... judged in two parts: the rest only where one of this many first ones was wrong or could see an error that
#: matters (see :func:`_sees_any`).
FIRST_SAMPLES = 32
#: ... or where at least this share of them is wrong (a spread error: the share is what the rest would tell).
DENSE_SAMPLE = 0.75
#: A sample of an array's elements that finds none wrong is followed by the rest of them, up to this many elements
#: in all in one check (a pass from a sample alone vouches only for errors spread over a few percent of them).
ELEMENTWISE_FALLBACK = 8192
#: Below this many elements, strategy=None means 'full'; above, 'auto'.
AUTO_THRESHOLD = 4096


def resolve(strategy: str | None, n: int) -> str:
    if strategy is None:
        return "full" if n <= AUTO_THRESHOLD else "auto"
    if strategy not in STRATEGIES:
        raise BadInputError(f"unknown strategy={strategy!r}.", f"use one of {list(STRATEGIES)}.")
    return strategy


def choose(strategy: str, pools: list[np.ndarray], samples: int | None, rng: np.random.Generator) -> np.ndarray:
    """The elements an elementwise strategy differences, from ``pools`` (each array's eligible positions).

    'sparse' draws ``samples`` of them: one from every array first (when there are enough samples), the rest
    in proportion to the arrays' sizes, so that no array goes unchecked because a large one took the sample.
    """
    every = np.concatenate(pools) if pools else np.empty(0, dtype=np.int64)
    if strategy == "full":
        return every
    k = min(every.size, samples if samples is not None else 100)
    if samples is not None and samples <= 0:
        raise BadInputError(f"samples={samples} must be positive.", "pass samples=100, for example.")
    sizes = np.array([p.size for p in pools], dtype=np.int64)
    first = (sizes > 0).astype(np.int64) if k >= np.count_nonzero(sizes) else np.zeros_like(sizes)
    rest = sizes - first
    share = rest * (k - first.sum()) / max(int(rest.sum()), 1)
    counts = first + np.floor(share).astype(np.int64)
    for j in np.argsort(-(share - np.floor(share)), kind="stable")[: k - int(counts.sum())]:
        counts[j] += 1  # the largest remainders take what rounding down left
    picked = [rng.choice(p, size=int(c), replace=False) for p, c in zip(pools, counts, strict=True) if c]
    return np.sort(np.concatenate(picked)) if picked else every[:0]


def run_strategy(
    ev: Evaluator,
    claim: Claim,
    strategy: str,
    samples: int | None,
    rng: np.random.Generator,
    skip: frozenset[str] = frozenset(),
    target: tuple[float | None, float] = (None, 0.999),
) -> Outcome:
    """Run ``strategy``; arrays named in ``skip`` (no analytic gradient to check) are not evaluated.

    ``target`` is (detect, confidence) for the random directions of 'projected' and 'auto': the RMS error
    (relative to the gradient, None: ten times one direction's bound) to catch, and the confidence to catch
    it with; ``samples`` fixes the number of directions instead.
    """
    if strategy in ("full", "sparse"):
        pools = [_elements(ev, lf) for lf in ev.tree.leaves if lf.name not in skip]  # masks left out
        outcome = run(ev, claim, choose(strategy, pools, samples, rng), rng)
    else:
        try:
            outcome = _projected(ev, claim, strategy == "auto", (samples, *target), rng, skip)
        except NonFiniteError as exc:
            # every direction leaves f's domain (an element on its edge: x = 0 of a square root): element by
            # element, where such an element is differenced from its finite side
            if ev.tree.size > EDGE_FALLBACK:
                raise NonFiniteError(
                    f"{exc.message} Random directions move every element at once and cannot stay inside the domain.",
                    "check with strategy='full' (or 'sparse'), which differences an element on the edge of the domain "
                    "from its finite side, or move the point away from the edge.",
                ) from exc
            pools = [_elements(ev, lf) for lf in ev.tree.leaves if lf.name not in skip]
            outcome = run(ev, claim, choose("full", pools, samples, rng), rng)
            outcome.notes.append(
                "random directions left f's domain at every step (an element on its edge), so every element was "
                "differenced on its own instead."
            )
    return outcome


#: Up to this many elements, a check whose random directions cannot stay inside f's domain is made element by
#: element instead (2 evaluations each); above, it is a typed error that says so.
EDGE_FALLBACK = 65536


def defers_repeat(strategy: str | None, n: int) -> bool:
    """Whether a check of ``n`` elements may defer the baseline's second call (:meth:`Evaluator.baseline`):
    random directions, whose few evaluations it would add to by an eighth."""
    return resolve(strategy, n) in ("projected", "auto")


class _Collected:
    """Per-element results gathered across arrays, in the shape of an :class:`Outcome`."""

    def __init__(self) -> None:
        self.checked: list[int] = []
        self.numeric: list[float] = []
        self.bound: list[float] = []
        self.status: list[str] = []
        self.notes: list[str] = []
        self.failed_leaves: dict[str, str] = {}
        self.floors: dict[str, float] = {}
        self.inconclusive_leaves: dict[str, str] = {}

    def add(self, idx: Any, numeric: Any, bound: Any, status: Any) -> None:
        self.checked.extend(int(i) for i in idx)
        self.numeric.extend(float(x) for x in numeric)
        self.bound.extend(float(x) for x in bound)
        self.status.extend(str(x) for x in status)

    def add_outcome(self, sub: Outcome) -> None:
        self.add(sub.checked, sub.numeric, sub.bound, sub.status)
        self.notes.extend(sub.notes)
        self.failed_leaves.update(sub.failed_leaves)
        self.inconclusive_leaves.update(sub.inconclusive_leaves)

    def outcome(self) -> Outcome:
        return Outcome(
            np.asarray(self.checked, dtype=np.int64),
            np.asarray(self.numeric, dtype=np.float64),
            np.asarray(self.bound, dtype=np.float64),
            np.asarray(self.status, dtype=object),
            self.notes,
            self.failed_leaves,
            self.inconclusive_leaves,
            floors=self.floors,
        )


def _ties(ev: Evaluator, claim: Claim, leaf: Any, rng: np.random.Generator, out: _Collected) -> bool:
    """Fail ``leaf`` where moving its tied elements together disagrees with their claimed gradient (see
    :func:`backcheck.strategies.projected.tied_together`): single elements at a tie each show a valid slope.
    Whether it failed. Elements already judged wrong one by one stay unmoved (their error is not the tie's)."""
    wrong = np.asarray(out.checked, dtype=np.int64)[np.isin(np.asarray(out.status, dtype=object), FAILING)]
    tied = tied_together(ev, claim, leaf, rng, wrong)
    if tied is None or not tied[0].failed:
        return False
    m, moved, direction = tied
    if agrees_around(ev, claim, direction, rng, m.bound):
        return False  # (kinks of both signs the move crosses: a valid chain-rule subgradient, as around the point)
    out.failed_leaves[leaf.name] = (
        f"moving its {moved} elements that share their value with another together (each value by one random "
        f"amount, ties moving as one) changes f at {m.numeric:.6g} per unit, but their claimed gradient says "
        f"{m.analytic:.6g} (bound {m.bound:.3g}): a gradient routed to every tied element of a max, or split "
        "among them wrongly? strategy='full' names the elements."
    )
    return True


def _projected(
    ev: Evaluator,
    claim: Claim,
    localize_failures: bool,
    plan: tuple[int | None, float | None, float],
    rng: np.random.Generator,
    skip: frozenset[str] = frozenset(),
) -> Outcome:
    out = _Collected()

    budget = [ELEMENTWISE_FALLBACK]  # elements the whole check may still judge past its samples

    def sample(leaf: Any, among: np.ndarray | None = None) -> tuple[Outcome, int]:
        """A random sample of the array's elements (of ``among``, flat positions, if given), judged one by one
        (not those judged already). Where none of it is wrong, the sample was of the whole array and the rest
        of it fits in what is left of :data:`ELEMENTWISE_FALLBACK` for the check, the rest too: a pass then
        vouches for every element, not for errors spread over a few percent of them. (A sample ``among`` the
        elements at kinks of an array whose others were projected stays a sample where more than another sample's
        worth are left: any value between their one-sided slopes is valid there, and judging thousands of them one
        by one costs tens of thousands of evaluations; a few dozen left of 300, one of them 1.5 times its slope,
        are judged too.) With the number of elements it was drawn from."""
        every = np.arange(leaf.offset, leaf.offset + leaf.size) if among is None else among
        pool = np.setdiff1d(every, ev.tree.excluded)
        pool = pool[~np.isin(pool, out.checked)]
        sub = _judged_sample(ev, claim, rng.choice(pool, size=min(KINKY_SAMPLES, pool.size), replace=False), rng, out)
        idx = sub.checked
        left = pool.size - idx.size
        rest_too = among is None or left <= KINKY_SAMPLES
        if rest_too and 0 < left <= budget[0] and not np.isin(sub.status, FAILING).any():
            budget[0] -= left
            rest = run(ev, claim, np.setdiff1d(pool, idx), rng)
            out.add_outcome(rest)
            sub = _joined(sub, rest)
        return sub, pool.size

    def alone(idx: np.ndarray) -> None:
        """Judge flat positions one by one (a band of a few elements)."""
        out.add_outcome(run(ev, claim, idx, rng))

    for leaf in ev.tree.leaves:
        if leaf.name in skip:
            continue
        masked = bool(np.any((ev.tree.excluded >= leaf.offset) & (ev.tree.excluded < leaf.offset + leaf.size)))
        if masked and leaf.size > SMALL_ARRAY:
            # directions through non-finite entries (masks) are not defined
            out.notes.append(f"{leaf.name} holds non-finite entries: {how_many(*sample(leaf))}.")
            continue
        if leaf.size <= SMALL_ARRAY or (plan[0] is not None and plan[0] >= leaf.size):
            # a small array is cheaper to check element by element than to project and localize
            out.add_outcome(run(ev, claim, _elements(ev, leaf), rng))
            if leaf.size > SMALL_ARRAY and plan[0] is not None:
                out.notes.append(exhaustive(leaf, plan[0]))
            continue
        own_path = _own_path(ev, claim, leaf, rng, out, budget)
        if own_path is None:
            continue
        proj = _inside_domain(ev, claim, leaf, rng, (plan, localize_failures), own_path, alone, out)
        if proj is None:
            continue
        out.notes.extend(shrunk(leaf, proj))
        if proj.wanted >= leaf.size and not proj.failed:
            # the detection size asked for needs as many directions as elements: every element instead
            out.add_outcome(run(ev, claim, _elements(ev, leaf), rng))
            out.notes.append(exhaustive(leaf, proj.wanted))
            continue
        if proj.kinky and not proj.failed:
            around = _around_kinks(ev, claim, leaf, rng, (plan, localize_failures), sample, out)
            if around is None:
                continue
            proj = around
        k = len(proj.measurements)
        worst = max(abs(m.mismatch) / m.bound if m.bound > 0 else 0.0 for m in proj.measurements)
        if not proj.failed and not proj.detectable <= VOUCH:
            # directions this coarse cannot see errors that matter (a function computing in float32): pass means
            # vouched, so a sample of elements is judged one by one instead, each against its own bound
            out.notes.append(
                f"{leaf.name}: {k} random direction{'s agree' if k > 1 else ' agrees'}, but only an error of "
                f"{proj.detectable:.2g} of the gradient or more would have failed them; instead "
                f"{how_many(*sample(leaf))}."
            )
            continue
        if not proj.failed:
            out.floors[leaf.name] = proj.detectable
            if plan[1] is not None and proj.detectable > UNMET * plan[1]:  # detect= asked for more: not vouched
                out.inconclusive_leaves[leaf.name] = unmet(plan[1], k, proj.detectable, leaf.name)
            out.notes.append(agreed(leaf.name, proj, plan, worst))
            continue
        failing = sum(m.failed for m in proj.measurements)
        if not localize_failures:
            out.failed_leaves[leaf.name] = (
                f"{failing} of {k} random directions disagree (worst |mismatch|/bound "
                f"{worst:.3g}); use strategy='auto' or 'full' to find the elements."
            )
            continue
        _localize_leaf(ev, claim, leaf, proj, rng, (plan, True), sample, out)
    return out.outcome()


def _inside_domain(
    ev: Evaluator,
    claim: Claim,
    leaf: Any,
    rng: np.random.Generator,
    how: tuple[tuple[int | None, float | None, float], bool],
    still: np.ndarray,
    alone: Callable[[np.ndarray], None],
    out: _Collected,
) -> LeafProjection | None:
    """:func:`project_banded` over ``leaf``; where its directions leave f's domain at every shrink, or agree only
    shrunk (their bounds grown as much), the elements on the edge are found by bisection (:func:`on_the_edge`),
    judged one by one and left out of the directions over the others. The error (or the shrunk projection) stands
    where none is found alone, or too many."""
    try:
        proj, error = project_banded(ev, claim, leaf, rng, how, still, alone), None
    except NonFiniteError as exc:
        proj, error = None, exc
    if proj is not None and (proj.failed or min((m.shrunk for m in proj.measurements), default=1.0) >= 1.0):
        return proj
    edge = on_the_edge(ev, claim, leaf, rng, still)
    if edge is None:
        if error is not None:
            raise error
        return proj
    alone(edge + leaf.offset)
    out.notes.append(on_edge(leaf, edge))
    still = np.union1d(still, edge)
    return None if still.size >= leaf.size else project_banded(ev, claim, leaf, rng, how, still, alone)


def _around_kinks(
    ev: Evaluator,
    claim: Claim,
    leaf: Any,
    rng: np.random.Generator,
    how: tuple[tuple[int | None, float | None, float], bool],
    sample: Callable[..., tuple[Outcome, int]],
    out: _Collected,
) -> LeafProjection | None:
    """Random directions over ``leaf`` crossed a kink, and prove nothing about its other elements: leave the
    elements at kinks out and project the others again. Those are the elements at zero or at a shared value
    (post-ReLU activations, integers) where directions that leave them still (a quarter of the array at most, or
    all at zero where it holds many) cross no kink, else the few found by bisection (or, past :data:`MAX_KINKED`,
    all at zero or tied); they are judged one by one (a sample of them if many). The new projection, or None
    where the leaf was decided otherwise (directions still crossing kinks: a sample of all its elements; tied
    elements failing)."""
    plan, localize_failures = how
    at = suspects(leaf)
    many = at.size > 4 * MAX_KINKED
    zeros = np.flatnonzero(leaf.original.reshape(-1) == 0)
    # a ReLU's kinks are at zero (integers' other shared values are no kinks of it, and the elements left to the
    # directions then include the nonzero ones a sample would mostly miss); a few dozen at zero or tied are
    # cheaper to leave out than to find by bisection (2 log2(N) directions each) where they are a small share of
    # the array (in a small one bisection is cheap, and finds the few that are kinks among many tied)
    few = not many and 0 < at.size <= leaf.size // 4  # (else zeros among many suspects, or bisection)
    first = zeros if many and 0 < zeros.size < at.size else (at if few else None)
    again, still = None, None
    if first is not None:  # (fewer than the array's elements: a quarter, or zeros among more suspects)
        again = project_leaf(ev, claim, leaf, rng, plan, stop_on_failure=localize_failures, still=first)
        still, again = (first, again) if again.failed or not again.kinky else (None, None)
    suspected = still is not None or many  # (left out as suspects, not found by bisection)
    if again is None:
        still = at if many else kinked(ev, claim, leaf, rng)
        if still is not None and still.size < leaf.size:
            again = project_leaf(ev, claim, leaf, rng, plan, stop_on_failure=localize_failures, still=still)
    if again is None or (again.kinky and not again.failed):
        out.notes.append(f"{leaf.name}: {crossed(leaf, still, again)}, so instead {how_many(*sample(leaf))}.")
        _ties(ev, claim, leaf, rng, out)
        return None
    assert still is not None
    if still.size > KINKY_SAMPLES:
        where = (
            f"{still.size} of its elements sit at zero or share their value with another, where random directions "
            f"cross kinks: of these, {how_many(*sample(leaf, still + leaf.offset))}; the rest"
        )
    else:
        out.add_outcome(run(ev, claim, still + leaf.offset, rng))
        where = (
            f"random directions cross a kink at the point (ties, ReLU inputs at 0, jumps) at {still.size} element(s), "
            f"{'those at zero or tied' if suspected else 'found by bisection'}, judged one by one; the others"
        )
    out.notes.append(f"{leaf.name}: {where} were projected again without them.")
    return None if _ties(ev, claim, leaf, rng, out) else again


def _beside_kinks(
    ev: Evaluator, claim: Claim, leaf: Any, rng: np.random.Generator, plan: Any, sample: Any, out: _Collected
) -> bool:
    """A direction disagreed where group testing pinned it on no element and a sample holds kinks (integer data
    under a ReLU: every element tied, a seventh at zero): directions that leave the elements at kinks still judge
    the others, and fail where one of them is wrong (a sample of 256 of 10,000 missed it). Whether that decided."""
    again = _around_kinks(ev, claim, leaf, rng, (plan, True), sample, out)
    if again is not None and again.failed:
        _localize_leaf(ev, claim, leaf, again, rng, (plan, False), sample, out)
    elif again is not None and again.detectable <= VOUCH:
        out.floors[leaf.name] = again.detectable
    return again is None or again.failed or again.detectable <= VOUCH


def _own_path(
    ev: Evaluator, claim: Claim, leaf: Any, rng: np.random.Generator, out: _Collected, budget: list[int]
) -> np.ndarray | None:
    """The positions of ``leaf`` whose gradient is NaN or infinite (a direction through one has no finite bound:
    the whole array fell to a sample), or whose native gradient is farther from its float64 run than rounding can
    be (a float32 path of the backward off at one element): judged one by one at their own dtype's resolution (all
    of them while they fit in what is left of the check's ``budget``, else a sample), and left out of the
    directions, whose bound would count the gap as rounding. None when that is every element (judged here); an
    empty array when there is none."""
    gs = claim.g[leaf.offset : leaf.offset + leaf.size]
    with np.errstate(all="ignore"):  # (a sum that is finite has finite terms: one pass, no temporaries)
        finite = math.isfinite(float(np.sum(gs))) or bool(np.isfinite(gs).all())
    nonfinite = np.empty(0, dtype=np.int64) if finite else np.flatnonzero(~np.isfinite(gs))
    if nonfinite.size:
        out.notes.append(
            f"{leaf.name}: {nonfinite.size} element(s) of the gradient are NaN or infinite: judged one by one (a "
            "sample of them if many), and left out of the random directions."
        )
    far = nonfinite
    if claim.g_wide is not None:
        idx = np.arange(leaf.offset, leaf.offset + leaf.size)
        far = np.union1d(far, np.flatnonzero(~plausible_rounding(claim, idx, claim.g_wide[idx], ev)))
    if not far.size:
        return far
    judged = far + leaf.offset
    if far.size <= budget[0]:
        budget[0] -= far.size
        how = "they were judged one by one"
    else:
        judged = np.sort(rng.choice(judged, min(KINKY_SAMPLES, judged.size), replace=False))
        budget[0] = max(budget[0] - judged.size, 0)  # (the sample is judged one by one too)
        how = (
            f"{judged.size} random ones of them were judged one by one (an error confined to a few of the others "
            "may go unseen; strategy='full' judges every one)"
        )
    if far.size > nonfinite.size:
        out.notes.append(
            f"{leaf.name}: {far.size - nonfinite.size} element(s) of the gradient differ from the same backward pass "
            f"run in float64 by more than rounding can: {how}, at their own dtype's resolution."
        )
    out.add_outcome(run(ev, claim, judged, rng))
    return far if far.size < leaf.size else None


def _arrays(o: Outcome) -> tuple[np.ndarray, ...]:
    return o.checked, o.numeric, o.bound, o.status


def _judged_sample(ev: Evaluator, claim: Claim, draw: np.ndarray, rng: np.random.Generator, out: Any) -> Outcome:
    """The elements ``draw`` judged one by one (into the collector ``out`` too): its first :data:`FIRST_SAMPLES`,
    then the rest where they saw something (:func:`_sees_any`), else a note says the rest was left."""
    sub = run(ev, claim, np.sort(draw[:FIRST_SAMPLES]), rng)
    out.add_outcome(sub)
    wrong = int(np.isin(sub.status, FAILING).sum())
    dense = wrong >= DENSE_SAMPLE * max(sub.checked.size, 1)  # (most wrong: a spread error, whose share is known)
    if draw.size > FIRST_SAMPLES and _sees_any(claim, sub) and not dense:
        more = run(ev, claim, np.sort(draw[FIRST_SAMPLES:]), rng)
        out.add_outcome(more)
        return _joined(sub, more)
    if draw.size > FIRST_SAMPLES:
        name = ev.tree.leaves[int(np.searchsorted(ev.tree.offsets, draw[0], side="right")) - 1].name
        out.notes.append(blind_sample(name, sub.checked.size, draw.size, wrong if dense else None))
    return sub


def _joined(a: Outcome, b: Outcome) -> Outcome:
    """Two outcomes of disjoint elements as one (for what a sample covered: the collector has each already)."""
    c, n, bd, st = (np.concatenate([x, y]) for x, y in zip(_arrays(a), _arrays(b), strict=True))
    return Outcome(c, n, bd, st, a.notes + b.notes, {**a.failed_leaves, **b.failed_leaves})


def _sees_any(claim: Claim, sub: Outcome) -> bool:
    """Whether a first sample's elements judged one by one found one wrong, or could see an error that matters
    in one (its bound within VOUCH of the element's size or its array's typical size), or one of that size itself
    (a sign flipped): else the rest of the sample, judged at the same resolution, would only cost evaluations (a
    float16 function of a million inputs, whose every difference is rounding: 2,000 evaluations of it, a
    minute)."""
    if np.isin(sub.status, (*FAILING, KINK)).any() or not sub.checked.size:
        return True  # (a kink's verdict is its one-sided slopes', not its bound's)
    typical = claim.typical[sub.checked] if claim.typical is not None else rms(sub.numeric)
    seen = vouched(claim.g[sub.checked], sub.numeric, sub.bound, typical)
    # ... or could see an error of the gradient's own size (a sign flipped, a factor of 2), which the rest may hold
    size = np.maximum(np.maximum(np.abs(claim.g[sub.checked]), np.abs(sub.numeric)), typical)
    return bool(np.any(seen & (sub.status == OK)) or np.any(sub.bound <= size))


def _elements(ev: Evaluator, leaf: Any) -> np.ndarray:
    """The array's elements, masks (non-finite entries) left out."""
    every = np.arange(leaf.offset, leaf.offset + leaf.size)
    return np.setdiff1d(every, ev.tree.excluded) if ev.tree.excluded.size else every


def _localize_leaf(
    ev: Evaluator,
    claim: Claim,
    leaf: Any,
    proj: Any,
    rng: np.random.Generator,
    how: tuple[tuple[int | None, float | None, float], bool],
    sample: Callable[..., tuple[Outcome, int]],
    out: _Collected,
) -> None:
    """A random direction failed on ``leaf``: find the wrong elements by group testing, or let a sample decide.
    ``how``: ``plan`` as :func:`project_leaf`'s, and whether group testing that finds kinks only may project again
    without the elements at kinks (once)."""
    plan, retry = how
    failing = sum(m.failed for m in proj.measurements)
    k = len(proj.measurements)
    weights = proj.failure
    root = next((m for m in proj.measurements if m.failed), None)
    if weights is None:
        weights = rng.random(leaf.size) - 0.5
    norm = float(np.linalg.norm(weights))
    weights = weights / norm
    if root is not None:  # localization measures along unit weights: the root's mismatch is linear in them
        root = dataclasses.replace(root, mismatch=root.mismatch / norm, bound=root.bound / norm)
    found = localize(ev, claim, leaf, weights, root)
    out.add(
        found.found,
        [found.numeric[i] for i in found.found],
        [found.bound[i] for i in found.found],
        [found.status[i] for i in found.found],
    )
    n_wrong = sum(s in FAILING for s in found.status.values())
    n_kinks = sum(s == KINK for s in found.status.values())
    n_jumps = sum(s == JUMP for s in found.status.values())
    if n_wrong and found.complete:
        out.notes.append(f"{leaf.name}: {LOCALIZED} {n_wrong} wrong element(s).")
        return
    if n_kinks and not n_jumps and found.complete:
        if _ties(ev, claim, leaf, rng, out):
            return
        # the bisection follows one half where both disagree: a wrong element may sit in the other, beside kinks
        # that hid it there; directions that leave the elements at kinks still tell (judged one by one)
        again = _around_kinks(ev, claim, leaf, rng, (plan, True), sample, out) if retry else None
        if again is None and retry:
            return  # (decided there: a sample, or tied elements)
        if again is not None and again.failed:
            _localize_leaf(ev, claim, leaf, again, rng, (plan, False), sample, out)
            return
        if again is not None and again.detectable <= VOUCH:
            out.floors[leaf.name] = again.detectable
            out.notes.append(
                f"{leaf.name}: a random direction disagrees, but group testing traced it to elements at kinks "
                f"only ({n_kinks} found; they are not differentiable there and their analytic values are valid "
                f"one-sided slopes); {len(again.measurements)} random directions that leave them still agree."
            )
            return
    if n_jumps and found.complete:
        # f jumps along these elements (a step, a value oscillating finer than the step): every direction that
        # moves them disagrees, so neither fresh directions nor the function's noise, which they inflate, can
        # judge the others; their halves agreed along the failing direction
        out.notes.append(
            f"{leaf.name}: a random direction disagrees, but group testing traced it to elements where f has no "
            f"derivative only ({n_jumps} where it jumps" + (f", {n_kinks} at kinks" if n_kinks else "") + "): they "
            "are inconclusive, and so is the array, whose other elements agreed along the direction only within "
            "the noise f shows through them."
        )
        return
    # halves that crossed a kink were dropped, a wrong element beside it with them: directions that leave the
    # elements at kinks still judge the others, before a sample (of hundreds of elements) is needed
    dropped = retry and found.complete and not n_wrong and found.crossed
    if dropped and _beside_kinks(ev, claim, leaf, rng, plan, sample, out):
        return
    # localization ran out of budget, or pinned the disagreement on no element: a random sample decides
    sub, _ = sample(leaf)
    wrong = int(np.isin(sub.status, FAILING).sum())
    if not found.complete and (n_wrong or wrong):
        out.failed_leaves[leaf.name] = (
            f"too many wrong elements to localize cheaply: {n_wrong} found, then a random sample of "
            f"{sub.checked.size} elements has {wrong} wrong (about {wrong / max(sub.checked.size, 1):.0%} of "
            f"{leaf.name})."
        )
    elif wrong:
        out.notes.append(f"{leaf.name}: a random direction disagrees; a random sample found the wrong elements.")
    else:
        # a sample holding kinks, or fresh directions crossing them: directions that leave the elements at kinks
        # still judge the others (fresh ones do where they cross none)
        kinks = found.crossed or bool(np.any(sub.status == KINK))
        fresh = None if kinks or not found.complete else project_leaf(ev, claim, leaf, rng, (max(k, 3), None, plan[2]))
        if fresh is not None and fresh.failed:
            out.failed_leaves[leaf.name] = (
                f"{failing} of {k} random directions disagree, and fresh ones too{SPREAD_THIN}"
            )
            return
        beside = retry and found.complete and not dropped and (kinks or (fresh is not None and fresh.kinky))
        if beside and _beside_kinks(ev, claim, leaf, rng, plan, sample, out):
            return  # (decided by directions that leave the elements at kinks still)
        if not _ties(ev, claim, leaf, rng, out):
            out.notes.append(
                f"{leaf.name}: a random direction disagreed, but no element is wrong: group testing and a sample "
                f"of {sub.checked.size} elements found none (the point has kinks, or fresh directions agree)."
            )


__all__ = ["STRATEGIES", "Outcome", "choose", "defers_repeat", "resolve", "run_strategy"]
