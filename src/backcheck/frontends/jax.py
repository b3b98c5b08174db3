"""JAX frontend: check ``jax.vjp`` (``custom_vjp`` rules) and ``jax.jvp`` (``custom_jvp`` rules) against
finite differences of the same function.

A function ``fn(*args) -> pytree of arrays`` is reduced to the core contract by a cotangent ``dout``: the
checked scalar is ``phi = <dout, fn(*args)>``. Reverse mode claims its gradient is ``vjp(dout)``; forward mode
claims ``<dout, jvp(e_i)>`` for every input element ``i`` (computed with ``jax.vmap`` over basis tangents), so
both are judged element by element against the same numeric derivatives.

Inputs are pytrees; every floating array leaf is checked (``argnums`` narrows it to some arguments) and named
by its path, ``params['w'][2]``; python scalars, strings and integer arrays are passed through unchanged. The
numeric side calls ``jax.jit(fn)`` (compiled once per function, shapes and dtypes, and shared by later checks
of the same function) with numpy arrays, and evaluates the first differences in batches with ``jax.vmap``.
It runs in float64 when jax's x64 mode is on; otherwise in float32, which the report's notes say.
``numeric_dtype='float64'`` turns x64 on for the duration of one check and restores it afterwards.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from backcheck.api import check_finite
from backcheck.errors import (
    BackcheckError,
    BadInputError,
    GradientStructureError,
    NonFiniteError,
    UserFunctionError,
)
from backcheck.evaluate import Output
from backcheck.frontends.common import (
    JVP_PREFIX,
    MAX_BATCH,
    CachedEvaluator,
    Section,
    arg_names,
    default_cotangent,
    prefetch_first_differences,
    report_sections,
)
from backcheck.numeric.grad import function_name
from backcheck.report import Finding, Report
from backcheck.tree import Tree

__all__ = ["check", "x64_enabled"]

#: Basis tangents pushed through ``jax.jvp`` per compiled call in forward mode.
FWD_BATCH = 64
_STATIC = (0, 1, 2, 3, 4)


def x64_enabled() -> bool:
    """Whether jax's 64-bit mode (``jax_enable_x64``) is on."""
    return bool(jax.config.read("jax_enable_x64"))


# -- the function of the differentiable leaves and its transformations (module level, so jit caches them) ---
def _merge(layout: tuple[str, ...], diff: Sequence[Any], arrays: Sequence[Any], statics: tuple[Any, ...]) -> list:
    di, ai, si = iter(diff), iter(arrays), iter(statics)
    return [next(di) if k == "d" else next(ai) if k == "a" else next(si) for k in layout]


def _apply(
    fn: Callable[..., Any],
    treedef: Any,
    layout: tuple[str, ...],
    statics: tuple[Any, ...],
    out_sel: tuple[int, ...],
    diff: Sequence[Any],
    arrays: Sequence[Any],
) -> tuple[Any, ...]:
    args = jax.tree_util.tree_unflatten(treedef, _merge(layout, diff, arrays, statics))
    leaves = jax.tree_util.tree_leaves(fn(*args))
    return tuple(leaves[i] for i in out_sel)


def _batched(
    fn: Callable[..., Any],
    treedef: Any,
    layout: tuple[str, ...],
    statics: tuple[Any, ...],
    out_sel: tuple[int, ...],
    diff: Sequence[Any],
    arrays: Sequence[Any],
) -> tuple[Any, ...]:
    return jax.vmap(lambda *d: _apply(fn, treedef, layout, statics, out_sel, d, arrays))(*diff)


def _rev(
    fn: Callable[..., Any],
    treedef: Any,
    layout: tuple[str, ...],
    statics: tuple[Any, ...],
    out_sel: tuple[int, ...],
    diff: Sequence[Any],
    arrays: Sequence[Any],
    cot: Sequence[Any],
) -> tuple:
    _, pull = jax.vjp(lambda *d: _apply(fn, treedef, layout, statics, out_sel, d, arrays), *diff)
    return pull(tuple(cot))


