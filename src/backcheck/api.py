"""``check``: a scalar loss of a parameter tree and the gradient claimed for it, as a :class:`Contract`."""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from backcheck.calls import (
    ONE_ULP_AWAY,
    call_user,
    called_as,
    first_parameter_name,
    function_name,
    params_tree,
    refusal_note,
    require_callable,
    typed_arguments,
)
from backcheck.containers import map_leaves
from backcheck.contract import Analytic, Contract, Section
from backcheck.errors import GradientMismatch, NotScalarError
from backcheck.evaluate import Output
from backcheck.extended import extended_run
from backcheck.findings import error_notes, mutation_finding
from backcheck.options import Options
from backcheck.outputs import computes_alike, nudge_ulp, within_spread
from backcheck.randomness import keeps_random
from backcheck.report import Report
from backcheck.run import run
from backcheck.tree import Tree

__all__ = ["assert_grad", "check", "loss_contract", "replay_randomness"]


@keeps_random  # the user's random streams are left as they were found
@typed_arguments
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
    seed: Any = 0,
    upcast: bool | None = None,
    curves: bool = False,
    vectorized: bool = False,
    max_batch_bytes: int | None = None,
    executor: Any = None,
    progress: bool | None = None,
    random: str = "auto",
    strict_dtype: bool = False,
    floor: float | None = None,
    detect: float | None = None,
    confidence: float = 0.999,
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
        (default: three, or as ``detect`` and ``confidence`` ask) random directional derivatives per
        array, at a cost independent of its size; 'auto' does that and localizes failing elements by
        group testing. None: 'full' up to 4096 elements, 'auto' above.
    atol, rtol : float, optional
        Replace the error model by ``|analytic - numeric| <= atol + rtol * |numeric|``.
    step : float or array, optional
        Absolute finite-difference step(s): one number, one per element (flat, or shaped like the parameter), or
        one array per array checked; by default chosen per element from its magnitude and dtype.
    seed : int, None or numpy Generator
        Seed of every random choice of the check (sampled elements, directions); None draws fresh entropy.
    upcast : bool, optional
        Evaluate ``f`` on float64 copies of the parameters (``f`` must then use its argument rather than
        a closure). For float32 parameters this makes the numeric side far more accurate, so subtle
        errors in a float32 gradient become visible. None (default): for float32 and float16 parameters,
        where ``f`` takes float64 copies and computes the same value from them (not a closure).
    curves : bool
        Also record, for the worst element of each array, the estimate over a range of steps
        (``report.curves``: the error-versus-step V curve; 44 more evaluations per array).
    vectorized : bool
        ``f`` accepts every array with a leading batch axis and returns one loss per row: many perturbed
        points are then evaluated per call, in chunks of at most ``max_batch_bytes`` of inputs (default
        about 2 MB: rows that stay in a core's cache beat fewer, larger calls; 16 MB for a framework's vmap,
        whose calls cost a dispatch each).
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
    strict_dtype : bool
        Refuse (:class:`GradientStructureError`) a gradient in another float dtype than its parameter. By
        default it is accepted and judged at the coarser of the two dtypes, with a note.

    floor : float, optional
        The detection floor asked for, relative (``floor=1e-9``): an element wrong by that fraction of its
        gradient must fail. Elements whose bound is wider are refined on a Richardson table; where the
        function's noise forbids the floor, they are inconclusive. Every report states the floor it reached.
    detect, confidence : float, optional
        For 'projected' and 'auto': the RMS error, relative to the gradient, that the random directions must
        catch (default: ten times what one direction resolves) and the confidence to catch it with (default
        0.999); the number of directions follows (three by default). The report states both.

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
    options = Options.pick(locals())
    contract = loss_contract(f, params, grad, options)
    report = run(contract, options)
    report.notes.extend(error_notes(report, contract.tree, contract.fname))
    return report


#: Where ``f`` is differenced, the evaluations it took to decide, a note, and f's output there (or None).
Decided = tuple[Tree, int, str, Any]


def _numeric_point(f: Callable[[Any], Any], tree: Tree, upcast: bool | None) -> Decided:
    """Where ``f`` is differenced, the evaluations it took to decide, and a note when ``f`` raised on float64
    copies: float64 copies when asked for, or for float32 / float16 parameters when ``f`` computes the same value
    from them (it reads its argument, and does not draw or round in its dtype). ``f`` raising on a copy of the
    point itself is the user's error. And ``f``'s output at the float64 copies where it was asked there on the
    way (the baseline's first call: its random streams were as the check found them)."""
    narrow = [leaf.dtype for leaf in tree.leaves if leaf.dtype.kind == "f" and leaf.dtype.itemsize < 8]
    if upcast is False or (upcast is None and not narrow):
        return tree, 0, "", None
    wide = Tree(tree.fresh(dtype=np.float64), tree.root, in_place=False)
    if upcast:
        return wide, 0, "", None
    from backcheck.randomness import FrozenRandom, find_generators

    # every stream f reaches replayed at each of these calls (a dropout mask drawn anew would differ between the
    # narrow and the float64 run as no rounding does, and hide a closure that never reads its argument), and
    # left as the user had it
    frozen = FrozenRandom(find_generators(f))
    try:
        return _decided_point(frozen.wrap(f), tree, wide, narrow)
    except BaseException:
        tree.restore()  # f reads the user's arrays through a closure and may have written them before it raised
        raise
    finally:
        frozen.restore()


