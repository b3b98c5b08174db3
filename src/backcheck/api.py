"""The core contract: a scalar function of a parameter tree, and the gradient claimed for it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from backcheck.errors import (
    BackcheckError,
    BadInputError,
    GradientMismatch,
    NondeterministicError,
    NonFiniteError,
    NotScalarError,
    UserFunctionError,
)
from backcheck.evaluate import Evaluator, Output
from backcheck.numeric.grad import first_parameter_name, function_name
from backcheck.numeric.noise import estimate_noise
from backcheck.numeric.steps import default_steps
from backcheck.progress import Progress
from backcheck.report import Curve, Finding, LeafReport, Report, summarize
from backcheck.strategies import resolve, run_strategy
from backcheck.tree import Tree
from backcheck.verdict import Tolerance


def call_user(fn: Callable[..., Any], args: tuple[Any, ...], what: str, tree: Tree | None = None) -> Any:
    """Call a user function; wrap its exception with the culprit named, restoring the inputs first."""
    try:
        return fn(*args)
    except (KeyboardInterrupt, SystemExit, BackcheckError):
        raise
    except Exception as exc:
        raise UserFunctionError(
            f"{what} raised {type(exc).__name__}: {exc}",
            "the original exception is chained above; every input array has been restored.",
        ) from exc
    finally:
        if tree is not None:
            tree.restore()


def mutation_finding(function: str, leaves_changed: list[tuple[Any, np.ndarray]], kind: str = "input") -> Finding:
    leaf, idx = leaves_changed[0]
    names = [leaf.element_name(int(i)) for i in idx[:5]]
    others = "".join(f", {lf.name}" for lf, _ in leaves_changed[1:])
    return Finding(
        "mutation",
        f"{function} modified its {kind} {leaf.name}{others} in place ({idx.size} element(s) of {leaf.name}, "
        f"e.g. {', '.join(names)}). Code upstream that still holds the array now sees wrong values; copy "
        "before writing.",
        where=function,
        elements=names,
    )


def check_finite(tree: Tree, g: np.ndarray, what: str) -> None:
    bad = np.flatnonzero(~np.isfinite(g))
    if bad.size:
        i = int(bad[0])
        raise NonFiniteError(
            f"the {what} is {g[i]} at {tree.element_name(i)} ({bad.size} non-finite element(s)).",
            "look for log(0), 0/0 or overflow in the backward pass.",
        )


def evaluate_and_report(
    *,
    title: str,
    kind: str,
    tree: Tree,
    ev: Evaluator,
    g: np.ndarray,
    strategy: str | None,
    samples: int | None,
    atol: float | None,
    rtol: float | None,
    step: Any,
    seed: int,
    findings: list[Finding],
    skipped: dict[str, str] | None = None,
    started: float,
    curves: bool = False,
    regrad: Callable[[], np.ndarray] | None = None,
    g_wide: np.ndarray | None = None,
    grad_eps: np.ndarray | None = None,
) -> Report:
    """Run a strategy over ``tree`` with the analytic gradient ``g`` (flat) and build the report.

    ``grad_eps`` (per element) overrides the machine epsilon of the analytic gradient's dtype, for dtypes
    numpy does not have (bfloat16); ``g_wide`` is the same gradient computed in float64, when available.
    """
    strategy = resolve(strategy, tree.size)
    steps = default_steps(ev.tree, step)
    ev.noise = estimate_noise(ev, steps, seed)
    rms = np.empty(tree.size)
    overall = float(np.sqrt(np.mean(g**2))) if g.size else 0.0
    eps_given = grad_eps
    grad_eps = np.empty(tree.size)
    for leaf in tree.leaves:
        sl = slice(leaf.offset, leaf.offset + leaf.size)
        grad_eps[sl] = float(np.finfo(leaf.dtype).eps) if eps_given is None else eps_given[sl]
        rms[sl] = float(np.sqrt(np.mean(g[sl] ** 2)))
        if grad_eps[leaf.offset] > 1e-10:
            # a low-precision gradient's rounding follows the size of the whole computation: an array whose
            # true gradient is zero (a bias before a batch norm) still carries rounding of the others' size
            rms[sl] = max(rms[leaf.offset], overall)
    outcome = run_strategy(
        ev,
        g,
        steps,
        strategy,
        samples,
        Tolerance(atol, rtol),
        grad_eps,
        rms,
        regrad,
        seed,
        frozenset(skipped or ()),
        g_wide,
    )
    leaves = summarize(
        tree,
        g,
        outcome.numeric,
        outcome.bound,
        outcome.status,
        outcome.checked,
        skipped,
        outcome.failed_leaves,
    )
    numeric_flat = np.full(tree.size, np.nan)
    numeric_flat[outcome.checked] = outcome.numeric
    bound_flat = np.full(tree.size, np.nan)
    bound_flat[outcome.checked] = outcome.bound
    status_flat = np.full(tree.size, "", dtype=object)
    status_flat[outcome.checked] = outcome.status
    notes = list(outcome.notes)
    if ev.tree is not tree:
        notes.append(
            "the numeric side was evaluated in float64 (the function accepts float64 inputs); the "
            "analytic gradient is judged at its own dtype's resolution."
        )
    if strategy == "sparse":
        notes.append(f"sparse check: {outcome.checked.size} of {tree.size} elements sampled (seed={seed}).")
    curve_list = [step_curve(ev, tree, g, steps, lf) for lf in leaves if lf.worst] if curves else []
    return Report(
        title=title,
        kind=kind,
        strategy=strategy,
        method="central",
        leaves=leaves,
        n_evals=ev.n_evals,
        seconds=time.perf_counter() - started,
        findings=findings,
        notes=notes,
        curves=curve_list,
        _numeric=tree.fresh(numeric_flat, np.float64),
        _bound=tree.fresh(bound_flat, np.float64),
        _status=_status_tree(tree, status_flat),
        _analytic=tree.fresh(g, np.float64),
    )


def _status_tree(tree: Tree, status_flat: np.ndarray) -> Any:
    """Per-element verdicts ('' where not checked) as string arrays in the tree's structure."""
    arrays = [
        np.asarray(status_flat[lf.offset : lf.offset + lf.size], dtype=str).reshape(lf.shape) for lf in tree.leaves
    ]
    return tree._with(tree.structure, arrays)