def _fwd(
    fn: Callable[..., Any],
    treedef: Any,
    layout: tuple[str, ...],
    statics: tuple[Any, ...],
    out_sel: tuple[int, ...],
    diff: Sequence[Any],
    arrays: Sequence[Any],
    tangents: Sequence[Any],
) -> tuple:
    def one(*t: Any) -> tuple[Any, ...]:
        return jax.jvp(lambda *d: _apply(fn, treedef, layout, statics, out_sel, d, arrays), tuple(diff), t)[1]

    return jax.vmap(one)(*tangents)


_jit_apply = jax.jit(_apply, static_argnums=_STATIC)
_jit_batched = jax.jit(_batched, static_argnums=_STATIC)
_jit_rev = jax.jit(_rev, static_argnums=_STATIC)
_jit_fwd = jax.jit(_fwd, static_argnums=_STATIC)


class _Runner:
    """Calls the compiled transformations, or the plain ones for a function jit cannot trace."""

    def __init__(
        self,
        fn: Callable[..., Any],
        treedef: Any,
        layout: tuple[str, ...],
        statics: tuple[Any, ...],
        arrays: Sequence[Any],
        fname: str,
        use_jit: bool,
    ):
        self.fn, self.treedef, self.layout, self.statics, self.fname = fn, treedef, layout, statics, fname
        self.arrays = tuple(arrays)
        self.out_sel: tuple[int, ...] = ()
        self.jit = use_jit
        self.notes: list[str] = []

    def _run(self, jitted: Callable[..., Any], plain: Callable[..., Any], *rest: Any) -> Any:
        head = (self.fn, self.treedef, self.layout, self.statics, self.out_sel)
        if self.jit:
            try:
                return jitted(*head, *rest)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # noqa: BLE001 - a function jit cannot trace runs eagerly
                self.jit = False
                self.notes.append(
                    f"jax.jit could not compile {self.fname} ({type(exc).__name__}: "
                    f"{str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ''}); "
                    "it was run without jit (slower)."
                )
        return plain(*head, *rest)

    def apply(self, diff: Sequence[Any]) -> tuple[Any, ...]:
        return self._run(_jit_apply, _apply, tuple(diff), self.arrays)

    def batched(self, diff: Sequence[Any]) -> tuple[Any, ...]:
        return self._run(_jit_batched, _batched, tuple(diff), self.arrays)

    def rev(self, diff: Sequence[Any], cot: Sequence[Any]) -> tuple[Any, ...]:
        return self._run(_jit_rev, _rev, tuple(diff), self.arrays, tuple(cot))

    def fwd(self, diff: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, ...]:
        return self._run(_jit_fwd, _fwd, tuple(diff), self.arrays, tuple(tangents))


def _user(fn: Callable[..., Any], what: str, *args: Any) -> Any:
    try:
        return fn(*args)
    except (KeyboardInterrupt, SystemExit, BackcheckError):
        raise
    except Exception as exc:
        raise UserFunctionError(
            f"{what} raised {type(exc).__name__}: {exc}",
            "the original exception is chained above; the inputs are unchanged.",
        ) from exc


def _is_array(x: Any) -> bool:
    return isinstance(x, (np.ndarray, np.generic, jax.Array))


def _is_float_dtype(dt: Any) -> bool:
    return bool(jnp.issubdtype(dt, jnp.floating))


def _np_real(dt: Any) -> Any:
    """The numpy dtype that holds values of jax dtype ``dt`` for the trees (bfloat16 has none: None)."""
    dt = np.dtype(dt)
    return dt if dt in (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)) else None


def _f64(x: Any) -> np.ndarray:
    return np.asarray(x).astype(np.float64)