def _decided_point(f: Callable[[Any], Any], tree: Tree, wide: Tree, narrow: list[np.dtype]) -> Decided:
    """:func:`_numeric_point` where ``f`` is asked: the narrow point or its float64 copies ``wide``."""
    fname = function_name(f)
    with np.errstate(all="ignore"):
        low = _as_float(call_user(f, (tree.fresh(),), fname))
        try:
            at_wide = f(wide.fresh())
            high = _as_float(at_wide)
        except Exception as exc:  # noqa: BLE001 - a function that refuses float64 copies is checked in its own dtype
            return tree, 2, refusal_note(fname, exc, "on float64 copies of its parameters", narrow), None
    eps = max(float(np.finfo(d).eps) for d in narrow)
    try:
        if high == low:  # equal to the bit: f reads a closure, casts inside, promotes at once, or is exact here
            point, asked = _off_grid(f, tree, wide, high)
            return point, asked, "", at_wide if point is wide else None
        if computes_alike(high, low, eps):
            return wide, 2, "", at_wide
        return (wide, 3, "", at_wide) if _within_own_rounding(f, tree, (high, low), eps) else (tree, 3, "", None)
    except _Refused as refused:  # no second look: its own dtype, as before, and a note says why
        return tree, refused.evaluations, refusal_note(fname, refused.cause, ONE_ULP_AWAY, narrow), None


class _Refused(Exception):
    """``f`` raised at a point one unit in the last place from the point, asked to decide where to difference."""

    def __init__(self, cause: Exception, evaluations: int) -> None:
        super().__init__(str(cause))
        self.cause, self.evaluations = cause, evaluations


def _within_own_rounding(f: Callable[[Any], Any], tree: Tree, values: tuple[float, float], eps: float) -> bool:
    """Whether ``f``'s float64 value differs from its narrow one by no more than the narrow run's own rounding,
    measured one unit in the last place away (a float32 BCE's ``softplus(13) - 13`` cancels to a few units of
    13, far above eps32 of the loss): then it is the same function, and is differenced on float64 copies."""
    gen = np.random.default_rng(0)
    moved = []
    for leaf in tree.leaves:
        a = leaf.original.reshape(-1).copy()
        if a.dtype.kind == "f":
            nudge_ulp(a, gen)
        moved.append(a.astype(np.float64))
    with np.errstate(all="ignore"):
        try:
            nudged = _as_float(f(tree.fresh(np.concatenate(moved) if moved else np.zeros(0))))
        except Exception as exc:  # noqa: BLE001 - no measure: its own dtype, as before
            raise _Refused(exc, 3) from exc
    return math.isfinite(nudged) and within_spread(*values, nudged, eps)


def _off_grid(f: Callable[[Any], Any], tree: Tree, wide: Tree, high: float) -> tuple[Tree, int]:
    """:func:`_numeric_point` where ``f`` gave the same value to the bit at the point and at its float64 copy
    (``high``): asked once more, on float64 copies moved a quarter of a narrow unit in the last place up, off the
    narrow grid. A closure, or a cast inside (which rounds the quarter unit back), gives ``high`` again; a
    function that reads float64 bits moves with it: one that promotes to float64 at its first operation (a
    float64 weight times the parameter), or computes in the narrow dtype but was exact at the point (x * x at
    small integers), and is differenced on float64 copies."""
    off = []
    for leaf in tree.leaves:
        a = leaf.original.reshape(-1)
        off.append(a + np.spacing(a).astype(np.float64) / 4 if a.dtype.kind == "f" else a.astype(np.float64))
    with np.errstate(all="ignore"):
        try:
            further = _as_float(f(tree.fresh(np.concatenate(off), dtype=np.float64)))
        except Exception as exc:  # noqa: BLE001 - no second look: its own dtype, as before
            raise _Refused(exc, 3) from exc
    return (wide if math.isfinite(further) and further != high else tree), 3


def _as_float(value: Any) -> float:
    """A loss as a float (NaN for anything that is not one number: the evaluator names that error later)."""
    try:
        return float(np.asarray(value, dtype=np.float64))
    except Exception:  # noqa: BLE001 - (TypeError, ValueError; an nn tensor requiring grad refuses numpy)
        return math.nan