def step_curve(ev: Evaluator, tree: Tree, g: np.ndarray, steps: np.ndarray, leaf: LeafReport) -> Curve:
    """Estimates of the leaf's worst element at steps from ``h / 2**16`` to ``h * 2**5`` (44 evaluations)."""
    worst = leaf.worst[0]
    k = next(j for j, lf in enumerate(tree.leaves) if lf.name == leaf.name)
    i = (
        tree.leaves[k].offset + int(np.ravel_multi_index(worst.index, leaf.shape))
        if leaf.shape
        else (tree.leaves[k].offset)
    )
    h = float(steps[i])
    trial = [h * 2.0**e for e in range(-16, 6)]
    estimates = []
    for s in trial:
        phis, disp = ev.element(i, (s, -s))
        estimates.append(float((phis[0] - phis[1]) / (disp[0] - disp[1])) if disp[0] != disp[1] else float("nan"))
    return Curve(worst.name, trial, estimates, float(g[i]), h)


def check(
    f: Callable[[Any], Any],
    params: Any,
    grad: Any,
    *,
    strategy: str | None = None,
    samples: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    step: Any = None,
    seed: int = 0,
    upcast: bool = False,
    curves: bool = False,
    vectorized: bool = False,
    max_batch_bytes: int = 4 * 2**20,
    executor: Any = None,
    progress: bool | None = None,
    random: str = "auto",
) -> Report:
    """Check an analytic gradient of a scalar function against finite differences.

    Parameters
    ----------
    f : callable
        ``f(params) -> float``, the loss. It may read the arrays of ``params`` through a closure instead of
        its argument (CS231n style): they are perturbed in place and restored bit for bit.
    params : array, float, or dict / list / tuple of them
        The point. Every float leaf is checked; integer or boolean leaves raise :class:`ParamsError`.
    grad : callable or tree
        ``grad(params) -> tree`` shaped like ``params`` (the gradient under test), or that tree itself.
    strategy : {None, 'full', 'sparse', 'projected', 'auto'}
        'full' checks every element (2N evaluations plus refinement of doubtful ones); 'sparse' checks a
        seeded random sample of ``samples`` elements (default 100); 'projected' compares ``samples``
        (default 8) random directional derivatives per array, at a cost independent of its size; 'auto'
        does that and localizes failing elements by group testing. None: 'full' up to 4096 elements,
        'auto' above.
    atol, rtol : float, optional
        Replace the error model by ``|analytic - numeric| <= atol + rtol * |numeric|``.
    step : float or array, optional
        Absolute finite-difference step(s); by default chosen per element from its magnitude and dtype.
    seed : int
        Seed for sampling.
    upcast : bool
        Evaluate ``f`` on float64 copies of the parameters (``f`` must then use its argument rather than
        a closure). For float32 parameters this makes the numeric side far more accurate, so subtle
        errors in a float32 gradient become visible.
    curves : bool
        Also record, for the worst element of each array, the estimate over a range of steps
        (``report.curves``: the error-versus-step V curve; 44 more evaluations per array).
    vectorized : bool
        ``f`` accepts every array with a leading batch axis and returns one loss per row: many perturbed
        points are then evaluated per call, in chunks of at most ``max_batch_bytes`` of inputs.
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Spread the evaluations over its workers (``f`` must be picklable and use its argument). Results are
        identical to a serial run; a worker that dies raises ``EvaluationError``.
    progress : bool, optional
        Show a progress bar on checks that take longer than about a second (default: when stderr is a
        terminal and rich is installed).
    random : {'auto', 'freeze', 'error'}
        What to do about a random function (dropout, sampling): 'auto' replays the same random stream at
        every evaluation when ``f`` turns out to be random (numpy Generators it can reach, numpy's global
        state, torch's generator) and says so in the report; 'freeze' always does; 'error' raises
        :class:`NondeterministicError`.

    Returns
    -------
    Report
        ``report.ok``, ``report.status``, one :class:`LeafReport` per array with the worst elements.

    Examples
    --------
    >>> import numpy as np
    >>> import backcheck
    >>> W = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> backcheck.check(lambda W: np.sum(W ** 2), W, lambda W: 2 * W).ok
    True
    >>> backcheck.check(lambda W: np.sum(W ** 2), W, lambda W: 2 * W.T).status
    'fail'
    """
    started = time.perf_counter()
    fname = function_name(f)
    tree = Tree(params, first_parameter_name(f))
    check_random_mode(random)
    random_note = ""
    if random == "freeze":
        f, grad, random_note = replay_randomness(random, fname, f, grad)
    eval_tree = Tree(tree.fresh(dtype=np.float64), tree.root, in_place=False) if upcast else tree
    ev = Evaluator(eval_tree, _batch_of_one(f, fname) if vectorized else f, Output.loss(fname), fname)
    ev.max_batch_bytes = max_batch_bytes
    findings: list[Finding] = []
    try:
        try:
            ev.baseline()
        except NondeterministicError:
            if random != "auto":
                raise
            f, grad, random_note = replay_randomness(random, fname, f, grad)
            count, ev = (
                ev.n_evals,
                Evaluator(eval_tree, _batch_of_one(f, fname) if vectorized else f, Output.loss(fname), fname),
            )
            ev.max_batch_bytes, ev.n_evals = max_batch_bytes, count
            ev.baseline()
        if vectorized:
            ev.batch_call = f
        if executor is not None:
            ev.executor, ev.remote = executor, (f, eval_tree.fresh())
        if ev.mutated:
            findings.append(mutation_finding(fname, ev.mutated))
        regrad = None
        if callable(grad):
            gname = function_name(grad, "grad")
            raw = call_user(grad, (tree.current(),), gname)
            changed = tree.changed()
            tree.restore()
            if changed:
                findings.append(mutation_finding(gname, changed))

            def regrad() -> np.ndarray:
                # the analytic gradient where the evaluator has moved the point (a nearby re-check)
                if eval_tree is not tree:
                    for low, wide in zip(tree.leaves, eval_tree.leaves, strict=True):
                        np.copyto(low.work, wide.work.astype(low.dtype))
                try:
                    return tree.pack(call_user(grad, (tree.current(),), gname), "gradient")
                finally:
                    if eval_tree is not tree:
                        tree.restore()
        else:
            raw = grad
        g = tree.pack(raw, "gradient")
        check_finite(tree, g, "gradient")
        with Progress(fname, progress) as bar:
            ev.progress = bar
            report = evaluate_and_report(
                title=fname,
                kind="check",
                tree=tree,
                ev=ev,
                g=g,
                strategy=strategy,
                samples=samples,
                atol=atol,
                rtol=rtol,
                step=step,
                seed=seed,
                findings=findings,
                started=started,
                curves=curves,
                regrad=regrad,
            )
            if random_note:
                report.notes.insert(0, random_note)
            return report
    finally:
        tree.restore()