def check(
    fn: Callable[..., Any],
    *args: Any,
    dout: Any = None,
    argnums: int | Sequence[int] | None = None,
    mode: str = "rev",
    strategy: str | None = None,
    samples: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    step: Any = None,
    seed: int = 0,
    numeric_dtype: str = "auto",
    vectorized: bool | str = True,
    curves: bool = False,
) -> Report:
    """Check jax's derivatives of ``fn`` (``custom_vjp`` / ``custom_jvp`` rules in it) by finite differences.

    Parameters
    ----------
    fn : callable
        ``fn(*args) -> array or pytree of arrays``; may be ``jax.jit``-ed. Integer outputs are ignored.
    *args
        The point: arrays or pytrees (dicts, lists, tuples) of arrays. Every floating array leaf is checked,
        named by its path (``params['w'][2]``); other leaves are passed through unchanged.
    dout : array or pytree like the output, optional
        The output cotangent. Default: 1 for a single scalar output (the gradient itself is checked), else a
        seeded standard normal array in each output's dtype.
    argnums : int or sequence of int, optional
        Check only these arguments (the others are passed through).
    mode : {'rev', 'fwd', 'both'}
        What is checked: ``jax.vjp`` (reverse mode, ``custom_vjp``), ``jax.jvp`` (forward mode,
        ``custom_jvp``),
        or both (the forward-mode leaves are then named ``jvp:<name>``). The numeric side is shared.
    strategy, samples, atol, rtol, step, seed, curves
        As in :func:`backcheck.check`.
    numeric_dtype : {'auto', 'float64', 'float32', 'native'}
        'auto' evaluates the finite differences in float64 when jax's x64 mode is on (falling back to the
        inputs' dtype if ``fn`` does not return float64), else in float32. 'float64' turns x64 on for this
        check only. The analytic side always runs, and is judged, at the inputs' own dtypes.
    vectorized : bool or 'auto'
        Evaluate the first differences in batches with ``jax.jit(jax.vmap(fn))``; falls back to one point at a
        time if that fails. Verdicts and evaluation counts are the same either way.

    Returns
    -------
    Report

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import backcheck.jax as bj
    >>> @jax.custom_vjp
    ... def softplus(x):
    ...     return jnp.logaddexp(x, 0.0)
    >>> softplus.defvjp(lambda x: (softplus(x), x), lambda x, g: (g * jax.nn.sigmoid(x),))
    >>> bj.check(lambda x: softplus(x).sum(), jnp.linspace(-3.0, 3.0, 7)).ok
    True
    """
    if mode not in ("rev", "fwd", "both"):
        raise BadInputError(f"mode={mode!r}.", "use 'rev', 'fwd' or 'both'.")
    if numeric_dtype not in ("auto", "float64", "float32", "native"):
        raise BadInputError(f"numeric_dtype={numeric_dtype!r}.", "use 'auto', 'float64', 'float32' or 'native'.")
    x64 = numeric_dtype == "float64" and not x64_enabled()
    with jax.enable_x64(True) if x64 else contextlib.nullcontext():
        report = _check(
            fn, args, dout, argnums, mode, strategy, samples, atol, rtol, step, seed, numeric_dtype, vectorized, curves
        )  # fmt: skip
    if x64:
        report.notes.append("jax's x64 mode was turned on for this check (numeric_dtype='float64') and is off again.")
    return report


