"""Step sizes chosen per element from its magnitude and its dtype."""

from __future__ import annotations

from typing import Any

import numpy as np

from backcheck.bits import machine_eps
from backcheck.errors import BadInputError
from backcheck.tree import Tree


def step_base(dtype: Any, order: int = 2) -> float:
    """The relative step that balances truncation (``h**order``) against round-off (``eps / h``).

    For a central difference (order 2) this is ``eps ** (1/3)``: about 6.1e-6 in float64 and 4.9e-3 in
    float32; for a one-sided difference (order 1) it is ``sqrt(eps)``.
    """
    return _base(machine_eps(np.dtype(dtype)), order)


def _base(eps: float, order: int) -> float:
    return float(eps ** (1.0 / (order + 1)))


#: An array whose values sit far from 0 beside their spread (a batch of 100 + N(0, 1), features of mean 1e3) feeds
#: functions that bend on the scale of the spread (a normalization, a softmax, a variance): a Richardson table that
#: starts at |x|'s scale crosses it many times over before it comes near, and can settle on a slope no function has
#: on the way. Its elements' tables start at this many spreads instead ...
SPREADS = 8.0
#: ... but no finer than this share of |x|'s scale (a table halves its way down to the rounding it can bear; a
#: single difference keeps |x|'s scale: finer, f's rounding swamps it).
FINEST_TABLE = 2.0**-10
#: The rule above holds where steps are taken at this precision or coarser (float32, float16): float64's tables
#: resolve |x|'s scale down to the spread's within their rows, and a function rounded at the scale of 1 there
#: (``log(1 + e^x)`` at x of -25 moves in quanta of 1e-16) needs all of their width.
NARROW = 1e-10


def table_scale(tree: Tree, out_eps: float = 0.0) -> np.ndarray:
    """Per element, the size a Richardson table's first step is taken relative to: ``max(|x_i|, 1)``, or in an
    array whose values sit far from 0 beside their spread, ``max(SPREADS * spread, FINEST_TABLE * |x_i|)`` where
    that is smaller and ``|x_i|`` exceeds ``SPREADS``, in arrays whose steps are narrow (their dtype's epsilon, or
    the output's ``out_eps``, at least ``NARROW``; the spread is the least of the array's and its lines', see
    :func:`_spreads`)."""
    out = _magnitudes(tree)
    for leaf in tree.leaves:
        part = out[leaf.offset : leaf.offset + leaf.size]
        if leaf.size < 2 or max(machine_eps(leaf.dtype), out_eps) < NARROW or not float(part.max()) > SPREADS:
            continue  # (one value has no spread)
        spread = _spreads(leaf.original)
        far = (part > SPREADS) & np.isfinite(spread)  # (elements within a few units of 0 keep |x|'s scale)
        part[far] = np.minimum(part[far], np.maximum(SPREADS * spread[far], FINEST_TABLE * part[far]))
    return out


