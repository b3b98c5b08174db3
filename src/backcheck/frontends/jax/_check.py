"""One check of a jax function, as a :class:`~backcheck.contract.Contract` for :func:`backcheck.run.run`.

The steps, each in its own module: :mod:`._inputs` (what is checked, the cotangent), :mod:`._trace` (the
compiled transformations), :mod:`._analytic` (jax.vjp / jax.jvp), :mod:`._numeric` (the finite
differences' dtype, point and steps). This module orders them, and says in the report what was left out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import backcheck.frontends.jax._numeric as num
from backcheck.bits import BFLOAT16_EPS, machine_eps
from backcheck.calls import call_user, function_name
from backcheck.contract import Analytic, Contract, Section
from backcheck.evaluate import Output
from backcheck.findings import error_notes, nonfinite_at_masks
from backcheck.frontends.common import (
    AUTO_MIN_ELEMENTS,
    JVP_PREFIX,
    LINEAR_PROBES,
    CachedEvaluator,
    linearity_finding,
    prefetch_first_differences,
    settle_linearity,
    wide_disagreement,
)
from backcheck.frontends.jax._analytic import Sides, sections_of
from backcheck.frontends.jax._inputs import Inputs, Outputs, mask_outputs, outputs, split_inputs
from backcheck.frontends.jax._trace import Runner
from backcheck.options import Options
from backcheck.outputs import computed_dtype
from backcheck.report import Finding, LeafReport, Report
from backcheck.run import masks_hold, run
from backcheck.strategies import defers_repeat, resolve
from backcheck.tree import Tree


@dataclass(frozen=True)
class Settings:
    """The jax-only options of :func:`backcheck.jax.check` (the core's are an :class:`Options`)."""

    dout: Any
    argnums: Any
    mode: str
    numeric_dtype: str
    vectorized: bool | str


def run_check(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], opt: Settings, options: Options
) -> Report:
    started = time.perf_counter()
    fname = function_name(fn)
    inputs = split_inputs(fn, args, kwargs, opt.argnums, fname)
    runner = Runner(fn, inputs.treedef, inputs.layout, inputs.statics, inputs.arrays, fname)
    if not inputs.diff:
        call_user(runner.apply_as_user, ([],), fname)
        return _trivial(fname, inputs, started)
    like = runner.structure(inputs.diff) if opt.dout is not None else None
    outs = outputs(runner.abstract(inputs.diff), opt.dout, options.rng("dout"), fname, like)
    runner.out_sel = outs.sel
    real, notes = num.choose_dtype(opt.numeric_dtype, inputs, runner, fname, outs)
    tree = num.tree_of(inputs, [num.held_as(dt) for dt in inputs.natives])
    point = tree if all(lf.dtype == real for lf in tree.leaves) else num.tree_of(inputs, [real] * len(tree.leaves))
    call = num.caller(runner, inputs, outs, point)
    notes = inputs.notes + notes + mask_outputs(outs, call_user(call, (point.current(),), fname), fname)
    bf16 = [n for n, dt in zip(inputs.names, inputs.natives, strict=True) if num.is_bfloat16(dt)]
    if bf16:
        notes.append(
            f"{', '.join(bf16)}: bfloat16, which numpy lacks, is held as float32 (exactly) for the report, and its "
            "gradient is judged at bfloat16's resolution (eps 2**-7)."
        )
    ev = CachedEvaluator(point, call, Output.cotangent(fname, outs.u, outs.names, outs.shapes, lambda o: o), fname)
    ev.baseline(not defers_repeat(options.strategy, point.size))
    notes += _prefetch(ev, runner, inputs, outs, opt, options)
    contract = Contract(
        title=fname,
        kind="jax",
        tree=tree,
        point=point,
        call=call,
        output=ev.output,
        analytic=_analytic(
            Sides(runner, inputs, outs, tree, fname), opt.mode, wide=point is not tree and real == np.float64
        ),
        fname=fname,
        evaluator=ev,
        notes=tuple(notes),
        dtype_labels=dict.fromkeys(bf16, "bfloat16"),
        root="args",
    )
    report = _finish(run(contract, options), inputs, [*ev.notes(), *runner.notes])
    settle_linearity(report, tree, fname)
    if options.atol is None and options.rtol is None:  # (with the user's own tolerance, no hint of one)
        report.notes.extend(error_notes(report, tree, fname))
    report.seconds = time.perf_counter() - started  # the whole check: the baseline and batched differences too
    return report


