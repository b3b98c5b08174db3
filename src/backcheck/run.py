"""The one place that orchestrates a check: ``run(contract, options) -> Report``.

1. Build the :class:`~backcheck.evaluate.Evaluator` with the backend the options ask for (serial, vectorized,
   executor), unless the frontend brought its own.
2. The baseline: the function at the original point, twice. A random function is retried with its random
   streams replayed (``random='auto'``), or refused (``'error'``).
3. The analytic side, once: the contract's sections (reverse mode, and forward mode where a framework has it).
4. Per section, the strategy picks directions, the verdict module judges what they measure, and the results
   become one :class:`~backcheck.report.Report` in the user's names.

The user's arrays are restored whatever happens.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from backcheck.backends import Backend
from backcheck.bits import machine_eps
from backcheck.contract import Analytic, Contract, Section
from backcheck.errors import BackcheckError, BadInputError, NondeterministicError, NonFiniteError
from backcheck.evaluate import Evaluator
from backcheck.extended import excuse_measured, excuse_rounding
from backcheck.findings import UNREAD_ULPS, masked_gradient, mutation_finding, unread_findings
from backcheck.judgement import CONFIRMED_WRONG
from backcheck.mixing import unmix, worst_term_floor
from backcheck.numeric.grad import noise_level, roundoff
from backcheck.numeric.noise import estimate_noise
from backcheck.numeric.steps import default_steps, native_spacing
from backcheck.options import Options, seed_int
from backcheck.progress import Progress
from backcheck.refinement import NEAR_FLOOR
from backcheck.report import Curve, Finding, LeafReport, Report, summarize
from backcheck.rounding import hidden_window, rounds_finely
from backcheck.strategies import defers_repeat, resolve, run_strategy
from backcheck.strategies.elementwise import Outcome
from backcheck.strategies.elementwise import run as run_elementwise
from backcheck.strategies.sharp import MARGINAL, coarse_inside, sharpen, sharpen_low_precision
from backcheck.strategies.wording import UNMET, detect_unmet
from backcheck.tree import Tree
from backcheck.verdict import FAILING, NOISY, OK, Claim, Tolerance, bound, typical_size
from backcheck.vouching import blind_cause, value_gradient, vouch, within_rounding

#: Steps tried for a V curve, as powers of two of the chosen step.
CURVE_POWERS = range(-16, 6)


def run(contract: Contract, options: Options) -> Report:
    """Check ``contract`` as ``options`` say; the only orchestration of a check."""
    started = time.perf_counter()
    notes: list[str] = []
    # probing a function near the edges of float64 (1e300, 1e-300, masks) overflows and underflows on purpose:
    # the bounds account for it, and numpy's warnings would only alarm; they stay inside the check
    with np.errstate(all="ignore"):
        return _run(contract, options, started, notes)


def _run(contract: Contract, options: Options, started: float, notes: list[str]) -> Report:
    if options.random == "freeze" and contract.replay is not None:
        contract, note = contract.replay()
        notes.append(note)
    try:
        report, analytic = _attempt(contract, options, notes)
    except NondeterministicError:
        # the baseline's two calls agreed by chance (a function with few random bits) and a later call at the
        # point told it: replay its random streams, as the baseline would have
        if options.random != "auto" or contract.replay is None or contract.evaluator is not None:
            raise
        contract, note = contract.replay()
        notes.append(note)
        report, analytic = _attempt(contract, options, notes)
    notes = [*notes, *report.notes, *contract.notes, *analytic.notes]
    report.notes, report.seconds = list(dict.fromkeys(notes)), time.perf_counter() - started  # (a report of its own)
    report.notes.extend(_slow_note(report, options))
    for lf in report.leaves:
        base = lf.name.split(":", 1)[-1]
        if base in contract.dtype_labels:
            lf.dtype = contract.dtype_labels[base]
    return report


def _slow_note(report: Report, options: Options) -> list[str]:
    """A note for a slow element-by-element check chosen by default (the function costs much per call): what
    strategy='auto' would vouch for in a few evaluations instead."""
    if options.strategy is not None or report.strategy != "full" or report.seconds < SLOW_CHECK:
        return []
    per_call = report.seconds / max(report.n_evals, 1)
    return [
        f"this check took {report.seconds:.0f} s ({report.n_evals} evaluations of about {per_call * 1e3:.2g} ms): "
        "below 4,096 elements every element is differenced by default; strategy='auto' checks along random "
        "directions first (a few dozen evaluations for a right gradient, the wrong elements found when one is not)."
    ]


#: A default element-by-element check slower than this (seconds) says what strategy='auto' would cost.
SLOW_CHECK = 20.0


def _attempt(contract: Contract, options: Options, notes: list[str]) -> tuple[Report, Analytic]:
    """Baseline, analytic side and judgement of one contract; the user's arrays restored whatever happens."""
    try:
        contract, ev = _baseline(contract, options, notes)
        analytic = contract.analytic()
        _masks_hold(ev, analytic, contract.fname)
        findings = [*contract.findings, *analytic.findings]
        with Progress(contract.fname, options.progress) as bar:
            ev.progress = bar
            if contract.prefetch is not None:
                said = contract.prefetch(ev, options)
                if said:
                    notes.append(said)
            report = _judge_sections(contract, ev, analytic, options, findings)
        # after judging: a function may start writing into its inputs at any evaluation
        if ev.mutated and contract.evaluator is None:  # a frontend's own evaluator reports its own set-up
            report.findings.insert(0, mutation_finding(contract.fname, ev.mutated))
        report.findings.extend(_unread(contract, ev, analytic, options))
        if not any(m is not None for m in ev.output.masks):  # (a masked output's own rule may give 0 * inf)
            report.findings.extend(masked_gradient(contract.fname, contract.tree, analytic.sections[0].g))
        notes.extend(ev.notes())
    finally:
        contract.tree.restore()
        if contract.point is not contract.tree:
            contract.point.restore()
    return report, analytic