def _spreads(values: np.ndarray) -> np.ndarray:
    """Per element, the least spread (standard deviation of finite values) among the array's and that of each
    line through the element along one axis: a layer norm bends on a row's spread, a batch norm on a column's,
    and a row of three close values beside rows far apart has a spread far below the array's. A line of fewer
    than two finite values says nothing and is passed over; one of equal values has no spread (the tables then
    start at their finest, as for an array of equal values)."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    with np.errstate(invalid="ignore", divide="ignore"):
        whole = float(np.std(v[finite])) if finite.any() else np.nan
        out = np.full(v.size, whole if finite.sum() > 1 else np.inf)
        if v.ndim < 2:
            return out
        w = np.where(finite, v, 0.0)
        for axis in range(v.ndim):
            if v.shape[axis] < 2:
                continue
            count = finite.sum(axis=axis, keepdims=True)
            centred = np.where(finite, w - w.sum(axis=axis, keepdims=True) / count, 0.0)
            line = np.where(count > 1, np.sqrt((centred**2).sum(axis=axis, keepdims=True) / count), np.inf)
            np.fmin(out, np.broadcast_to(line, v.shape).reshape(-1), out=out)
    return out


def _magnitudes(tree: Tree) -> np.ndarray:
    """``max(|x_i|, 1)`` per element, in float64."""
    out = np.empty(tree.size)
    for leaf in tree.leaves:
        part = out[leaf.offset : leaf.offset + leaf.size]
        np.abs(leaf.original.reshape(-1), out=part, casting="unsafe")  # into float64, no temporary
        np.maximum(part, 1.0, out=part)
    return out


def default_steps(tree: Tree, step: Any = None, order: int = 2, out_eps: float = 0.0) -> np.ndarray:
    """One absolute step per element of ``tree``: ``base(eps) * max(|x_i|, 1)``, or the user's ``step``.

    ``eps`` is the element dtype's, or ``out_eps`` (the rounding of the function's output) where that is
    coarser: a float32 loss of float64 parameters resolves differences only at float32's precision, so its
    steps are float32's.

    ``step`` may be one positive number for every element, or an array of ``tree.size`` positive numbers.
    """
    if step is not None:
        arr = _user_steps(step, tree)
        if arr.ndim == 0:
            arr = np.full(tree.size, float(arr))
        if arr.shape != (tree.size,):
            raise BadInputError(
                f"step= has shape {arr.shape}; expected one number or {tree.size} numbers (one per element).",
                "pass a single float such as step=1e-6, or one step per element: flat, shaped as the parameter, or "
                "one array per array checked.",
            )
        if not np.all(np.isfinite(arr) & (arr > 0)):
            raise BadInputError("step= must be finite and positive.", "pass a single float such as step=1e-6.")
        _refuse_lost_steps(tree, arr)
        return arr
    out = _magnitudes(tree)
    for leaf in tree.leaves:
        out[leaf.offset : leaf.offset + leaf.size] *= _base(max(machine_eps(leaf.dtype), out_eps), order)
    return out


def _user_steps(step: Any, tree: Tree) -> np.ndarray:
    """The user's ``step=`` as float64 numbers: one, or one per element (flat, or shaped as the one parameter is,
    or one array per array checked, in order), or :class:`BadInputError`."""
    if isinstance(step, (list, tuple)) and len(step) == len(tree.leaves) and any(np.ndim(s) > 0 for s in step):
        sizes = [np.size(s) for s in step]
        if sizes == [leaf.size for leaf in tree.leaves]:
            step = np.concatenate([np.asarray(s, dtype=np.float64).reshape(-1) for s in step])
    try:
        arr = np.asarray(step, dtype=np.float64)
        shaped = len(tree.leaves) == 1 and arr.ndim > 1 and arr.shape == tree.leaves[0].shape  # (not a transpose)
        return arr.reshape(-1) if shaped else arr
    except (TypeError, ValueError) as exc:
        raise BadInputError(
            f"step= is a {type(step).__name__} that is not one number or a flat list of numbers ({exc}).",
            "pass a single float such as step=1e-6, or an array with one step per element.",
        ) from None


def _refuse_lost_steps(tree: Tree, steps: np.ndarray) -> None:
    """Raise when a user's step is lost when added to (or taken from) its element in the element's dtype:
    no difference could be formed there (1e-30 next to 1.0)."""
    for leaf in tree.leaves:
        x = leaf.original.reshape(-1)
        h = steps[leaf.offset : leaf.offset + leaf.size]
        with np.errstate(over="ignore", invalid="ignore"):
            lost = np.isfinite(x) & (((x + h).astype(leaf.dtype) == x) | ((x - h).astype(leaf.dtype) == x))
        if lost.any():
            k = int(np.flatnonzero(lost)[0])
            need = float(np.spacing(np.abs(x[k]).astype(leaf.dtype)))
            raise BadInputError(
                f"step={h[k]:g} is lost when added to {tree.element_name(leaf.offset + k)} = {x[k]:g}: {leaf.dtype} "
                f"cannot represent the change, so no difference can be formed there.",
                f"pass a step well above {need:.3g} (the spacing of {leaf.dtype} there), or leave step= out to "
                "choose one per element.",
            )


def native_spacing(tree: Tree) -> np.ndarray:
    """Per element of ``tree`` (the point as the user gave it), one unit in the last place of its value in its
    own dtype (0 for an element that is not a float)."""
    flats = [leaf.original.reshape(-1) for leaf in tree.leaves]
    units = [np.abs(np.spacing(x)).astype(np.float64) if x.dtype.kind == "f" else np.zeros(x.size) for x in flats]
    return np.concatenate(units) if units else np.zeros(0)