def _analytic(sides: Sides, mode: str, wide: bool = False) -> Callable[[], Analytic]:
    """The analytic side; ``wide``: the numeric side is float64 and wider than the gradient, so the reverse pass
    also runs in float64 to tell its rounding from a wrong formula (as the torch frontend does)."""

    def analytic() -> Analytic:
        said: list[str] = []

        def section(g: np.ndarray, at: Any, prefix: str, note: str) -> Section:
            eps, coarse = _grad_eps(sides.tree, sides.inputs, [] if prefix else sides.grad_dtypes)
            said.extend(n for n in coarse if n not in said)
            g_wide = _wide(sides, g, eps, said) if wide and not prefix and at == sides.reverse else None
            return Section(g, at, prefix, note, g_wide=g_wide, grad_eps=eps)

        sections, why = sections_of(sides, mode, section, JVP_PREFIX)
        masked_out = any(m is not None and m.any() for m in sides.outs.masks)
        masks_hold(masked_out, sections[0].g, sides.fname)
        found = _linearity(sides, sections[0]) if mode in ("rev", "both") and not sections[0].prefix else None
        findings = tuple(f for f in (found, sides.jvp_finding) if f is not None)
        if not masked_out:  # (a masked output's own rule may give 0 * inf: jnp.logaddexp(-inf, -inf))
            findings += tuple(nonfinite_at_masks(sides.fname, sides.tree, sides.masked_nonfinite))
        findings += tuple(_primal_findings(sides, mode))
        return Analytic(tuple(sections), findings, notes=(*why, *said))

    return analytic


#: A rule's forward value may differ from the function's by this many units of the outputs' dtype at their size
#: (the same computation traced otherwise: fused, reassociated).
PRIMAL_ULPS = 64


def _primal_findings(sides: Sides, mode: str) -> list[Finding]:
    """A failing finding where the outputs ``jax.vjp`` (a custom_vjp's fwd) or ``jax.jvp`` (a custom_jvp's rule)
    compute at the point differ from the function's own beyond rounding: under ``jax.value_and_grad`` the value is
    then the rule's and the gradient checked is of another function (fwd returning ``1.01 * sin(x)`` for ``sin``
    passed: the differences are of the function). None where jax cannot run them (the check says so elsewhere);
    one finding at most (jax.vjp of a custom_jvp runs its rule too)."""
    ways = [("rev", "jax.vjp (a custom_vjp's fwd, or a custom_jvp's rule)")]
    ways += [("fwd", "jax.jvp (a custom_jvp's rule)")] if mode != "rev" else []
    try:
        plain = sides.run.apply_eagerly(sides.inputs.diff)  # (as the rules' outputs are computed: eagerly)
    except Exception:  # noqa: BLE001 - (the numeric side reports a function that fails)
        return []
    for kind, which in ways:
        try:
            outs = sides.run.primals(sides.inputs.diff, kind)
        except Exception:  # noqa: BLE001 - (a transformation jax refuses: jvp of a custom_vjp; the sections say so)
            continue
        for name, mine, theirs in zip(sides.outs.names, plain, outs, strict=False):
            off, top = _primal_gap(np.asarray(mine), np.asarray(theirs))
            if off:
                return [
                    Finding(
                        "primal output",
                        f"the output {name} that {which} computes differs from {sides.fname}'s own at the point "
                        f"(by up to {off:.3g}, of values up to {top:.3g}): under jax.value_and_grad the value is the "
                        "rule's and the gradient is checked against another function; a rule's forward must return "
                        "the function's value.",
                        where=sides.fname,
                    )
                ]
    return []


