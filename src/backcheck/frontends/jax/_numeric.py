"""The numeric side: the dtype the finite differences run in, the evaluated point and its batched form.

Non-finite input entries hold 0 in the trees (the core never sees them) and get their own value back in
every call, so moving them changes nothing; output entries left out are 0 in every evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from backcheck.backends import MAX_ROWS as MAX_BATCH
from backcheck.calls import first_line
from backcheck.frontends.jax._inputs import Inputs, Outputs
from backcheck.frontends.jax._trace import Runner, apply_raw
from backcheck.outputs import nudge_ulp, same_function_tolerance
from backcheck.tree import Tree

#: Numeric dtypes the check can be asked for.
NUMERIC_DTYPES = ("auto", "float64", "float32", "native")


def x64_enabled() -> bool:
    """Whether jax's 64-bit mode (``jax_enable_x64``) is on."""
    return bool(jax.config.read("jax_enable_x64"))


def held_as(dt: Any) -> np.dtype:
    """The numpy dtype the trees hold values of jax dtype ``dt`` in (bfloat16, which numpy lacks: float32,
    which holds every bfloat16 value exactly)."""
    dt = np.dtype(dt)
    return dt if dt in (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)) else np.dtype(np.float32)


def is_bfloat16(dt: Any) -> bool:
    return np.dtype(dt) == np.dtype(jax.numpy.bfloat16)


def tree_of(inputs: Inputs, dtypes: Sequence[Any]) -> Tree:
    """The checked leaves as a tree in ``dtypes``, with 0 standing in for non-finite entries."""
    arrays = {}
    for name, d, m, dt in zip(inputs.names, inputs.diff, inputs.masks, dtypes, strict=True):
        a = np.asarray(d).astype(dt)
        arrays[name] = a if m is None else np.where(m, 0, a).astype(dt)
    return Tree(arrays, "args", in_place=False, bare_keys=True)


#: The float64 function may differ from the user's at the original point by this many times the native
#: forward's own rounding (measured: the change of ``<u, f>`` when every input moves by a unit in the last
#: place) or this many units of the native epsilon of ``sum |u f|``, and still be the same function.
SAME_FUNCTION = 16.0


def choose_dtype(
    numeric_dtype: str, inputs: Inputs, run: Runner, fname: str, outs: Outputs | None = None
) -> tuple[np.dtype, list[str]]:
    """The dtype of the finite differences, and notes on how it was chosen. Turns ``run.wide`` on when the
    numeric side needs x64 mode and the user's jax runs without it.

    'auto' with x64 off takes float64 (x64 mode for the numeric side only) where the function computes the
    same function there: at the original point ``<u, f>`` agrees with the user's run up to that run's rounding
    (a function that draws random numbers, or takes another path, in float64 computes another function);
    else float32, with a note saying why."""
    low = held_as(min((np.dtype(dt) for dt in inputs.natives), key=lambda d: d.itemsize))
    if numeric_dtype == "native":
        return low, []
    if numeric_dtype == "float32":
        return np.dtype(np.float32), []
    reason = _float64_refused(inputs, run, fname)
    if not reason and numeric_dtype == "auto" and not x64_enabled() and outs is not None:
        reason = _another_function(inputs, run, fname, outs)
    if reason:
        run.wide = False
        fallback = low if numeric_dtype != "auto" or x64_enabled() else np.dtype(np.float32)
        return fallback, [f"{reason}, so the finite differences run in {fallback}."]
    if run.wide:
        return np.dtype(np.float64), [
            "jax's x64 mode was on for the finite differences only (float64); the rule under test ran as you "
            "run it, with x64 off."
        ]
    return np.dtype(np.float64), []


def _float64_refused(inputs: Inputs, run: Runner, fname: str) -> str:
    """Why the function cannot be evaluated in float64 ('' when it can); turns ``run.wide`` on with x64 off."""
    run.wide = not x64_enabled()
    wide = [np.asarray(d).astype(np.float64) for d in inputs.diff]
    try:
        with run.numeric_mode():
            try:
                outs = jax.eval_shape(lambda *d: apply_raw(run, d), *wide)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception:  # a function jax cannot trace abstractly is run once, eagerly, on jax arrays
                outs = apply_raw(run, [jax.numpy.asarray(w) for w in wide])
        bad = [o.dtype for o in outs if np.dtype(o.dtype) != np.dtype(np.float64)]
        return f"{fname} returns {bad[0]} for float64 inputs" if bad else ""
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # a function that refuses float64 is checked at its own dtype
        return f"{fname} raised {type(exc).__name__} on float64 inputs ({first_line(exc)}){_x64_mix(exc)}"


def _x64_mix(exc: Exception) -> str:
    """A clause for jax's failure to mix the int32 arrays it made with x64 off and int64 ones ('' otherwise)."""
    if "int32" not in str(exc) or "int64" not in str(exc):
        return ""
    return (
        " (jax's x64 mode, switched on for the differences, mixes int32 arrays jax made with x64 off and int64 "
        "ones: a numpy index array the function closes over; make it a jnp array, or turn x64 on before the "
        "check, to have float64 differences)"
    )


