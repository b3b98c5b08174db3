"""Elementwise strategies: difference along basis vectors ``e_i`` and judge each element.

- ``full``: every basis vector ``e_i`` (2N evaluations plus refinement of doubtful elements).
- ``sparse``: ``e_i`` for a seeded random sample of ``samples`` elements.

Both end with a joint test of tied elements found at kinks (see :func:`backcheck.strategies.ties.joint_kink_test`),
which catches a subgradient that is valid element by element but not as a whole (a max routed to every tied
element); elements at kinks whose analytic value lies outside their one-sided slopes, or flat along their own
axis where their value ties with others', are judged at a nearby point first (:mod:`backcheck.strategies.nearby`,
:func:`backcheck.strategies.ties.recheck_tied`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from backcheck.bits import dot
from backcheck.evaluate import Evaluator
from backcheck.judgement import judge
from backcheck.numeric.grad import noise_level
from backcheck.outputs import AGREEMENT_MOST, SPREAD_AGREEMENT
from backcheck.refinement import KINK_GAP
from backcheck.strategies.nearby import crowded_note, nearby_verdicts, recheck_nearby
from backcheck.strategies.own_rounding import native_jitter, within_own_rounding
from backcheck.strategies.ties import Alone, joint_kink_test, recheck_tied
from backcheck.verdict import (
    AMBIGUOUS,
    DEAD,
    FAILING,
    JUMP,
    KINK,
    MISMATCH,
    NOISY,
    OK,
    SAFETY,
    WIDE_AGREEMENT,
    Claim,
    FirstDifferences,
    Judgement,
    allowance,
    sees,
    vouched,
    wide_resolution,
)


@dataclass
class Outcome:
    """Per-element results of a strategy, aligned with ``checked`` (flat indices)."""

    checked: np.ndarray
    numeric: np.ndarray
    bound: np.ndarray
    status: np.ndarray
    notes: list[str]
    failed_leaves: dict[str, str]
    #: arrays the strategy could not vouch for as a whole (e.g. random directions too coarse to see errors
    #: that matter), with the reason
    inconclusive_leaves: dict[str, str] = field(default_factory=dict)
    #: per element, the bound its pass vouches for when that is tighter than ``bound`` (a low-precision
    #: gradient whose formula a float64 run of the same backward pass verified); None: ``bound``
    vouch_bound: np.ndarray | None = None
    #: per array checked by random directions: the RMS error (relative to its gradient) they would have caught
    floors: dict[str, float] = field(default_factory=dict)
    #: per element that passed, the smallest error in it that would certainly have failed (see run.py); None:
    #: ``bound`` plus the element's own difference
    reach: np.ndarray | None = None
    #: per element, whether its bound comes from a Richardson table (``floor=``, a float32 kernel) or holds the
    #: gradient's measured rounding (own_rounding.py): an error beyond it fails there, with no refinement at half
    #: the step left to loosen it (see run._reach)
    sharp: np.ndarray | None = None


#: Why an array fails whose random directions disagree while no element checked one by one is wrong (its end:
#: the strategy writes how many directions disagree before it); :data:`SPREAD_FOUND` once refining finds some.
SPREAD_THIN = (
    ", but no single element is wrong beyond its own bound: the error is spread thinly over many elements (for "
    "example a small constant factor)."
)
SPREAD_FOUND = (
    "; elements checked one by one were judged again more finely (on a Richardson table), and those listed are wrong."
)


def _listed(ev: Evaluator, idx: np.ndarray, ks: np.ndarray, by: np.ndarray | None = None) -> str:
    """The first three of elements ``idx[ks]`` by name (each with ``by``, how far f jumped there), and how many
    more."""
    shown = ", ".join(ev.tree.element_name(int(idx[k])) + ("" if by is None else f" (by {by[k]:.3g})") for k in ks[:3])
    return shown + (f" and {ks.size - 3} more" if ks.size > 3 else "")


def run(
    ev: Evaluator, claim: Claim, idx: np.ndarray, rng: np.random.Generator | None = None, kinks_beside: bool = False
) -> Outcome:
    """Difference along ``e_i`` for every ``i`` in ``idx`` and judge each element.

    ``claim.regrad()`` recomputes the analytic gradient at the evaluator's current point; it lets elements at
    points where several kinks meet be re-checked at a nearby differentiable point (with ``rng``).
    ``kinks_beside``: the point has kinks outside ``idx`` (elements judged alone by group testing, in an array
    whose elements sit at zeros or ties), so that mismatches are re-checked for kinks cancelling along their axis
    as where ``idx`` holds kinks itself.
    ``claim.g_wide`` is the same backward pass run in float64, for a low-precision gradient checked against
    float64 numerics (see :func:`split_formula_from_rounding`).
    """
    g, steps, grad_eps, rms, tol = claim.g, claim.steps, claim.grad_eps, claim.rms, claim.tol
    first = FirstDifferences(*ev.first_differences(idx, steps))
    a = g[idx]
    size = rms[idx] if claim.typical is None else claim.typical[idx]  # the tensor's own size, not an outlier's
    res = allowance(a, first.central, grad_eps[idx], rms[idx], size)
    j = judge(ev, idx, a, steps[idx], first, res, tol, None if claim.typical is None else claim.typical[idx])
    notes, own = within_own_rounding(ev, idx, j, claim)
    labels = set(j.status.tolist())  # (a verdict absent needs no mask)
    tied = idx[:0]
    if MISMATCH in labels:  # (a median of equal values: flat along one alone)
        said, tied = recheck_tied(ev, idx, j, claim, rng or np.random.default_rng(0))
        notes.extend(said)
        labels = set(j.status.tolist())
    if AMBIGUOUS in labels:
        ambiguous = np.flatnonzero(j.status == AMBIGUOUS)
        said, rescued = recheck_nearby(ev, idx, ambiguous, j, claim, rng or np.random.default_rng(0))
        notes.extend(said)
        tied = np.union1d(tied, rescued)
        labels = set(j.status.tolist())
    if (MISMATCH in labels or DEAD in labels) and (KINK in labels or kinks_beside) and claim.regrad is not None:
        said, rescued = cancelling_kinks(ev, idx, j, claim, rng or np.random.default_rng(0))
        notes.extend(said)
        tied = np.union1d(tied, rescued)
        labels = set(j.status.tolist())
    hidden = _hidden_kinks(ev, idx, first, j, a)
    hidden[own] = False  # (they passed by a bound that holds their rounding, at finer steps than the first)
    kinks = np.flatnonzero((j.status == KINK) | hidden if KINK in labels else hidden)
    if ev.one_sided:  # on the edge of the domain: no joint move stays inside it
        kinks = kinks[~np.isin(idx[kinks], list(ev.one_sided))]
    if kinks.size >= 2 or tied.size:
        # every kink whose value ties with others' moves with its whole tie too: overlapping windows of a max pool
        # give tied maxima unequal jumps, and a gradient routed to each of them shows only as the tie's sum
        # (a hidden kink of a float32 computation is as often its rounding: a layer norm at 1e4 + 0.01 N, whose
        # float32-equal values are no tie of the function; only a float64 one's moves with its tie)
        wide = max(ev.out_eps, float(np.max(claim.grad_eps[idx], initial=0.0))) < WIDE_EPS
        tied = np.union1d(tied, idx[kinks if wide else kinks[j.status[kinks] == KINK]])
        alone = _alone(idx, j, claim, (tied, kinks))
        bad = joint_kink_test(ev, idx[kinks], j.jump[kinks], claim, tied, alone)
        if bad is not None:
            notes.append(_jointly_wrong(idx, j, bad, alone.kinks))
    # (the joint test above turns elements into mismatches only: no 'noisy' or 'jump' appears)
    coarse = idx[:0]
    if NOISY in labels:
        coarse = np.flatnonzero((j.status == NOISY) & ~np.isfinite(j.bound) & (j.numeric == 0))
    if coarse.size:
        notes.append(
            f"f stood exactly still at every step tried along {_listed(ev, idx, coarse)}, but wider steps move it: "
            "its value changes there only in coarse steps (a rounding or threshold of the input, or a value computed "
            "with cancellation, like 1 + erf(x) far in its tail), so no difference this fine can judge the rule; "
            "these elements are inconclusive (where f stands still and the rule claims a change f would show, a "
            "'locally constant' finding fails the check)."
        )
    jumps = np.flatnonzero(j.status == JUMP) if JUMP in labels else idx[:0]
    if jumps.size:
        notes.append(
            f"f jumps at {_listed(ev, idx, jumps, j.jump)}: it is discontinuous there (a step, a sign, a tie where "
            "it jumps), so no derivative exists to compare with; these elements are inconclusive whatever the rule "
            "claims."
        )
    wider = np.flatnonzero(np.isin(idx, list(ev.wider))) if ev.wider else idx[:0]
    if wider.size:
        notes.append(
            f"{_listed(ev, idx, wider)} {'was' if wider.size == 1 else 'were'} judged at a wider step than "
            f"{'its' if wider.size == 1 else 'their'} own: there f moved by a few units of its rounding only, in "
            "steps no narrower difference resolves (the rounding of an intermediate, as 1 + tanh(u) far in a GELU's "
            "tail, or of a value rounded inside, as an input cast to float16, are such); the verdicts state the "
            "wider step's bound."
        )
    if claim.g_wide is not None:
        notes.extend(split_formula_from_rounding(ev, idx, j, claim, first, res))
    # with a float64 run of the backward pass, the formula check above sees a scale error element by element
    failed, unsure = ({}, {}) if claim.g_wide is not None else systematic_scale_test(ev, idx, a, j, claim, first)
    outcome = Outcome(idx, j.numeric, j.bound, j.status, notes, failed, unsure, vouch_bound=j.vouch)
    if own.size:
        outcome.sharp = np.isin(np.arange(idx.size), own)
    return outcome


def _alone(idx: np.ndarray, j: Judgement, claim: Claim, at: tuple[np.ndarray, np.ndarray]) -> Alone:
    """What the elements judged here said of themselves along their own axis, for the joint test of ties (``at``:
    the flat positions taken as kinks for their ties, and the positions in ``idx`` of the kinks)."""
    tied, kinks = at
    smooth = ~np.isin(idx, tied) & ~np.isin(np.arange(idx.size), kinks)
    ref = claim.rms[idx] if claim.typical is None else claim.typical[idx]
    fine = np.flatnonzero(smooth & (j.status == OK) & vouched(claim.g[idx], j.numeric, j.bound, ref))
    wrong = idx[smooth & np.isin(j.status, (MISMATCH, DEAD))]
    return Alone(wrong, {int(idx[k]): float(j.bound[k]) for k in fine}, np.union1d(tied, idx[kinks]), idx)


def _jointly_wrong(idx: np.ndarray, j: Judgement, bad: dict[int, tuple[float, float]], kinks: np.ndarray) -> str:
    """Mark the elements the joint test blamed as mismatches, each shown with what the joint move says of it (its
    claim less its share of the tie's excess, and its share of the move's slack), and the note saying so."""
    blamed = np.flatnonzero(np.isin(idx, list(bad)))
    unsure = blamed[~np.isin(idx[blamed], kinks)]  # (undecided alone: their bound was too coarse to vouch)
    j.status[blamed] = MISMATCH
    for k in blamed:
        numeric, bound = bad[int(idx[k])]
        if math.isfinite(numeric) and math.isfinite(bound):
            j.numeric[k], j.bound[k] = numeric, bound
    said = (
        f"{blamed.size - unsure.size} element(s) at kinks (tied, or meeting at the point) are each a valid one-sided "
        "slope, but not jointly: moving them together changes the output by a different amount than their gradients "
        "sum to (for example a max whose gradient is routed to every tied element, or hinges at 0 sharing an element)"
    )
    if unsure.size:
        said = (
            f"{unsure.size} element(s) undecided alone share their value with a tie whose kinks, moved together, "
            "agree with their gradients, while the tie moved with them does not: the difference is theirs"
        ) + ("; " + said if unsure.size < blamed.size else "")
    return said + (
        "; each is shown with its gradient less an equal share of that difference, and an equal share of the "
        "joint move's bound."
    )


def split_formula_from_rounding(
    ev: Evaluator, idx: np.ndarray, j: Judgement, claim: Claim, first: FirstDifferences, res: np.ndarray
) -> list[str]:
    """Judge a low-precision gradient's formula at float64 precision, and its rounding on its own.

    The error of a float32 gradient is (its rounding: ``g32 - g64``) plus (the formula's error: ``g64 -
    numeric``). The second is judged nearly as tightly as a float64 check would: a wrong epsilon or a missing
    term below float32's resolution still fails (a few units of the native epsilon of each element are granted
    to the float64 run: float32 constants inside it keep their rounding, see :func:`verdict.wide_resolution`).
    The first is not a bug: where the float32 value is off but the float64 run of the same backward pass
    matches, the element passes with a note.
    """
    notes = []
    assert claim.g_wide is not None
    a64 = claim.g_wide[idx]
    res64 = wide_resolution(a64, j.numeric, claim.grad_eps[idx], claim.rms[idx])
    judged = np.isin(j.status, (OK, MISMATCH, DEAD))
    bound64 = np.maximum(j.bound - SAFETY * res, 0.0) + SAFETY * res64
    suspect = np.flatnonzero(judged & (j.status == OK) & (np.abs(a64 - j.numeric) > bound64))
    if suspect.size:
        typical = None if claim.typical is None else claim.typical[idx[suspect]]  # (tiny elements' safeguards)
        again = judge(
            ev,
            idx[suspect],
            a64[suspect],
            claim.steps[idx[suspect]],
            first.take(suspect),
            res64[suspect],
            claim.tol,
            typical,
        )
        wrong = suspect[np.isin(again.status, FAILING)]
        if wrong.size:
            j.status[wrong] = MISMATCH
            j.bound[wrong] = again.bound[np.isin(again.status, FAILING)]
            notes.append(
                f"{wrong.size} element(s) are within the {_eps_name(claim.grad_eps[idx[wrong[0]]])} resolution but "
                "wrong in the float64 run of the same backward pass: the formula is wrong, by less than that dtype can "
                "show element by element (or the backward is exact only where the forward's iterative solve has "
                "converged, and it was stopped at a tolerance)."
            )
    rounding = plausible_rounding(claim, idx, a64, ev)
    _vouch_through_wide(j, claim, idx, a64, bound64, rounding)
    excused = np.flatnonzero(np.isin(j.status, FAILING) & (np.abs(a64 - j.numeric) <= j.bound) & rounding)
    if excused.size:
        j.status[excused] = OK
        shown = ", ".join(
            f"{ev.tree.element_name(int(idx[k]))} (gradient {j.numeric[k] + 0:.3g} numerically; float64 run "
            f"{a64[k]:.3g})"
            for k in excused[:3]
        )
        more = f" and {excused.size - 3} more" if excused.size > 3 else ""
        notes.append(
            f"{excused.size} element(s) are off only through rounding in the gradient's own dtype: the same "
            f"backward pass in float64 matches the numeric derivative: {shown}{more}."
        )
        # their bound shown: the formula's, plus the rounding measured between the two runs
        j.bound[excused] = bound64[excused] + np.abs(claim.g[idx[excused]] - a64[excused])
    # what is vouched for is the formula, to the float64 bound, wherever the float64 run met it; the bound
    # stated for the element's own value is that and its measured rounding, where tighter than the modelled one
    j.vouch = j.bound.copy()
    formula = (j.status == OK) & (np.abs(a64 - j.numeric) <= bound64) & rounding
    j.vouch[formula] = bound64[formula]
    measured = bound64 + np.abs(claim.g[idx] - a64)
    j.bound[formula] = np.minimum(j.bound[formula], measured[formula])
    return notes


def _eps_name(eps: float) -> str:
    """The dtype whose machine epsilon ``eps`` is (bfloat16's is 2**-7)."""
    for name, e in (("float16", 2.0**-10), ("bfloat16", 2.0**-7), ("float32", 2.0**-23), ("float64", 2.0**-52)):
        if eps == e:
            return name
    return f"gradient dtype's (eps {eps:.2g})"


def plausible_rounding(claim: Claim, idx: np.ndarray, a64: np.ndarray, ev: Evaluator | None = None) -> np.ndarray:
    """Per element, whether the native gradient's gap from its float64 run can be rounding in the native dtype:
    within ``AGREEMENT_MOST`` of the element's size or its tensor's typical one, the most a function run at
    another precision may differ by (:func:`backcheck.outputs.same_function_tolerance`; rounding of terms that
    cancelled, 8 sqrt(eps) from terms of size 1, reaches thousands of float32 epsilons of the gradient), or a few
    epsilons of unit-sized intermediates (a saturated sigmoid's ``1 - s`` is 0 in float32). A backward that takes
    another path for its own dtype (a float32 kernel off by 0.3) differs by far more, and is judged at its own
    dtype's resolution. With ``ev``, a gap beyond that is still rounding when within :data:`SPREAD_AGREEMENT`
    times the native gradient's own movement a few units in the last place away (:func:`native_jitter`)."""
    ref = claim.rms[idx] if claim.typical is None else claim.typical[idx]
    allowed = np.maximum(AGREEMENT_MOST * np.maximum(np.abs(a64), ref), WIDE_AGREEMENT * claim.grad_eps[idx])
    gap = np.abs(claim.g[idx] - a64)
    out = gap <= allowed
    if ev is not None and not out.all() and claim.regrad is not None:
        # beyond the modelled rounding: within the native run's own, measured (a float32 batch norm at a mean of
        # 1e3 and a spread of 0.3 rounds its centring by 2e-4 of itself, and its gradient by percents)
        far = np.flatnonzero(~out)
        out[far] = gap[far] <= SPREAD_AGREEMENT * native_jitter(ev, claim, idx[far])
    return out


def _vouch_through_wide(
    j: Judgement, claim: Claim, idx: np.ndarray, a64: np.ndarray, bound64: np.ndarray, plausible: np.ndarray
) -> None:
    """Elements left unvouched only by their dtype's modelled resolution (a bfloat16 gradient is granted 16
    epsilons, 12%): where the float64 run meets the numeric derivative within its own bound, the formula is
    vouched to that bound and the native value's rounding is measured (``|g - g_wide|``, where ``plausible`` as
    rounding), not modelled; the element passes when the two together could have seen an error that matters."""
    if NOISY not in set(j.status.tolist()):
        return
    rounding = np.abs(claim.g[idx] - a64)
    ref = claim.rms[idx] if claim.typical is None else claim.typical[idx]
    size = np.maximum(np.maximum(np.abs(a64), np.abs(j.numeric)), ref)
    met = (j.status == NOISY) & np.isfinite(j.bound) & (np.abs(a64 - j.numeric) <= bound64) & plausible
    rescued = np.flatnonzero(met & sees(bound64 + rounding, size))
    j.status[rescued] = OK
    j.bound[rescued] = bound64[rescued] + rounding[rescued]


#: Machine epsilons of the analytic dtype a uniform relative scale error must exceed to be called a bug.
SCALE_RESOLUTION = 32.0


def systematic_scale_test(
    ev: Evaluator, idx: np.ndarray, a: np.ndarray, j: Judgement, claim: Claim, first: FirstDifferences
) -> tuple[dict[str, str], dict[str, str]]:
    """Find arrays whose gradient is uniformly scaled by ``1 + r``, too little for any single element to show.

    Rounding errors of a low-precision gradient scatter around zero; a missing or extra constant factor does
    not. Fitting ``a - n = r n`` over all elements of an array averages the scatter down by the square root
    of their number. Used only where the numeric side is far more precise than the analytic gradient (a
    float32 gradient checked against float64 numerics). A fit beyond its resolution is confirmed on the
    largest elements at half the step, Richardson-extrapolated: the numeric side's own truncation bias then
    vanishes and elements next to a kink stand out (the median ignores them), while a real factor stays.
    Returns ``({array: explanation}, {array: why undecided})``.
    """
    n, status, grad_eps = j.numeric, j.status, claim.grad_eps
    out_eps = ev.out_eps
    smooth = _one_slope(ev, first)
    failed: dict[str, str] = {}
    unsure: dict[str, str] = {}
    which = None
    for k, leaf in enumerate(ev.tree.leaves):
        if leaf.size < 4 or grad_eps[leaf.offset] < 1e3 * out_eps:
            continue  # (too few elements to fit, or a gradient as precise as the numerics)
        if which is None:
            which = np.searchsorted(ev.tree.offsets, idx, side="right") - 1
        sel = (which == k) & (status == OK) & smooth
        if sel.sum() < 4:
            continue
        r, threshold = _scale_fit(a[sel], n[sel], j.bound[sel] / SAFETY, float(grad_eps[leaf.offset]))
        if abs(r) <= threshold:
            continue
        confirmed = _confirm_scale(ev, idx[sel], a[sel], first.central[sel], claim, threshold)
        if confirmed is None:
            unsure[leaf.name] = (
                f"a fit over {leaf.name} shows a uniform scale of 1 {'+' if r > 0 else '-'} {abs(r):.2g}, but at half "
                "the step it cannot be told from the finite differences' own truncation or a kink inside the step."
            )
        elif confirmed:
            failed[leaf.name] = (
                f"the gradient of {leaf.name} is uniformly scaled by 1 {'+' if r > 0 else '-'} {abs(r):.2g} "
                f"(a fit over {int(sel.sum())} elements; {threshold:.2g} is the resolution; confirmed at half the "
                "step): every element is within its own bound, but together they show a missing or extra "
                "constant factor."
            )
    return failed, unsure


def _one_slope(ev: Evaluator, first: FirstDifferences) -> np.ndarray:
    """Per element, whether its forward and backward slopes agree within half its central difference: one
    derivative to fit a scale to. At a kink (a ReLU's input at 0, its slopes d and 0) the central difference is
    their mean, which a right subgradient need not be; an element there whose difference lies within its bound
    passed, and a fit over such elements found a 'uniform scale' of 0 in a right gradient."""
    with np.errstate(all="ignore"):
        forward = (first.plus - ev.phi0) / first.disp_plus
        backward = (ev.phi0 - first.minus) / -first.disp_minus
        return np.abs(forward - backward) <= 0.5 * np.abs(first.central)


def _scale_fit(a: np.ndarray, n: np.ndarray, sigma: np.ndarray, eps: float) -> tuple[float, float]:
    """The least-squares ``r`` of ``a - n = r n`` and the size it must exceed to be told from rounding."""
    denom = dot(n, n)
    if denom == 0.0:
        return 0.0, np.inf
    r = dot(a - n, n) / denom
    sigma_r = math.sqrt(dot(sigma * n, sigma * n)) / denom
    return r, max(SAFETY * sigma_r, SCALE_RESOLUTION * eps)


#: Elements the confirmation of a scale error differences again at half the step (the largest ones).
SCALE_CONFIRM = 64


def _confirm_scale(
    ev: Evaluator, idx: np.ndarray, a: np.ndarray, n_h: np.ndarray, claim: Claim, threshold: float
) -> bool | None:
    """Whether a scale error survives Richardson extrapolation on the largest elements; None if undecidable."""
    take = np.argsort(-np.abs(n_h))[:SCALE_CONFIRM]
    half = claim.steps / 2
    first = FirstDifferences(*ev.first_differences(idx[take], half))
    n_r = (4 * first.central - n_h[take]) / 3
    ratios = (a[take] - n_r) / np.where(n_r != 0, n_r, np.inf)
    r_fit, _ = _scale_fit(a[take], n_r, np.zeros(take.size), 0.0)
    r_med = float(np.median(ratios))
    same = np.sign(r_fit) == np.sign(r_med)
    if abs(r_fit) > threshold and abs(r_med) > threshold and same:
        return True
    if abs(r_fit) <= threshold / 2 or abs(r_med) <= threshold / 2:
        return False  # the fit was the step's truncation, or a few elements next to a kink
    return None


def cancelling_kinks(
    ev: Evaluator, idx: np.ndarray, j: Judgement, claim: Claim, rng: np.random.Generator
) -> tuple[list[str], np.ndarray]:
    """A few mismatches where f is differentiable along the element's own axis, in a check with kinks: two kinks
    of opposite signs that cancel along that axis (integer data: c relu(a t) - c relu(-a t), a line) leave f
    differentiable there, and a ReLU's slope of 0 at each is a valid chain-rule subgradient still, whose value is
    not that derivative. Right at nearby points on opposite sides (a rule whose own mask turns at the point, as
    ``x >= -1`` at an integer -1, is right on one side only) and among the gradients around the point, they are
    kinks (and their ties move as a whole); otherwise they stay mismatches. With the notes, the flat positions
    taken."""
    wrong = np.flatnonzero((j.status == MISMATCH) | (j.status == DEAD))  # (a claim of 0: relu'(0) in every unit)
    if not wrong.size:
        return [], idx[:0]
    # a rule wrong everywhere is wrong at a nearby point too: a sample tells it, and only where every one of the
    # sample is fine are the others tried (a sort of 2000 float32 values rounded to 0.1, whose ties' end slopes
    # agree within float32's rounding, had 143 such elements, and was failed untried beyond 64)
    first = wrong if wrong.size <= LONE_MISMATCHES else np.sort(rng.choice(wrong, LONE_MISMATCHES, replace=False))
    j.hull[wrong, 0] = j.hull[wrong, 1] = j.numeric[wrong]
    found = nearby_verdicts(ev, idx, first, j, claim, rng)
    if found is not None and first.size < wrong.size and (found[0] & ~found[1] | found[2]).all():
        rest = np.setdiff1d(wrong, first)
        more = nearby_verdicts(ev, idx, rest, j, claim, rng)
        order = np.argsort(np.r_[first, rest])
        found = None if more is None else tuple(np.r_[a, b][order] for a, b in zip(found, more, strict=True))
        first = wrong
    if found is None:
        return [], idx[:0]
    wrong = first
    fine, poles, unsure = found
    j.status[wrong[unsure]], j.bound[wrong[unsure]] = NOISY, np.inf
    said = crowded_note(int(unsure.sum()))
    kinks = wrong[fine & ~poles]
    if not kinks.size:
        return said, idx[:0]
    j.status[kinks] = KINK
    return said + [
        f"{kinks.size} element(s) differ from the derivative along their own axis, where kinks of both signs meet "
        "and cancel along it; their analytic values lie among the gradients around the point, and the backward "
        "pass is right at nearby differentiable points on opposite sides: taken as kinks (valid subgradients, as a "
        "ReLU's 0 is)."
    ], idx[kinks]


#: The rounding (relative) below which a computation is float64's: its hidden kinks are the function's own.
WIDE_EPS = 1e-12
#: At most this many mismatches of a check with kinks are re-checked first for kinks cancelling along their axis
#: (each costs two evaluations at a nearby point; a rule wrong everywhere is wrong there too, and stays a
#: mismatch); the others only where every one of these is fine.
LONE_MISMATCHES = 64


def _hidden_kinks(ev: Evaluator, idx: np.ndarray, first: FirstDifferences, j: Judgement, a: np.ndarray) -> np.ndarray:
    """Elements the screen cleared although they sit at a kink: their analytic value is the central difference.
    (An element that passed only at finer steps, where f bends below the first step, is no such element.)

    At a tie of three maxima, a backward that gives each tied element half the gradient matches the central
    difference (the mean of the one-sided slopes) of every element, so no element is refined; yet the three
    together get 1.5 times the gradient. Their one-sided slopes, free from the first differences, still show
    the kink; their jump is recorded so that the tie test groups them.
    """
    back = -first.disp_minus
    fwd = (first.plus - ev.phi0) / first.disp_plus
    bwd = (ev.phi0 - first.minus) / back
    gap = fwd - bwd
    size = np.abs(gap)
    hidden = size > KINK_GAP * np.maximum(np.abs(fwd), np.abs(bwd))
    if not hidden.any():
        return hidden  # (slopes that agree as a smooth function's do: no rounding to weigh the gap against)
    noise = 2 * noise_level(ev, ev.local_scale[idx], lazy=True) / np.minimum(first.disp_plus, back)
    hidden &= size > SAFETY * noise
    if hidden.any():  # (most checks have none: no status compared, no jump written)
        hidden &= (j.status == OK) & (np.abs(a - first.central) <= j.bound)
        j.jump[hidden] = gap[hidden]
    return hidden