def _check(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    dout: Any,
    argnums: Any,
    mode: str,
    strategy: str | None,
    samples: int | None,
    atol: float | None,
    rtol: float | None,
    step: Any,
    seed: int,
    numeric_dtype: str,
    vectorized: bool | str,
    curves: bool,
) -> Report:
    started = time.perf_counter()
    fname = function_name(fn)
    names = arg_names(fn, len(args))
    wanted = None if argnums is None else ({argnums} if isinstance(argnums, int) else set(argnums))
    if wanted is not None and not wanted <= set(range(len(args))):
        raise BadInputError(
            f"argnums={argnums!r}, but {fname} gets {len(args)} argument(s).",
            f"choose among 0..{len(args) - 1}.",
        )
    with_path, treedef = jax.tree_util.tree_flatten_with_path(tuple(args))
    layout, diff, arrays, statics, leaf_names = [], [], [], [], []
    for path, leaf in with_path:
        k = path[0].idx
        name = names[k] + jax.tree_util.keystr(tuple(path[1:]))
        if _is_array(leaf) and (wanted is None or k in wanted) and jnp.issubdtype(leaf.dtype, jnp.complexfloating):
            raise BadInputError(
                f"{name} is complex ({leaf.dtype}); backcheck.jax checks real arrays.",
                "split it into real and imaginary parts, or pass it through argnums.",
            )
        if _is_array(leaf) and _is_float_dtype(leaf.dtype) and (wanted is None or k in wanted):
            layout.append("d")
            # numpy leaves stay numpy (jnp.asarray would compile a copy), in the dtype jax computes them in
            diff.append(
                leaf
                if isinstance(leaf, jax.Array)
                else np.asarray(leaf).astype(jax.dtypes.canonicalize_dtype(leaf.dtype))
            )
            leaf_names.append(name)
        elif _is_array(leaf):
            layout.append("a")
            arrays.append(leaf)
        else:
            layout.append("s")
            statics.append(leaf)
    if not diff:
        raise BadInputError(
            f"none of {fname}'s arguments holds a floating-point array to differentiate.",
            "pass float arrays (python scalars and integer arrays are passed through).",
        )
    try:
        hash(tuple(statics))
        use_jit = True
    except TypeError:
        use_jit = False
    run = _Runner(fn, treedef, tuple(layout), tuple(statics), arrays, fname, use_jit)
    notes: list[str] = []
    if not use_jit:
        notes.append(
            "an argument holds an unhashable non-array leaf, so jax.jit cannot cache the function; it "
            "was run without jit (slower)."
        )

    # output structure and cotangent
    shapes = _output_structure(fn, treedef, tuple(layout), tuple(statics), diff, arrays, fname)
    out_sel = tuple(i for i, s in enumerate(shapes) if _is_float_dtype(s.dtype))
    for i, s in enumerate(shapes):
        if jnp.issubdtype(s.dtype, jnp.complexfloating):
            raise BadInputError(
                f"{fname}'s output {i} is complex; backcheck.jax checks real outputs.",
                "return the real and imaginary parts as two outputs.",
            )
    if not out_sel:
        raise BadInputError(f"{fname} returns no floating-point array.", "return a float array.")
    run.out_sel = out_sel
    outs = [shapes[i] for i in out_sel]
    out_names = [f"out[{i}]" if len(shapes) > 1 else "out" for i in out_sel]
    out_shapes = [tuple(s.shape) for s in outs]
    cot = _cotangent(dout, shapes, out_sel, seed, fname)
    u_parts = [_f64(c) for c in cot]

    # the analytic side, at the inputs' own dtypes
    natives = [d.dtype for d in diff]
    rep_arrays, stand_in = {}, []
    for name, d in zip(leaf_names, diff, strict=True):
        np_dt = _np_real(d.dtype)
        if np_dt is None:
            np_dt = np.dtype(np.float16)
            stand_in.append(name)
        rep_arrays[name] = np.asarray(d).astype(np_dt)
    rep_tree = Tree(rep_arrays, "args", in_place=False, bare_keys=True)

    def native_point(point: Sequence[np.ndarray] | None) -> list[Any]:
        if point is None:
            return diff
        return [np.asarray(p).astype(dt) for p, dt in zip(point, natives, strict=True)]

    def reverse(point: Sequence[np.ndarray] | None = None) -> np.ndarray:
        grads = _user(run.rev, f"jax.vjp of {fname}", native_point(point), cot)
        return np.concatenate([_f64(gr).reshape(-1) for gr in grads])

    def forward(point: Sequence[np.ndarray] | None = None) -> np.ndarray:
        prim = native_point(point)
        n = rep_tree.size
        res = np.empty(n)
        for start in range(0, n, FWD_BATCH):
            rows = np.arange(start, min(start + FWD_BATCH, n))
            basis = np.zeros((FWD_BATCH, n))
            basis[np.arange(rows.size), rows] = 1.0
            tangents = [
                basis[:, lf.offset : lf.offset + lf.size].reshape((FWD_BATCH, *lf.shape)).astype(dt)
                for lf, dt in zip(rep_tree.leaves, natives, strict=True)
            ]
            touts = _user(run.fwd, f"jax.jvp of {fname}", prim, tangents)
            total = np.zeros(FWD_BATCH)
            for t, u in zip(touts, u_parts, strict=True):
                total += _f64(t).reshape(FWD_BATCH, -1) @ u.reshape(-1)
            res[rows] = total[: rows.size]
        return res

    sections: list[Section] = []
    if mode in ("rev", "both"):
        g = reverse()
        check_finite(rep_tree, g, f"gradient jax.vjp computes through {fname}")
    if mode in ("fwd", "both"):
        g_fwd = forward()
        check_finite(rep_tree, g_fwd, f"forward-mode (jvp) derivative of {fname}")

    # the numeric side
    real, why = _numeric_dtype(numeric_dtype, natives, run, diff, fname)
    notes.extend(why)
    same = all(np.dtype(dt) == real for dt in natives)
    ev_tree = (
        rep_tree
        if same
        else Tree(
            {n: np.asarray(d).astype(real) for n, d in zip(leaf_names, diff, strict=True)},
            "args",
            in_place=False,
            bare_keys=True,
        )
    )

    def call(current: Any) -> list[np.ndarray]:
        return [np.asarray(o) for o in run.apply([np.asarray(v) for v in current.values()])]

    ev = CachedEvaluator(ev_tree, call, Output.cotangent(fname, u_parts, out_names, out_shapes, lambda o: o), fname)
    ev.baseline()
    findings: list[Finding] = []
    if stand_in:
        notes.append(
            f"{', '.join(stand_in)} are bfloat16, which numpy lacks: their gradients are judged at "
            "float16 resolution (8x finer than bfloat16's)."
        )
    if vectorized not in (True, False, "auto"):
        raise BadInputError(f"vectorized={vectorized!r}.", "use True, False or 'auto'.")
    if vectorized:
        points = 2 * ev_tree.size + 1
        width = int(min(MAX_BATCH, 1 << max(points - 1, 1).bit_length()))

        def batch(X: np.ndarray) -> list[np.ndarray]:
            rows = X.shape[0]
            pad = np.concatenate([X, np.repeat(X[:1], width - rows, axis=0)]) if rows < width else X
            leaves = [
                pad[:, lf.offset : lf.offset + lf.size].reshape((pad.shape[0], *lf.shape)).astype(lf.dtype)
                for lf in ev_tree.leaves
            ]
            return [np.asarray(o)[:rows] for o in run.batched(leaves)]

        if prefetch_first_differences(
            ev,
            strategy=strategy,
            samples=samples,
            seed=seed,
            step=step,
            batch=batch,
            notes=notes,
            what="vectorized evaluation (jax.vmap)",
        ):
            notes.append(f"first differences evaluated in batches with jax.vmap ({ev.n_prefetched} points).")

    if mode in ("rev", "both"):
        sections.append(Section(g, reverse))
    if mode == "fwd":
        sections.append(
            Section(
                g_fwd,
                forward,
                note="the analytic side is forward mode: <dout, jax.jvp(fn, e_i)> for every "
                "element (custom_jvp rules).",
            )
        )
    if mode == "both":
        sections.append(
            Section(
                g_fwd,
                forward,
                JVP_PREFIX,
                note=f"forward mode checked too: the leaves {JVP_PREFIX}<name> compare jax.jvp "
                "(custom_jvp rules) with the same finite differences.",
            )
        )
    report = report_sections(
        title=fname,
        kind="jax",
        tree=rep_tree,
        ev=ev,
        sections=sections,
        strategy=strategy,
        samples=samples,
        atol=atol,
        rtol=rtol,
        step=step,
        seed=seed,
        findings=findings,
        notes=notes + run.notes,
        started=started,
        curves=curves,
        root="args",
    )
    dtypes = {n: str(np.dtype(dt)) for n, dt in zip(leaf_names, natives, strict=True)}
    for lf in report.leaves:
        base = lf.name[len(JVP_PREFIX) :] if lf.name.startswith(JVP_PREFIX) else lf.name
        lf.dtype = dtypes.get(base, lf.dtype)
    return report