def _masks_hold(ev: Evaluator, analytic: Analytic, fname: str) -> None:
    masks_hold(any(m is not None for m in ev.output.masks), analytic.sections[0].g, fname)


def masks_hold(masked: bool, g: np.ndarray, fname: str) -> None:
    """A typed error where the outputs hold infinite entries (``masked``) and the gradient ``g`` is not finite: a
    mask (-inf before a softmax) gets a dout of 0 and adds nothing to the gradient; an overflow or a log(0) does
    (0 * inf)."""
    if masked and not np.isfinite(g).all():
        raise NonFiniteError(
            f"{fname}'s outputs hold infinite entries at the original point and its gradient is not finite there: "
            "they are no mask (a masked_fill(-inf) adds nothing to the gradient) but an overflow or a log(0).",
            "check the inputs and the function for overflow or log(0); a mask's entries must not reach the gradient.",
        )


def _unread(contract: Contract, ev: Evaluator, analytic: Analytic, options: Options) -> list[Finding]:
    """Arrays the function never moved along, although their gradient says it should have (read a copy?)."""
    g, wide = analytic.sections[0].g, analytic.sections[0].g_wide
    if g.size != ev.tree.size or not ev.unmoved():
        return []
    if wide is not None and wide.shape == g.shape:  # a native gradient of pure rounding says nothing moves
        g = np.where(np.abs(wide) < np.abs(g), wide, g)
    eps, steps = ev.out_eps, default_steps(ev.tree, options.step, out_eps=ev.out_eps)
    # a change below the function's measured noise (a quantized loss) is no sign of an unread input; a value of 0 with
    # no outputs of any size is as often terms that cancelled (saturated tanh at +-1, a BCE's -z + z) as nothing
    size = max(abs(ev.phi0) or ev.scale or 1.0, noise_level(ev, lazy=True) / (UNREAD_ULPS * eps))
    unmoved = ev.unmoved()
    found = unread_findings(contract.fname, ev.tree, unmoved, g, steps, size, eps)
    if contract.kind == "check":
        _read_only_copied(contract.fname, ev.tree, found)
    return [_locally_constant(contract.fname, ev, unmoved, f) for f in found]