def _wide_gradient(grad: Callable[[Any], Any], point: Tree) -> np.ndarray | None:
    """The gradient function run on float64 copies, to tell its rounding from a wrong formula (None if it
    refuses them or answers in another dtype)."""
    try:
        g, dtypes = point.pack_dtypes(grad(point.fresh()), "gradient")
        return None if dtypes else g
    except Exception:  # noqa: BLE001 - a gradient that refuses float64 is judged at its own dtype only
        return None


def loss_contract(f: Callable[[Any], Any], params: Any, grad: Any, options: Options) -> Contract:
    """The contract of a scalar loss ``f(params)`` and its claimed gradient (a tree, or a function of params)."""
    require_callable(f, "f", "pass the loss function first: check(f, params, grad).")
    fname = function_name(f)
    tree = params_tree(params, first_parameter_name(f))
    point, probed, refused, at_point = _numeric_point(
        _batch_of_one(f, fname) if options.vectorized else f, tree, options.upcast
    )

    strict = options.strict_dtype

    def section(raw: Any, at: Callable[[list[np.ndarray]], np.ndarray] | None) -> tuple[Section, list[str]]:
        g, dtypes = tree.pack_dtypes(raw, "gradient", strict_dtype=strict)
        return Section(g, at, grad_eps=tree.grad_eps(dtypes)), tree.dtype_notes(dtypes)

    def build(f: Callable[[Any], Any], grad: Any, replayed: bool) -> Contract:
        def analytic() -> Analytic:
            if not callable(grad):
                sec, notes = section(grad, None)
                return Analytic((sec,), notes=tuple(notes))
            gname = function_name(grad, "grad")
            try:
                raw = call_user(grad, (tree.current(),), gname)
                changed = tree.changed()
            except BaseException:
                tree.restore()
                raise
            if changed:
                tree.restore()
            findings = (mutation_finding(gname, changed),) if changed else ()
            sec, notes = section(raw, gradient_at(gname))
            if point is not tree:
                sec = dataclasses.replace(sec, g_wide=_wide_gradient(grad, point))
            elif sec.grad_eps is None:
                sec = dataclasses.replace(sec, extended=extended_run(lambda p: call_user(grad, (p,), gname), tree))
            return Analytic((sec,), findings, notes=tuple(notes))

        def gradient_at(gname: str) -> Callable[[list[np.ndarray]], np.ndarray]:
            def at(values: list[np.ndarray]) -> np.ndarray:
                # the analytic gradient where the evaluator has moved the point (a nearby re-check)
                if point is not tree:
                    for low, v in zip(tree.leaves, values, strict=True):
                        np.copyto(low.work, v.astype(low.dtype))
                try:
                    return tree.pack(call_user(grad, (tree.current(),), gname), "gradient", strict_dtype=strict)
                finally:
                    if point is not tree:
                        tree.restore()

            return at

        def replay() -> tuple[Contract, str]:
            f2, grad2, note = replay_randomness(fname, f, grad)
            return build(f2, grad2, True), note

        return Contract(
            title=fname,
            kind="check",
            tree=tree,
            point=point,
            call=_batch_of_one(f, fname) if options.vectorized else f,
            output=Output.loss(fname),
            analytic=analytic,
            fname=fname,
            batch_call=f,
            remote=f,
            replay=None if replayed else replay,
            notes=(*tree.notes(), *([refused] if refused else [])),
            root=tree.root,
            evaluations=probed,
            at_point=None if replayed else at_point,
        )

    return build(f, grad, False)


def replay_randomness(
    fname: str, f: Callable[..., Any], other: Any, arguments: tuple[Any, ...] = ()
) -> tuple[Callable[..., Any], Any, str]:
    """Wrap ``f`` (and its companion, the gradient or backward function) to replay their random streams.

    Called up front for ``random='freeze'``, and for ``random='auto'`` once ``f`` has been seen to be
    random. ``arguments`` are values passed to ``f`` unperturbed (a layer's numpy Generator argument): their
    generators are replayed too. Returns the wrapped callables and a note for the report.
    """
    from backcheck.randomness import FrozenRandom, find_generators, replay_note

    frozen = FrozenRandom(find_generators(f, other, *arguments))
    wrapped_other = frozen.wrap(other) if callable(other) else other
    note = replay_note(fname, frozen)
    return frozen.wrap(f), wrapped_other, note


def _batch_of_one(f: Callable[[Any], Any], fname: str) -> Callable[[Any], Any]:
    """Call a vectorized function on a batch of one row (views, so in-place perturbations show)."""

    def one(t: Any) -> Any:
        out = np.asarray(f(map_leaves(lambda x: np.asarray(x)[None], t)))
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
    with called_as("check", "assert_grad"):
        report = check(*args, **kwargs)
    if not report.ok:
        raise GradientMismatch(report)
    return report


assert_grad.__signature__ = inspect.signature(check)  # type: ignore[attr-defined]