def _output_structure(
    fn: Callable[..., Any],
    treedef: Any,
    layout: tuple[str, ...],
    statics: tuple[Any, ...],
    diff: Sequence[Any],
    arrays: Sequence[Any],
    fname: str,
) -> list[Any]:
    def all_outputs(*d: Any) -> list[Any]:
        args = jax.tree_util.tree_unflatten(treedef, _merge(layout, d, arrays, statics))
        return jax.tree_util.tree_leaves(fn(*args))

    try:
        return list(jax.eval_shape(all_outputs, *diff))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception:  # noqa: BLE001 - a function that cannot be traced abstractly is run once
        outs = _user(all_outputs, fname, *diff)
        return [jax.ShapeDtypeStruct(np.shape(o), jnp.asarray(o).dtype) for o in outs]


def _cotangent(dout: Any, shapes: list[Any], out_sel: tuple[int, ...], seed: int, fname: str) -> list[Any]:
    outs = [shapes[i] for i in out_sel]
    if dout is None:
        us = default_cotangent([tuple(s.shape) for s in outs], seed, [False] * len(outs))
    else:
        given = jax.tree_util.tree_leaves(dout)
        if len(given) == len(shapes) and len(shapes) != len(outs):
            given = [given[i] for i in out_sel]
        if len(given) != len(outs):
            raise GradientStructureError(
                f"dout has {len(given)} array(s), but {fname} returns {len(outs)} float output(s).",
                "pass one cotangent per float output, in the output's structure.",
            )
        us = []
        for k, (gv, s) in enumerate(zip(given, outs, strict=True)):
            arr = np.asarray(gv)
            if arr.shape != tuple(s.shape):
                raise GradientStructureError(
                    f"dout[{k}] has shape {arr.shape}, but the output has shape {tuple(s.shape)}.",
                    "dout must have the shape of its output.",
                )
            us.append(arr.astype(np.float64))
    for u in us:
        if not np.all(np.isfinite(u)):
            raise NonFiniteError("dout contains NaN or Inf.", "pass a finite cotangent.")
    return [np.asarray(u).astype(s.dtype) for u, s in zip(us, outs, strict=True)]  # numpy: no device copy op