def _read_only_copied(fname: str, tree: Tree, found: list[Finding]) -> None:
    """A typed error where an array ``f`` never read is read-only, so that the check moved a private copy of it: a
    closure over the original (CS231n's ``lambda _: loss(W)``) never sees the moves, and a right gradient would
    fail; its argument alone carries them."""
    frozen = [
        leaf
        for leaf in tree.leaves
        if not leaf.in_place
        and isinstance(leaf.source, np.ndarray)
        and not leaf.source.flags.writeable
        and any(leaf.name in f.elements for f in found)
    ]
    if frozen:
        name = frozen[0].name
        raise BadInputError(
            f"{fname} did not change at all when {name} was perturbed, and {name} is read-only (np.load with "
            "mmap_mode='r', setflags(write=False), np.broadcast_to, a view of a jax array): the check moved a "
            f"private copy of it, which {fname} sees only as its argument; a closure over the original array never "
            "sees the moves.",
            "pass a writable array (np.array(W)) and let the closure read that one, or have f read its argument.",
        )


def _locally_constant(fname: str, ev: Evaluator, unmoved: list[int], found: Finding) -> Finding:
    """``found`` (an unread input), or, when a move of every element by about its own size changes ``f``, the
    finding that ``f`` reads the array but is locally constant there (a step, a rounding: a straight-through
    estimator's forward), whose derivative is 0 whatever a rule claims."""
    k = next(k for k in unmoved if ev.tree.leaves[k].name in found.elements)
    leaf = ev.tree.leaves[k]
    x = leaf.original.reshape(-1).astype(np.float64)
    signs = np.where(np.random.default_rng(0).random(leaf.size) < 0.5, -1.0, 1.0)
    coef = np.where(np.isfinite(x), np.maximum(np.abs(x), 1.0), 0.0) * signs
    # ... and a move of every element to minus itself: a threshold at 0 (a spike's Heaviside) lies between
    flip = np.where(np.isfinite(x), np.where(x != 0, -2.0 * x, coef), 0.0)
    moved = False
    for move, t in ((coef, 0.5), (flip, 1.0)):
        try:
            phi, _ = ev.direction(slice(leaf.offset, leaf.offset + leaf.size), move, (t,))
            moved = bool(phi[0] != ev.phi0)
        except BackcheckError:
            moved = True  # not finite there: it reads the array
        if moved:
            break
    if not moved:
        return found
    if rounds_finely(ev, leaf):
        return Finding(
            "rounded inside",
            f"{fname} rounds {leaf.name} inside to a grid far coarser than its dtype's and finer than a 32nd of its "
            "elements (a cast to bfloat16 or float16: stairs of 2**-8 or 2**-11 of each), and no step of the "
            "differences crossed one: they cannot judge the rule along it (no step function: no failing finding).",
            where=fname,
            elements=[leaf.name],
        )
    return Finding(
        "locally constant",
        f"{fname} reads {leaf.name} but is locally constant there: no step of the differences changed it, and a "
        f"move of every element by half its size (or to minus itself) does. It is piecewise constant at this point "
        "(a step, a threshold, a rounding), so its derivative is 0; a rule that returns anything else (a "
        "straight-through estimator, a surrogate gradient) is a chosen approximation, not the derivative, and its "
        "elements fail.",
        where=fname,
        elements=[leaf.name],
    )