def _primal_gap(mine: np.ndarray, theirs: np.ndarray) -> tuple[float, float]:
    """The largest difference of a rule's output ``theirs`` from the function's ``mine`` beyond
    :data:`PRIMAL_ULPS` units of ``theirs``'s dtype at the outputs' size (0 where none; equal infinities agree),
    and that size."""
    a, b = mine.astype(np.float64), theirs.astype(np.float64)
    top = float(np.max(np.abs(a[np.isfinite(a)]), initial=0.0))
    if a.shape != b.shape:
        return 0.0, top  # (another structure is the sections' to refuse)
    eps = float(np.finfo(theirs.dtype).eps) if theirs.dtype.kind == "f" else float(np.finfo(np.float64).eps)
    off = np.abs(a - b)
    with np.errstate(invalid="ignore"):
        bad = ~(off <= PRIMAL_ULPS * eps * top) & ~(np.isinf(a) & (a == b))
    return (float(np.max(off[bad])) if np.any(bad) else 0.0), top


def _linearity(sides: Sides, sec: Section) -> Finding | None:
    """A 'nonlinear backward' finding when the rule's gradient for a scaled cotangent, scaled back, is another
    (a rule that clips or normalizes its incoming gradient: jax's clip_gradient example)."""
    scaled = [(t, sides.reverse_scaled(t)) for t in LINEAR_PROBES]
    eps = sec.grad_eps
    if eps is None:
        eps = sides.tree.per_leaf([float(np.finfo(lf.dtype).eps) for lf in sides.tree.leaves])
    return linearity_finding(sides.fname, sides.tree, sec.g, scaled, eps)


def _wide(sides: Sides, g: np.ndarray, eps: np.ndarray | None, said: list[str]) -> np.ndarray | None:
    """The float64 run of the reverse pass where it stands in for the formula (see
    :func:`~backcheck.frontends.common.wide_disagreement`); else None, with a note saying why."""
    wide = sides.reverse_wide()
    if not isinstance(wide, np.ndarray):
        said.extend([wide] if wide else [])
        return None
    per = eps if eps is not None else sides.tree.per_leaf([float(np.finfo(lf.dtype).eps) for lf in sides.tree.leaves])
    if machine_eps(computed_dtype([wide], np.dtype(np.float64))) >= float(np.min(per)):
        return None  # every value float32-exact for a float32 gradient: a rule that casts itself, no wider run
    why = wide_disagreement(sides.tree, g, wide, per)
    if why:  # beyond the modelled rounding: within the rule's measured rounding (float16 inside)?
        why = wide_disagreement(sides.tree, g, wide, per, sides.rounding_spread(g))
    if why:
        said.append(why)
        return None
    return wide


def _prefetch(
    ev: CachedEvaluator, runner: Runner, inputs: Inputs, outs: Outputs, opt: Settings, options: Options
) -> list[str]:
    """First differences of a full check in batches with jax.vmap, before anything asks for them."""
    if not opt.vectorized or (opt.vectorized == "auto" and ev.tree.size < AUTO_MIN_ELEMENTS):
        return []
    if resolve(options.strategy, ev.tree.size) != "full":
        return []  # the other strategies do not difference every element
    notes: list[str] = []
    done = prefetch_first_differences(
        ev,
        strategy=options.strategy,
        samples=options.samples,
        seed=0,
        step=options.step,
        batch=num.batcher(runner, inputs, outs, ev.tree),
        notes=notes,
        what="vectorized evaluation (jax.vmap)",
    )
    if done:
        notes.append(f"first differences evaluated in batches with jax.vmap ({ev.n_prefetched} points).")
    return notes