def _another_function(inputs: Inputs, run: Runner, fname: str, outs: Outputs) -> str:
    """Why the float64 function is another one than the user's at the original point ('' when the same)."""
    u = [np.asarray(c, dtype=np.float64) for c in outs.u]

    def phi(values: Sequence[Any]) -> tuple[float, float]:
        ys = [np.where(np.isfinite(y), y, 0.0) for y in (np.asarray(o, dtype=np.float64) for o in values)]
        return (
            sum(float(np.sum(uu * y)) for uu, y in zip(u, ys, strict=True)),
            sum(float(np.sum(np.abs(uu * y))) for uu, y in zip(u, ys, strict=True)),
        )

    try:
        native, size = phi(run.apply_as_user(inputs.diff))
        gen = np.random.default_rng(0)
        nudged = [nudge(d, gen) for d in inputs.diff]
        moved = abs(phi(run.apply_as_user(nudged))[0] - native)
        with run.numeric_mode():
            wide, _ = phi(run.apply([np.asarray(d).astype(np.float64) for d in inputs.diff]))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # the baseline names the failure; here it only keeps float32
        return f"{fname} raised {type(exc).__name__} at the original point ({first_line(exc)}){_x64_mix(exc)}"
    eps = max(float(jax.numpy.finfo(dt).eps) for dt in inputs.natives)
    if abs(wide - native) <= max(SAME_FUNCTION * moved, same_function_tolerance(eps) * size):
        return ""
    return (
        f"{fname} in float64 is another function than as you run it (<dout, output> {wide:.6g} against "
        f"{native:.6g} at the original point, beyond rounding: random draws or another path in x64 mode)"
    )


def nudge(d: Any, gen: np.random.Generator) -> np.ndarray:
    """A copy of ``d`` with every element moved by one unit in the last place of its dtype (bfloat16's too)."""
    a = np.array(d, copy=True)
    nudge_ulp(a, gen, float(jax.numpy.finfo(a.dtype).eps))
    return a


def _fills(inputs: Inputs, dtypes: Sequence[Any]) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """Per checked leaf: (mask, original values in the numeric dtype) where it has non-finite entries."""
    return [
        None if m is None else (m, np.asarray(d).astype(dt))
        for d, m, dt in zip(inputs.diff, inputs.masks, dtypes, strict=True)
    ]


def _refill(values: Sequence[np.ndarray], fills: Sequence[Any]) -> list[np.ndarray]:
    return [v if f is None else np.where(f[0], f[1], v).astype(v.dtype) for v, f in zip(values, fills, strict=True)]


def _clean(values: Sequence[Any], outs: Outputs) -> list[np.ndarray]:
    return [
        np.asarray(o) if m is None else np.where(m, 0, np.asarray(o)) for o, m in zip(values, outs.masks, strict=True)
    ]


def caller(run: Runner, inputs: Inputs, outs: Outputs, point: Tree) -> Callable[[Any], list[np.ndarray]]:
    """``call(point.current())``: the function's float outputs at the point, as numpy arrays."""
    fills = _fills(inputs, [lf.dtype for lf in point.leaves])

    def call(current: Any) -> list[np.ndarray]:
        return _clean(run.apply(_refill([np.asarray(v) for v in current.values()], fills)), outs)

    return call


def batcher(run: Runner, inputs: Inputs, outs: Outputs, point: Tree) -> Callable[[np.ndarray], list[np.ndarray]]:
    """``batch(X)``: the outputs at the rows of ``X`` (points x elements), each with a leading batch axis,
    padded to one width so jax compiles one shape."""
    fills = _fills(inputs, [lf.dtype for lf in point.leaves])
    width = int(min(MAX_BATCH, 1 << max(2 * point.size, 1).bit_length()))
    base = np.concatenate([lf.original.reshape(-1).astype(np.float64) for lf in point.leaves])

    def batched(X: np.ndarray, k: int | None) -> list[np.ndarray]:
        """The outputs at the rows of ``X``: every leaf batched, or only leaf ``k`` (the others at the point)."""
        rows = X.shape[0]
        pad = np.concatenate([X, np.repeat(X[:1], width - rows, axis=0)]) if rows < width else X
        leaves = [
            (pad[:, lf.offset : lf.offset + lf.size] if k in (None, j) else pad[0, lf.offset : lf.offset + lf.size])
            .reshape(((pad.shape[0],) if k in (None, j) else ()) + lf.shape)
            .astype(lf.dtype)
            for j, lf in enumerate(point.leaves)
        ]
        axes = None if k is None else tuple(0 if j == k else None for j in range(len(leaves)))
        return [o[:rows] for o in _clean(run.batched(_refill(leaves, fills), axes), outs)]

    def batch(X: np.ndarray) -> list[np.ndarray]:
        # each row moves one element: rows are batched leaf by leaf, the other leaves shared (a conv batched over
        # its input and its weights at once runs XLA's batched-weights path, ten times slower than either alone)
        which = _moved_leaf(X, base, point)
        if len(point.leaves) == 1 or which is None:
            return batched(X, None)
        parts: list[np.ndarray] | None = None
        home = max(int(which.max()), 0)  # the leaf whose batch also evaluates the rows at the point itself
        for k in np.unique(which[which >= 0]).tolist() or [0]:
            sel = np.flatnonzero((which == k) | ((which < 0) & (k == home)))
            got = batched(X[sel], k)
            if parts is None:
                parts = [np.empty((X.shape[0], *o.shape[1:]), dtype=o.dtype) for o in got]
            for p, o in zip(parts, got, strict=True):
                p[sel] = o
        assert parts is not None
        return parts

    return batch


def _moved_leaf(X: np.ndarray, base: np.ndarray, point: Tree) -> np.ndarray | None:
    """Per row of ``X``, the leaf whose values differ from the point's (-1: none); None where a row moves
    several leaves (then every leaf is batched)."""
    moved = (X != base) & ~(np.isnan(X) & np.isnan(base))
    which = np.full(X.shape[0], -1)
    for k, lf in enumerate(point.leaves):
        here = moved[:, lf.offset : lf.offset + lf.size].any(axis=1)
        if (here & (which >= 0)).any():
            return None
        which[here] = k
    return which