def build_evaluator(contract: Contract, options: Options) -> Evaluator:
    """The evaluator of ``contract.call`` at ``contract.point``, with the backend ``options`` ask for."""
    if contract.evaluator is not None:
        return contract.evaluator
    backend = Backend(
        batch_call=contract.batch_call if options.vectorized else None,
        max_batch_bytes=options.max_batch_bytes,
        executor=options.executor,
        remote=(contract.remote, contract.point.fresh())
        if options.executor is not None and contract.remote is not None
        else None,
    )
    return Evaluator(contract.point, contract.call, contract.output, contract.fname, backend=backend)


def _baseline(contract: Contract, options: Options, notes: list[str]) -> tuple[Contract, Evaluator]:
    ev = build_evaluator(contract, options)
    if ev.ready:
        return contract, ev
    ev.n_evals += contract.evaluations
    repeat = not defers_repeat(options.strategy, ev.tree.size)
    try:
        ev.baseline(repeat, contract.at_point)
    except NondeterministicError:
        if options.random != "auto" or contract.replay is None:
            raise
        count, wrote = ev.n_evals, {leaf.name: idx for leaf, idx in ev.mutated}  # (at the first call only, maybe:
        contract, note = contract.replay()  # why the two calls differed; a write found stays found)
        notes.append(note)
        ev = build_evaluator(contract, options)
        ev.n_evals = count
        ev.baseline(repeat)
        seen = {lf.name for lf, _ in ev.mutated}
        ev.mutated += [(lf, wrote[lf.name]) for lf in ev.tree.leaves if lf.name in wrote.keys() - seen]
    return contract, ev


def check_finite(tree: Tree, g: np.ndarray, what: str) -> None:
    bad = np.flatnonzero(~np.isfinite(g))
    if bad.size:
        i = int(bad[0])
        raise NonFiniteError(
            f"the {what} is {g[i]} at {tree.element_name(i)} ({bad.size} non-finite element(s)).",
            "look for log(0), 0/0 or overflow in the backward pass.",
        )


def _prefixed(tree: Tree, prefix: str, root: str) -> Tree:
    return Tree({prefix + lf.name: lf.original.copy() for lf in tree.leaves}, root, in_place=False, bare_keys=True)


def _judge_sections(
    contract: Contract, ev: Evaluator, analytic: Analytic, options: Options, findings: list[Finding]
) -> Report:
    """Judge every section against the same numeric side and merge them into one report.

    The first section is reported under the leaves' own names; further sections (the forward-mode check)
    under prefixed names, e.g. ``jvp:x[3]``. An evaluator that remembers its points makes a further section
    cost evaluations only where its verdict needs refinement.
    """
    first, *rest = analytic.sections
    report = _judge(contract.tree, ev, first, options, analytic.skipped)  # a new report: filled in here
    report.title, report.kind, report.findings = contract.title, contract.kind, findings
    leaves, notes, curves = report.leaves, report.notes, report.curves
    for sec in rest:
        tree2 = _prefixed(contract.tree, sec.prefix, contract.root)
        ev2 = copy.copy(ev)  # shares the remembered points
        ev2.tree = tree2 if ev.tree is contract.tree else _prefixed(ev.tree, sec.prefix, contract.root)
        try:
            r2 = _judge(tree2, ev2, sec, options, {})
        finally:
            ev.n_evals, ev.scale = ev2.n_evals, max(ev.scale, ev2.scale)
        leaves.extend(r2.leaves)
        curves.extend(r2.curves)
        notes.extend(n for n in r2.notes if n not in notes)
    notes.extend(s.note for s in analytic.sections if s.note)
    report.n_evals = ev.n_evals
    return report