def _numeric_dtype(
    numeric_dtype: str, natives: list[Any], run: _Runner, diff: Sequence[Any], fname: str
) -> tuple[np.dtype, list[str]]:
    """The dtype of the finite differences, and notes on how it was chosen."""
    lowest = min((np.dtype(dt) for dt in natives), key=lambda d: d.itemsize)
    low_native = _np_real(lowest) or np.dtype(np.float32)
    x64 = x64_enabled()
    notes: list[str] = []
    if numeric_dtype == "native":
        return low_native, notes
    if numeric_dtype == "float32" or (numeric_dtype == "auto" and not x64):
        if numeric_dtype == "auto":
            notes.append(
                "jax's x64 mode is off, so the finite differences run in float32 and are judged at "
                "float32 resolution (a subtle error can pass); turn on jax_enable_x64, or pass "
                "numeric_dtype='float64', for float64 finite differences."
            )
        return np.dtype(np.float32), notes
    # float64: the function must accept float64 and keep it (traced only; the evaluator compiles it later)
    wide = [np.asarray(d).astype(np.float64) for d in diff]
    head = (run.fn, run.treedef, run.layout, run.statics, run.out_sel)
    try:
        try:
            outs = jax.eval_shape(lambda *d: _apply(*head, d, run.arrays), *wide)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception:  # noqa: BLE001 - a function jax cannot trace abstractly is run once, eagerly
            outs = _apply(*head, wide, run.arrays)
        bad = [o.dtype for o in outs if np.dtype(o.dtype) != np.dtype(np.float64)]
        reason = f"{fname} returns {bad[0]} for float64 inputs" if bad else ""
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - a function that refuses float64 is checked at its own dtype
        reason = f"{fname} raised {type(exc).__name__} on float64 inputs"
    if reason:
        notes.append(f"{reason}, so the finite differences run in {low_native}.")
        return low_native, notes
    return np.dtype(np.float64), notes