def _grad_eps(tree: Tree, inputs: Inputs, grad_dtypes: list[np.dtype]) -> tuple[np.ndarray | None, list[str]]:
    """Per element, the resolution of the analytic dtype: the input's (bfloat16, which numpy lacks, at its own),
    or the gradient's where it is coarser (a rule returning float32 for a float64 input); and notes saying so."""
    eps, notes = [], []
    for k, (lf, dt) in enumerate(zip(tree.leaves, inputs.natives, strict=True)):
        own = BFLOAT16_EPS if num.is_bfloat16(dt) else float(np.finfo(lf.dtype).eps)
        got = grad_dtypes[k] if k < len(grad_dtypes) else None
        coarser = _eps_of(got) if got is not None else 0.0
        if coarser > own:
            notes.append(
                f"the gradient of {lf.name} is {got} for a {dt} input: accepted, and judged at {got}'s "
                "resolution (the coarser of the two)."
            )
        eps.append(max(own, coarser))
    if all(e == float(np.finfo(lf.dtype).eps) for e, lf in zip(eps, tree.leaves, strict=True)):
        return None, notes
    return tree.per_leaf(eps), notes


def _eps_of(dtype: Any) -> float:
    if num.is_bfloat16(dtype):
        return BFLOAT16_EPS
    return float(np.finfo(dtype).eps) if np.dtype(dtype).kind == "f" else 0.0


def _finish(report: Report, inputs: Inputs, late: list[str]) -> Report:
    """Masked entries out of the counts; the leaves with nothing to check; what the evaluations said (steps
    shrunk at a domain edge, jit fallbacks)."""
    masks = {n: m for n, m in zip(inputs.names, inputs.masks, strict=True) if m is not None}
    status = report.element_status if isinstance(report.element_status, dict) else {}
    for lf in report.leaves:
        base = lf.name[len(JVP_PREFIX) :] if lf.name.startswith(JVP_PREFIX) else lf.name
        if base in masks and base in status:
            _leave_out(lf, masks[base], np.asarray(status[base]))
    for name, m in masks.items():
        if name in status:
            status[name] = np.where(m, "", status[name])
        for values in (report.numeric, report.bound):
            if isinstance(values, dict) and name in values:
                values[name] = np.where(m, np.nan, values[name])
    if masks:
        counts = ", ".join(f"{n} ({int(m.sum())})" for n, m in masks.items())
        report.notes.append(
            "non-finite input entries (-inf masks, log-domain values) are not coordinates to differentiate: "
            f"they were left out of the check and its counts: {counts}."
        )
    report.leaves.extend(_aside_leaf(*a) for a in inputs.aside)
    report.notes.extend(n for n in late if n not in report.notes)
    return report


def _leave_out(lf: LeafReport, mask: np.ndarray, status: np.ndarray) -> None:
    """Take the masked entries out of a leaf's counts and lists (nothing moved them: 0 against 0)."""
    gone = status[mask]
    gone = gone[gone != ""]
    lf.n_checked -= int(gone.size)
    for s in np.unique(gone).tolist():
        lf.counts[s] = lf.counts.get(s, 0) - int(np.sum(gone == s))
        if lf.counts[s] <= 0:
            del lf.counts[s]
    lf.worst = [e for e in lf.worst if not mask[e.index]]
    lf.kinks = [e for e in lf.kinks if not mask[e.index]]


def _aside_leaf(name: str, shape: tuple[int, ...], dtype: str, status: str, note: str) -> LeafReport:
    n = int(np.prod(shape, dtype=np.int64))
    return LeafReport(name, shape, dtype, status, n, 0, {}, 0.0, 0.0, 0.0, note=note)


def _trivial(fname: str, inputs: Inputs, started: float) -> Report:
    """Every input to check is empty: nothing to differentiate, so the check holds trivially."""
    return Report(
        title=fname,
        kind="jax",
        strategy="full",
        method="central",
        leaves=[_aside_leaf(*a) for a in inputs.aside],
        n_evals=1,
        seconds=time.perf_counter() - started,
        notes=[
            f"every input of {fname} to check is empty ({', '.join(a[0] for a in inputs.aside)}): there is no "
            "element to differentiate, so the check holds trivially (nothing was compared)."
        ],
    )