def replay_randomness(mode: str, fname: str, f: Callable[..., Any], other: Any) -> tuple[Callable[..., Any], Any, str]:
    """Wrap ``f`` (and its companion, the gradient or backward function) to replay their random streams.

    Called up front for ``random='freeze'``, and for ``random='auto'`` once ``f`` has been seen to be
    random. Returns the wrapped callables and a note for the report.
    """
    from backcheck.randomness import FrozenRandom, find_generators

    frozen = FrozenRandom(find_generators(f, other))
    wrapped_other = frozen.wrap(other) if callable(other) else other
    note = (
        f"{fname} is random; every evaluation replayed the same random stream ({frozen.describe()}), so "
        "the check is of the function with that stream fixed (for example one dropout mask)."
    )
    return frozen.wrap(f), wrapped_other, note


def check_random_mode(mode: str) -> None:
    if mode not in ("auto", "freeze", "error"):
        raise BadInputError(f"random={mode!r} is not one of 'auto', 'freeze', 'error'.", "use random='auto'.")


def _batch_of_one(f: Callable[[Any], Any], fname: str) -> Callable[[Any], Any]:
    """Call a vectorized function on a batch of one row (views, so in-place perturbations show)."""

    def expand(t: Any) -> Any:
        if isinstance(t, dict):
            return type(t)((k, expand(v)) for k, v in t.items())
        if isinstance(t, (list, tuple)):
            items = [expand(v) for v in t]
            return type(t)(*items) if hasattr(t, "_fields") else type(t)(items)
        return np.asarray(t)[None]

    def one(t: Any) -> Any:
        out = np.asarray(f(expand(t)))
        if out.shape != (1,):
            raise NotScalarError(
                f"with vectorized=True, {fname} returned shape {out.shape} for a batch of one row; expected "
                "(1,): one loss per row.",
                "every array gets a leading batch axis: reduce over every other axis, or pass vectorized=False.",
            )
        return out[0]

    return one


def assert_grad(*args: Any, **kwargs: Any) -> Report:
    """Like :func:`check`, but raise :class:`GradientMismatch` (an AssertionError) unless the check passes.

    Examples
    --------
    >>> import numpy as np
    >>> import backcheck
    >>> backcheck.assert_grad(lambda x: np.sum(np.sin(x)), np.linspace(0, 1, 5), np.cos).ok
    True
    """
    report = check(*args, **kwargs)
    if not report.ok:
        raise GradientMismatch(report)
    return report