def _leaf_scales(tree: Tree, g: np.ndarray, grad_eps: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per element: the analytic dtype's machine epsilon, and the RMS of its tensor's gradient."""
    eps = tree.per_leaf([machine_eps(leaf.dtype) for leaf in tree.leaves]) if grad_eps is None else grad_eps
    overall = typical_size(g)
    typical = []
    for leaf in tree.leaves:
        size = overall if leaf.size == tree.size else typical_size(g[leaf.offset : leaf.offset + leaf.size])
        if leaf.size and eps[leaf.offset] > 1e-10:
            # a low-precision gradient's rounding follows the size of the whole computation: an array whose
            # true gradient is zero (a bias before a batch norm) still carries rounding of the others' size
            size = max(size, overall)
        typical.append(size)
    return eps, tree.per_leaf(typical)


def _judge(tree: Tree, ev: Evaluator, sec: Section, options: Options, skipped: Mapping[str, str]) -> Report:
    """Run the strategy over one section and build its report."""
    g = sec.g
    strategy = resolve(options.strategy, tree.size)
    steps = default_steps(ev.tree, options.step, out_eps=ev.out_eps)

    def probe() -> float:  # on first need only: after the point has been evaluated once more
        ev.recheck()
        return estimate_noise(ev, steps, seed_int(options.rng("noise")), np.where(np.isfinite(g), g, 0.0))

    ev.noise_probe = probe
    if ev.tree is not tree and ev.native is None and any(leaf.dtype != np.float64 for leaf in tree.leaves):
        ev.native = native_spacing(tree)  # (the numeric side on float64 copies: no finer step than the user's dtype)
    grad_eps, typical = _leaf_scales(tree, g, sec.grad_eps)
    # a layer's backward pass mixes its outputs' terms through dout: it cannot be trusted below their rounding
    # (a softmax's 1 - p where p rounds to 1), whatever the size of the element itself (see mixing.py)
    resolved = worst_term_floor(ev, typical)
    at = sec.at
    regrad = None if at is None else (lambda: at([lf.work for lf in ev.tree.leaves]))
    tol = Tolerance(options.atol, options.rtol)
    claim = Claim(g, steps, grad_eps, resolved, tol, regrad, sec.g_wide, typical=typical)
    outcome = run_strategy(
        ev,
        claim,
        strategy,
        options.samples,
        options.lazy_rng("strategy"),
        frozenset(skipped),
        (options.detect, options.confidence),
    )
    if outcome.checked.size:  # (elements judged one by one, whatever the strategy)
        unmix(ev, claim, outcome, options.lazy_rng("strategy"))
    if options.step is not None and not tol.custom:
        outcome.notes.extend(_beyond_user_step(ev, claim, outcome))
    if options.floor is not None:
        outcome.notes.extend(sharpen(ev, claim, outcome, options.floor))
    elif coarse_inside(ev) and not tol.custom:
        outcome.notes.extend(sharpen_low_precision(ev, claim, outcome, options.rng("sharp")))
    labels = set(outcome.status.tolist())  # the verdicts present (a mask for an absent one is never built)
    if not tol.custom and not labels.isdisjoint(FAILING):
        if sec.extended is not None:
            outcome.notes.extend(excuse_rounding(claim, outcome, sec.extended, tree.element_name))
        if sec.extended is None or sec.extended() is None:  # no wider run: the rounding measured instead
            outcome.notes.extend(excuse_measured(ev, claim, outcome, tree.element_name))
        labels = set(outcome.status.tolist())
    if not tol.custom and outcome.checked.size:
        _reach(ev, claim, outcome, options.floor, labels == {OK})
    still = lambda: within_rounding(ev, outcome.numeric, claim.steps[outcome.checked])  # noqa: E731 - on need
    cause = lambda: blind_cause(ev, float(np.max(grad_eps, initial=0.0)))  # noqa: E731 - on need
    vouch(tree, g, outcome, lambda: value_gradient(ev), (typical, still), labels, cause)
    if ev.unsettled:
        _inside_step(ev, tree, outcome)
    if ev.plain and not _confirmed_stand(ev, tree, outcome):
        # fewer mismatches judged in full stand in an array than those taken plainly leaned on (the others
        # excused since, by the rounding of the backward pass measured, a wider step): judged again, all in full
        for found in (ev.plain, ev.unsettled, ev.wider):
            found.clear()
        ev.confirm_all = True
        return _judge(tree, ev, sec, options, skipped)
    if ev.plain:
        _taken_plainly(ev, tree, outcome)
    _unsettled(tree, outcome)
    if ev.repeat_due and (outcome.failed_leaves or outcome.inconclusive_leaves or labels - {OK}):
        ev.recheck()  # a verdict but a pass: whether f is random is told first (the baseline deferred it)
    leaves = summarize(tree, g, outcome, dict(skipped))
    unmet = _detect_unmet(leaves, options.detect) if options.detect is not None and not tol.custom else {}
    if unmet:  # detect= asked for more than a pass vouches for: those arrays inconclusive, saying what it reached
        outcome.inconclusive_leaves.update(unmet)
        leaves = summarize(tree, g, outcome, dict(skipped))
    notes = list(outcome.notes)
    if ev.tree is not tree and ev.tree.leaves and ev.tree.leaves[0].dtype == np.float64 != tree.leaves[0].dtype:
        notes.append(
            "the numeric side was evaluated in float64 (the function accepts float64 inputs); the "
            "analytic gradient is judged at its own dtype's resolution."
        )
    if strategy == "sparse":
        notes.append(
            f"sparse check: {outcome.checked.size} of {tree.size} elements sampled (seed={options.seed_value})."
        )
    curves = [_step_curve(ev, tree, g, steps, lf) for lf in leaves if lf.worst] if options.curves else []
    return Report(
        title="",
        kind="",
        strategy=strategy,
        method="central",
        leaves=leaves,
        n_evals=ev.n_evals,
        seconds=0.0,
        findings=[],
        notes=notes,
        curves=curves,
        _numeric=functools.partial(_values_tree, tree, outcome.checked, outcome.numeric),
        _bound=functools.partial(_values_tree, tree, outcome.checked, outcome.bound),
        _status=functools.partial(_status_tree, tree, outcome.checked, outcome.status),
        _analytic=functools.partial(tree.fresh, g, np.float64, copy=False),
    )


def _reach(ev: Evaluator, claim: Claim, outcome: Outcome, floor: float | None, everywhere: bool) -> None:
    """Per element that passed, the smallest error in it that would certainly have failed: the floor a pass
    states. An error e moves the difference to ``numeric - analytic - e``; past the element's bound it sends the
    element on to refinement at half the step, which holds it to a bound of its own: the truncation change
    (about the element's own difference), twice the round-off (half the span) and the noise measured by then.
    With ``floor=``, every bound left wider than the floor is refined sharp: an error passes within the floor
    of the element's size at most. ``everywhere``: every element passed (no masks, no copies)."""
    ok: Any = slice(None) if everywhere else outcome.status == OK
    idx = outcome.checked[ok]
    a, n = claim.g[idx], outcome.numeric[ok]
    own = np.abs(n - a)
    if floor is None:
        beyond = outcome.bound[ok] + bound(own, roundoff(ev, claim.steps[idx], ev.local_scale[idx], lazy=True), 0.0)
        if outcome.sharp is not None:  # judged on a table: a mismatch within MARGINAL of its bound may stand
            table = outcome.sharp[ok]  # unconfirmed (sharp._unless_kinks_inside), beyond it it fails or is unsettled
            beyond = np.where(table, MARGINAL * outcome.bound[ok], beyond)
        if ev.wider:  # judged at a wider step, where an error would be judged too
            beyond = np.where(np.isin(idx, list(ev.wider)), outcome.bound[ok], beyond)
        if claim.typical is not None and not claim.tol.custom:  # an error a wider step may take for rounding
            beyond = np.maximum(beyond, hidden_window(ev, idx, 2 * claim.steps[idx], claim.typical[idx]))
    else:
        size = np.maximum(np.abs(a), np.abs(n))
        typical = claim.typical[idx] if claim.typical is not None else np.zeros(idx.size)
        beyond = np.maximum(outcome.bound[ok], floor * np.where(size > 0, size, typical))
    if everywhere:
        outcome.reach = beyond + own
        return
    reach = np.full(outcome.checked.size, np.nan)
    reach[ok] = beyond + own
    outcome.reach = reach


def _detect_unmet(leaves: list[LeafReport], detect: float) -> dict[str, str]:
    """Per passing array whose stated floor (relative to its gradient) is beyond ``detect=`` (within the slack
    :data:`UNMET` of an estimate), or that a sample of elements vouches for (no RMS size), why it is inconclusive:
    whatever path judged it (random directions, elements one by one, kinks set apart), pass means vouched."""
    return {
        lf.name: detect_unmet(detect, lf.floor_rel, lf.name, lf.floor_kind)
        for lf in leaves
        if lf.status == "pass" and (lf.floor_kind == "sample" or not lf.floor_rel <= UNMET * detect)
    }


#: A user step this many times the default one may lie beyond the scale on which f is smooth.
STEP_BEYOND = 4.0


def _beyond_user_step(ev: Evaluator, claim: Claim, outcome: Outcome) -> list[str]:
    """Elements that fail at the user's ``step=`` but pass at the default steps, where that step is far larger:
    inconclusive, in place (``sin`` differenced over 1e10 aliases to 0 at every halving, and agrees with
    itself). Their verdict belongs to the step asked for, not to the rule."""
    bad = np.flatnonzero(np.isin(outcome.status, FAILING))
    if not bad.size:
        return []
    idx = outcome.checked[bad]
    usual = default_steps(ev.tree, None, out_eps=ev.out_eps)
    far = claim.steps[idx] > STEP_BEYOND * usual[idx]
    if not far.any():
        return []
    again = run_elementwise(ev, dataclasses.replace(claim, steps=usual), idx[far])
    fine = bad[far][again.status == OK]
    if not fine.size:
        return []
    outcome.status[fine], outcome.bound[fine] = NOISY, np.inf
    return [
        f"{_listed(ev.tree, outcome.checked[fine])} fail at the step= given but agree at the default steps, which "
        "are smaller: the step given lies beyond the scale on which f is smooth there, so these elements are "
        "inconclusive (leave step= out, or pass a smaller one)."
    ]


def _inside_step(ev: Evaluator, tree: Tree, outcome: Outcome) -> None:
    """A note naming the elements left inconclusive at a kink that lies inside the step, not at the point
    (:func:`backcheck.judgement._unsettled`)."""
    noisy = outcome.status == NOISY
    inside = outcome.checked[noisy & np.isin(outcome.checked, list(ev.unsettled))]
    if inside.size:
        outcome.notes.append(
            f"{_listed(tree, inside)}: one-sided slopes that kept moving as the step halved, where finer steps "
            "found slopes that agree: the kink lies inside the step rather than at the point (f bends on a "
            "finer scale, or crosses a kink just off the point), and the finer steps could not vouch for a "
            "bound, so no subgradient is vouched for: inconclusive."
        )


def _confirmed_stand(ev: Evaluator, tree: Tree, outcome: Outcome) -> bool:
    """Whether every array with mismatches taken plainly still has :data:`~backcheck.judgement.CONFIRMED_WRONG`
    mismatches judged in full, once every excuse has been heard."""
    failing = outcome.checked[np.isin(outcome.status, FAILING)]
    plain = np.isin(failing, list(ev.plain))
    for leaf in tree.leaves:
        inside = (failing >= leaf.offset) & (failing < leaf.offset + leaf.size)
        if (inside & plain).any() and (inside & ~plain).sum() < CONFIRMED_WRONG:
            return False
    return True


def _taken_plainly(ev: Evaluator, tree: Tree, outcome: Outcome) -> None:
    """A note per array on the mismatches taken without the confirmation the first ones had
    (:data:`backcheck.judgement.CONFIRMED_WRONG`)."""
    near = [i for i, close in ev.plain.items() if close]
    plain = outcome.checked[np.isin(outcome.status, FAILING) & np.isin(outcome.checked, near)]
    for leaf in tree.leaves:
        here = plain[(plain >= leaf.offset) & (plain < leaf.offset + leaf.size)]
        if here.size:
            outcome.notes.append(
                f"{leaf.name}: {here.size} mismatch(es) less than {NEAR_FLOOR:.0f} times their bound "
                f"({_listed(tree, here)}) are taken from their refined differences alone, not confirmed by the noise "
                f"along them and by finer steps as {leaf.name}'s first {CONFIRMED_WRONG} were: {leaf.name} fails "
                "already, and a few of these may be a kink's or noise's."
            )


def _unsettled(tree: Tree, outcome: Outcome) -> None:
    """A reason for arrays with inconclusive elements that no other reason names: their refinement never settled
    (the estimates kept moving as the step shrank, or stayed within the noise), or no bound could be put on them
    at all (a vertical tangent, the edge of f's domain, a kink inside the step: each said in a note, and named
    here too, so that none goes unexplained)."""
    noisy = outcome.status == NOISY
    flat, finite = outcome.checked[noisy], np.isfinite(outcome.bound[noisy])
    for leaf in tree.leaves:
        inside = (flat >= leaf.offset) & (flat < leaf.offset + leaf.size)
        if not inside.any() or leaf.name in outcome.inconclusive_leaves:
            continue
        said = []
        if (inside & finite).any():
            here = flat[inside & finite]
            said.append(
                f"{here.size} element(s) of {leaf.name} ({_listed(tree, here)}) are inconclusive: their differences "
                "did not settle as the step shrank (f bends differently on the two sides of the point, is rough "
                "there, or moves within its noise), so no bound could be vouched for."
            )
        if (inside & ~finite).any():
            here = flat[inside & ~finite]
            said.append(
                f"{here.size} element(s) of {leaf.name} ({_listed(tree, here)}) are inconclusive with no bound at "
                "all: no difference there could judge the rule (the notes give the cause)."
            )
        outcome.inconclusive_leaves[leaf.name] = " ".join(said)


def _listed(tree: Tree, flat: np.ndarray) -> str:
    """The first three of the elements at flat positions ``flat`` by name, and how many more."""
    names = [tree.element_name(int(i)) for i in flat]
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _values_tree(tree: Tree, checked: np.ndarray, values: np.ndarray) -> object:
    """Per-element values (NaN where not checked) in the tree's structure."""
    flat = np.full(tree.size, np.nan)
    flat[checked] = values
    return tree.fresh(flat, np.float64, copy=False)


def _status_tree(tree: Tree, checked: np.ndarray, status: np.ndarray) -> object:
    """Per-element verdicts ('' where not checked) as string arrays in the tree's structure."""
    status_flat = np.full(tree.size, "", dtype="<U8")
    status_flat[checked] = status.astype("<U8") if checked.size else ""
    arrays = [status_flat[lf.offset : lf.offset + lf.size].reshape(lf.shape) for lf in tree.leaves]
    return tree._with(tree.structure, arrays)


def _step_curve(ev: Evaluator, tree: Tree, g: np.ndarray, steps: np.ndarray, leaf: LeafReport) -> Curve:
    """Estimates of the leaf's worst element at steps from ``h / 2**16`` to ``h * 2**5`` (44 evaluations)."""
    worst = leaf.worst[0]
    k = next(j for j, lf in enumerate(tree.leaves) if lf.name == leaf.name)
    i = tree.leaves[k].offset + (int(np.ravel_multi_index(worst.index, leaf.shape)) if leaf.shape else 0)
    h = float(steps[i])
    trial = [h * 2.0**e for e in CURVE_POWERS]
    estimates = []
    for s in trial:
        phis, disp = ev.element(i, (s, -s))
        estimates.append(float((phis[0] - phis[1]) / (disp[0] - disp[1])) if disp[0] != disp[1] else float("nan"))
    return Curve(worst.name, trial, estimates, float(g[i]), h)
