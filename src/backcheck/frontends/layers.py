"""Layers with a hand-written backward pass: ``forward(*inputs)`` and ``backward(dout, *inputs)``.

Also the CS231n convention, ``forward(*inputs) -> (out, cache)`` and ``backward(dout, cache) -> grads``.
The layer is reduced to the core contract by a cotangent ``dout``: the checked scalar is
``<dout, forward(*inputs)>``, whose gradient is exactly what ``backward(dout, ...)`` claims to return.
check_layer works on private copies: the caller's arrays are never written.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from backcheck.api import (
    call_user,
    check_finite,
    check_random_mode,
    evaluate_and_report,
    mutation_finding,
    replay_randomness,
)
from backcheck.errors import (
    BadInputError,
    GradientMismatch,
    GradientStructureError,
    NondeterministicError,
    NonFiniteError,
)
from backcheck.evaluate import Evaluator, Output
from backcheck.numeric.grad import function_name
from backcheck.progress import Progress
from backcheck.report import Finding, Report
from backcheck.tree import Tree


def _input_names(forward: Callable[..., Any], n: int) -> list[str]:
    try:
        params = list(inspect.signature(forward).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = []
    for k in range(n):
        if k < len(params) and params[k].kind in (params[k].POSITIONAL_ONLY, params[k].POSITIONAL_OR_KEYWORD):
            names.append(params[k].name)
        elif params and params[-1].kind == params[-1].VAR_POSITIONAL:
            names.append(f"{params[-1].name}[{k - len(params) + 1}]")
        else:
            names.append(f"input{k}")
    return names


def _flatten_out(out: Any, prefix: str = "out") -> list[tuple[str, Any]]:
    if isinstance(out, Mapping):
        return [item for k, v in out.items() for item in _flatten_out(v, f"{prefix}[{k!r}]")]
    if isinstance(out, (list, tuple)):
        return [item for k, v in enumerate(out) for item in _flatten_out(v, f"{prefix}[{k}]")]
    return [(prefix, out)]


def _is_float(x: Any) -> bool:
    return isinstance(x, float) or (isinstance(x, (np.ndarray, np.generic)) and np.asarray(x).dtype.kind == "f")


def check_layer(
    forward: Callable[..., Any],
    backward: Callable[..., Any],
    inputs: Any,
    dout: Any = None,
    *,
    cache: bool = False,
    wrt: Sequence[str] | None = None,
    strategy: str | None = None,
    samples: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    step: Any = None,
    seed: int = 0,
    upcast: bool | None = None,
    curves: bool = False,
    random: str = "auto",
    names: Sequence[str] | None = None,
    vectorized: bool = False,
    max_batch_bytes: int = 4 * 2**20,
    executor: Any = None,
    progress: bool | None = None,
) -> Report:
    """Check a layer's backward pass against finite differences of its forward pass.

    Parameters
    ----------
    forward : callable
        ``forward(*inputs) -> out`` (an array, or a tuple/list/dict of arrays); with ``cache=True``,
        ``forward(*inputs) -> (out, cache)``.
    backward : callable
        ``backward(dout, *inputs) -> grads``; with ``cache=True``, ``backward(dout, cache) -> grads``.
        ``grads`` holds one gradient per input (``None`` for inputs that are not differentiable, such as
        integer labels), or one per float input, or a single array when there is one input.
    inputs : array or sequence of arrays
        The point. Integer and boolean inputs are passed through unperturbed. Names in reports come from
        ``forward``'s parameter names.
    dout : array or tree like ``out``, optional
        The upstream gradient. Default: a seeded standard normal array of ``out``'s shape and dtype.
    wrt : sequence of str, optional
        Check only these inputs (by name).
    strategy, samples, atol, rtol, step, seed
        As in :func:`backcheck.check`.
    upcast : bool, optional
        Evaluate the forward pass on float64 copies of the inputs for the numeric side. The default
        (None) does so when an input is float32 or float16 and ``forward`` returns float64 for float64
        inputs; the analytic gradient is still computed, and judged, at the inputs' own dtype.
    curves : bool
        Record the error-versus-step curve of each input's worst element (``report.curves``).
    random : {'auto', 'freeze', 'error'}
        As in :func:`backcheck.check`: a random forward pass (dropout drawing its own mask) is checked with
        the same random stream replayed at every evaluation, in forward and backward alike.
    names : sequence of str, optional
        The inputs' names in the report (default: ``forward``'s parameter names).
    vectorized : bool
        ``forward`` accepts its float inputs with a leading batch axis (labels and other fixed inputs as
        they are) and returns outputs with that axis: the first differences are then evaluated many points
        per call, in chunks of at most ``max_batch_bytes`` of inputs. ``backward`` is called unbatched.
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Spread the first differences over its workers, as in :func:`backcheck.check` (``forward`` must be
        picklable: defined at module level).
    progress : bool, optional
        A progress bar on checks longer than about a second, as in :func:`backcheck.check`.

    Returns
    -------
    Report

    Examples
    --------
    >>> import numpy as np
    >>> import backcheck
    >>> def affine_forward(x, w, b):
    ...     return x @ w + b
    >>> def affine_backward(dout, x, w, b):
    ...     return dout @ w.T, x.T @ dout, dout.sum(axis=0)
    >>> rng = np.random.default_rng(0)
    >>> x, w, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)
    >>> backcheck.check_layer(affine_forward, affine_backward, (x, w, b)).ok
    True
    """
    started = time.perf_counter()
    fname, bname = function_name(forward, "forward"), function_name(backward, "backward")
    if isinstance(inputs, Mapping):
        raise BadInputError(
            "inputs is a dict; check_layer takes the inputs positionally, in forward's parameter order.",
            "pass a tuple, e.g. inputs=(x, w, b).",
        )
    if not isinstance(inputs, (list, tuple)):
        inputs = (inputs,)
    if names is not None and len(names) != len(inputs):
        raise BadInputError(f"names has {len(names)} entries for {len(inputs)} inputs.", "give one name per input.")
    names = list(names) if names is not None else _input_names(forward, len(inputs))
    if wrt is not None:
        unknown = [w for w in wrt if w not in names]
        if unknown:
            raise BadInputError(
                f"wrt names {unknown}, which are not inputs of {fname}: {names}.", f"choose from {names}."
            )
    diff_names = [n for n, x in zip(names, inputs, strict=True) if _is_float(x) and (wrt is None or n in wrt)]
    if not diff_names:
        raise BadInputError(
            f"none of {fname}'s inputs ({', '.join(names)}) is a float array to differentiate.",
            "pass float arrays (integer labels and masks are passed through unperturbed).",
        )
    fixed = {
        n: (x.copy() if isinstance(x, np.ndarray) else x)
        for n, x in zip(names, inputs, strict=True)
        if n not in diff_names
    }
    tree = Tree(
        {n: x for n, x in zip(names, inputs, strict=True) if n in diff_names},
        "inputs",
        in_place=False,
        bare_keys=True,
    )

    def args(current: Mapping[str, Any]) -> list[Any]:
        return [current[n] if n in current else fixed[n] for n in names]

    check_random_mode(random)
    random_note = ""
    if random == "freeze":
        forward, backward, random_note = replay_randomness(random, fname, forward, backward)

    def batched_forward(rows: Mapping[str, Any]) -> Any:
        # every differentiable input with a leading batch axis; fixed inputs (labels) as they are
        out = forward(*args(rows))
        return out[0] if cache else out

    def call_forward(current: Mapping[str, Any]) -> Any:
        if vectorized:
            out = batched_forward({n: np.asarray(v)[None] for n, v in current.items()})
            return _rebuild_like(out, [np.asarray(x)[0] for _, x in _flatten_out(out)])
        out = forward(*args(current))
        if cache:
            if not (isinstance(out, tuple) and len(out) == 2):
                raise BadInputError(
                    f"with cache=True, {fname} must return (out, cache); it returned a {type(out).__name__}.",
                    "drop cache=True if forward returns only its output.",
                )
            out = out[0]
        return out

    # the original point: output structure, dout, and the analytic gradients
    try:
        out0 = call_user(call_forward, (tree.current(),), fname)
        changed = tree.changed()
    finally:
        tree.restore()
    findings: list[Finding] = []
    if changed:
        findings.append(mutation_finding(fname, changed))
    parts = [(n, np.asarray(p)) for n, p in _flatten_out(out0)]
    eval_tree = tree
    low = any(leaf.dtype.itemsize < 8 for leaf in tree.leaves)
    if upcast or (upcast is None and low):
        wide = Tree(tree.fresh(dtype=np.float64), "inputs", in_place=False, bare_keys=True)
        try:
            wide_out = [np.asarray(p) for _, p in _flatten_out(call_forward(wide.current()))]
        except Exception:  # noqa: BLE001 - a function that refuses float64 is checked at its own dtype
            wide_out = []
        if len(wide_out) == len(parts) and all(
            w.dtype == np.float64 and w.shape == p.shape for w, (_, p) in zip(wide_out, parts, strict=True)
        ):
            eval_tree = wide
    for n, p in parts:
        if p.dtype.kind != "f":
            raise BadInputError(
                f"{fname}'s output {n} has dtype {p.dtype}; a layer's output must be float.",
                "return float arrays.",
            )
        if not np.all(np.isfinite(p)):
            raise NonFiniteError(
                f"{fname}'s output {n} contains NaN or Inf at the original point.",
                "check the inputs and the forward pass for log(0), 0/0 or overflow.",
            )
    u = _dout(dout, parts, seed, fname)
    ev = Evaluator(
        eval_tree,
        call_forward,
        Output.cotangent(
            fname,
            u,
            [n for n, _ in parts],
            [p.shape for _, p in parts],
            lambda o: [x for _, x in _flatten_out(o)],
        ),
        fname,
    )
    ev.max_batch_bytes = max_batch_bytes
    if executor is not None:
        ev.executor = executor
        ev.remote = (LayerPhi(forward, names, fixed, cache, u), eval_tree.fresh())
    if vectorized:
        u_rows = [np.asarray(x, dtype=np.float64).reshape(-1) for x in u]

        def phi_rows(rows: Mapping[str, Any]) -> np.ndarray:
            parts_b = [np.asarray(x) for _, x in _flatten_out(batched_forward(rows))]
            total = np.zeros(parts_b[0].shape[0] if parts_b else 0)
            for p, uu in zip(parts_b, u_rows, strict=True):
                total += p.reshape(p.shape[0], -1).astype(np.float64) @ uu
            return total

        ev.batch_call = phi_rows
    try:
        ev.baseline()
    except NondeterministicError:
        if random != "auto":
            raise
        # call_forward reads `forward` when called, so rebinding it here replays the stream from now on
        forward, backward, random_note = replay_randomness(random, fname, forward, backward)
        ev.baseline()

    dout_arg = (
        _rebuild_like(out0, [x.copy() for x in u])
        if len(parts) > 1 or isinstance(out0, (list, tuple, Mapping))
        else (u[0].copy())
    )
    dout_before = [x.copy() for x in u]
    bargs = [x.copy() if isinstance(x, np.ndarray) else x for x in args(tree.fresh())]
    inputs_before = [x.copy() if isinstance(x, np.ndarray) else x for x in bargs]
    if cache:
        cache_obj = call_user(lambda a: forward(*a)[1], (bargs,), fname)
        raw = call_user(backward, (dout_arg, cache_obj), bname)
    else:
        raw = call_user(backward, (dout_arg, *bargs), bname)
    for k, (before, now) in enumerate(zip(dout_before, [x for _, x in _flatten_out(dout_arg)], strict=True)):
        if isinstance(now, np.ndarray) and not np.array_equal(before, now, equal_nan=True):
            idx = np.flatnonzero(before.reshape(-1) != np.asarray(now).reshape(-1))
            findings.append(_mutation(bname, "dout" if len(u) == 1 else f"dout[{k}]", before.shape, idx))
    if not cache:
        for n, before, now in zip(names, inputs_before, bargs, strict=True):
            if isinstance(before, np.ndarray) and not np.array_equal(before, now, equal_nan=True):
                idx = np.flatnonzero(before.reshape(-1) != now.reshape(-1))
                findings.append(_mutation(bname, n, before.shape, idx))
    grads = _match_grads(raw, names, diff_names, bname)
    skipped = {n: f"{bname} returned None for {n}: not checked." for n, gr in grads.items() if gr is None}
    g = tree.pack(
        {
            n: (gr if gr is not None else np.zeros(np.shape(tree.obj[n]), np.asarray(tree.obj[n]).dtype))
            for n, gr in grads.items()
        },
        "gradient",
    )
    check_finite(tree, g, f"gradient returned by {bname}")

    def regrad() -> np.ndarray:
        # the analytic gradient at the point the evaluator has moved to (a nearby re-check), same dout
        near = {
            n: np.asarray(v).astype(tree.obj[n].dtype if isinstance(tree.obj[n], np.ndarray) else np.float64)
            for n, v in eval_tree.current().items()
        }
        nargs = [near[n] if n in near else fixed[n] for n in names]
        d = (
            _rebuild_like(out0, [x.copy() for x in u])
            if len(parts) > 1 or isinstance(out0, (list, tuple, Mapping))
            else (u[0].copy())
        )
        if cache:
            nraw = call_user(backward, (d, call_user(lambda a: forward(*a)[1], (nargs,), fname)), bname)
        else:
            nraw = call_user(backward, (d, *nargs), bname)
        ng = _match_grads(nraw, names, diff_names, bname)
        return tree.pack(
            {
                n: (gr if gr is not None else np.zeros(np.shape(tree.obj[n]), np.asarray(tree.obj[n]).dtype))
                for n, gr in ng.items()
            },
            "gradient",
        )

    g_wide = _wide_gradient(eval_tree, tree, fixed, names, diff_names, out0, u, parts, forward, backward, cache)
    with Progress(fname, progress) as bar:
        ev.progress = bar
        report = evaluate_and_report(
            title=f"{fname} / {bname}",
            kind="layer",
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
            skipped=skipped,
            started=started,
            curves=curves,
            regrad=regrad,
            g_wide=g_wide,
        )
    if random_note:
        report.notes.insert(0, random_note)
    tree.restore()
    return report


class LayerPhi:
    """``phi = <dout, forward(*inputs)>`` as a picklable callable of the differentiable inputs, for workers."""

    def __init__(
        self, forward: Callable[..., Any], names: list[str], fixed: dict[str, Any], cache: bool, u: list[np.ndarray]
    ) -> None:
        self.forward, self.names, self.fixed, self.cache = forward, names, fixed, cache
        self.u = [np.asarray(x, dtype=np.float64).reshape(-1) for x in u]
        self.__name__ = function_name(forward, "forward")

    def __call__(self, current: Mapping[str, Any]) -> float:
        out = self.forward(*[current[n] if n in current else self.fixed[n] for n in self.names])
        out = out[0] if self.cache else out
        parts = [np.asarray(x, dtype=np.float64).reshape(-1) for _, x in _flatten_out(out)]
        return float(sum(float(np.dot(uu, p)) for uu, p in zip(self.u, parts, strict=True)))


def _wide_gradient(
    eval_tree: Tree,
    tree: Tree,
    fixed: dict[str, Any],
    names: list[str],
    diff_names: list[str],
    out0: Any,
    u: list[np.ndarray],
    parts: list[Any],
    forward: Callable[..., Any],
    backward: Callable[..., Any],
    cache: bool,
) -> np.ndarray | None:
    """The backward pass run on float64 copies (when the numeric side is), to tell rounding from bugs."""
    if eval_tree is tree:
        return None
    wide = eval_tree.fresh()
    wargs = [wide[n] if n in wide else fixed[n] for n in names]
    d64 = [x.astype(np.float64) for x in u]
    dout = _rebuild_like(out0, d64) if len(parts) > 1 or isinstance(out0, (list, tuple, Mapping)) else d64[0]
    try:
        raw = backward(dout, forward(*wargs)[1]) if cache else backward(dout, *wargs)
        grads = _match_grads(raw, names, diff_names, "backward")
        if any(gr is not None and np.asarray(gr).dtype != np.float64 for gr in grads.values()):
            return None
        return eval_tree.pack(
            {n: (gr if gr is not None else np.zeros(np.shape(wide[n]))) for n, gr in grads.items()}, "gradient"
        )
    except Exception:  # noqa: BLE001 - a backward pass that refuses float64 is judged at its own dtype only
        return None


def _mutation(function: str, what: str, shape: tuple[int, ...], idx: np.ndarray) -> Finding:
    from backcheck.tree import format_index

    names = [what + format_index(np.unravel_index(int(i), shape) if shape else ()) for i in idx[:5]]
    return Finding(
        "mutation",
        f"{function} modified its argument {what} in place ({idx.size} element(s), e.g. {', '.join(names)}). "
        "In a network the caller still holds that array and now sees wrong values; copy before writing.",
        where=function,
        elements=names,
    )


def _dout(dout: Any, parts: list[tuple[str, np.ndarray]], seed: int, fname: str) -> list[np.ndarray]:
    if dout is None:
        rng = np.random.default_rng(seed + 7919)
        return [rng.standard_normal(p.shape).astype(p.dtype) for _, p in parts]
    given = _flatten_out(dout, "dout")
    if len(given) != len(parts):
        raise GradientStructureError(
            f"dout has {len(given)} array(s), but {fname} returns {len(parts)} ({', '.join(n for n, _ in parts)}).",
            "pass one upstream gradient per output, in the output's structure.",
        )
    out = []
    for (gname, gval), (pname, p) in zip(given, parts, strict=True):
        arr = np.asarray(gval)
        if arr.shape != p.shape:
            raise GradientStructureError(
                f"{gname} has shape {arr.shape}, but {fname}'s output {pname} has shape {p.shape}.",
                "dout must have the shape of the output it is the gradient of.",
            )
        if arr.dtype.kind != "f":
            raise GradientStructureError(f"{gname} has dtype {arr.dtype}; it must be float.", "pass a float array.")
        out.append(arr.copy())
    return out


def _rebuild_like(template: Any, leaves: list[np.ndarray]) -> Any:
    it = iter(leaves)

    def build(t: Any) -> Any:
        if isinstance(t, Mapping):
            return {k: build(v) for k, v in t.items()}
        if isinstance(t, (list, tuple)):
            return type(t)(build(v) for v in t) if not hasattr(t, "_fields") else type(t)(*(build(v) for v in t))
        return next(it)

    return build(template)


def _match_grads(raw: Any, names: list[str], diff_names: list[str], bname: str) -> dict[str, Any]:
    if len(names) == 1 and not isinstance(raw, (list, tuple)):
        raw = (raw,)
    if not isinstance(raw, (list, tuple)):
        raise GradientStructureError(
            f"{bname} returned a {type(raw).__name__}; expected one gradient per input ({', '.join(names)}).",
            "return a tuple such as (dx, dw, db), with None for inputs that are not differentiable.",
        )
    if len(raw) == len(names):
        by_name = dict(zip(names, raw, strict=True))
    elif len(raw) == len(diff_names):
        by_name = dict(zip(diff_names, raw, strict=True))
    else:
        raise GradientStructureError(
            f"{bname} returned {len(raw)} gradient(s), but the layer has {len(names)} input(s) "
            f"({', '.join(names)}), {len(diff_names)} of them differentiable.",
            "return one gradient per input, in forward's parameter order, with None for labels and masks.",
        )
    return {n: by_name.get(n) for n in diff_names}


def assert_layer(*args: Any, **kwargs: Any) -> Report:
    """Like :func:`check_layer`, but raise :class:`GradientMismatch` unless the check passes."""
    report = check_layer(*args, **kwargs)
    if not report.ok:
        raise GradientMismatch(report)
    return report
