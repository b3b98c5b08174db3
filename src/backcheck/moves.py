"""Writing a step along a direction into the point's arrays, and what it actually moved.

A move of ``x0 + s * c`` is rounded to the array's dtype; its actual displacement (the rounded value minus
``x0``, exact in float64) is what the analytic side is weighed with. A run of consecutive float64 elements is
written in place, and the difference of a pair of its displacements can be reduced to dot products on the way
(:func:`move_pair`), never written out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from backcheck.bits import dot
from backcheck.tree import Leaf, Tree, flat_view

#: Weights are dotted with the difference of a pair of moves' displacements, never more steps' (see
#: :func:`move_pair`).
PAIR_ONLY = "weights are dotted with the difference of a pair of steps' displacements"

#: Elements moved at a time by :func:`move_pair` (its displacements stay in a core's cache).
DOTS_CHUNK = 1 << 15


def in_place(group: tuple[Any, ...]) -> bool:
    """Whether a group's move is written in place (one float64 run of its array)."""
    leaf, local, _c, flat, _x0, _native = group
    return leaf.dtype == np.float64 and isinstance(local, slice) and isinstance(flat, np.ndarray)


def _step(xs: np.ndarray, cs: np.ndarray, s: float, out: np.ndarray) -> np.ndarray:
    """``xs + s * cs`` rounded to float64, into ``out`` (one pass for a step of +-1)."""
    if s in (1.0, -1.0):
        return (np.add if s > 0 else np.subtract)(xs, cs, out=out)
    np.multiply(cs, s, out=out)
    out += xs
    return out


def move_pair(group: tuple[Any, ...], steps: tuple[float, float], weights: Sequence[np.ndarray]) -> list[float]:
    """Write ``x0 + s * c`` for the first of a pair of ``steps`` into one float64 run (as :func:`move`) and return
    the dot product of each of ``weights`` with the difference of the pair's actual displacements, a chunk at a
    time: the displacements are never written out, and each chunk of ``x0``, ``c`` and the weights is read once
    (the second step is written by :func:`write_step`). That difference is the two moved points' own, rounded
    once: each displacement is exact, so ``(x0 + s0 c) - (x0 + s1 c)`` rounds as their difference does."""
    _leaf, local, c, flat, x0, _native = group
    new = flat[local]
    n = c.size
    other = np.empty(min(n, DOTS_CHUNK))
    sums = [0.0] * len(weights)
    with np.errstate(invalid="ignore", over="ignore"):
        for a in range(0, n, DOTS_CHUNK):
            b = min(a + DOTS_CHUNK, n)
            xs, cs, t = x0[a:b], c[a:b], other[: b - a]
            first = _step(xs, cs, steps[0], new[a:b])
            np.subtract(first, _step(xs, cs, steps[1], t), out=t)
            for j, w in enumerate(weights):
                sums[j] += dot(w[a:b], t)
    return sums


def pair_dots(disps: Sequence[np.ndarray], weights: Sequence[np.ndarray]) -> list[float]:
    """The dot product of each of ``weights`` with the difference of a pair of displacements written out (as
    :func:`move_pair` gives it; the first displacement is overwritten with it)."""
    if len(disps) != 2:
        raise ValueError(PAIR_ONLY)
    diff = np.subtract(disps[0], disps[1], out=disps[0])
    return [dot(w, diff) for w in weights]


def write_step(group: tuple[Any, ...], s: float) -> None:
    """Write ``x0 + s * c`` into one float64 run (the second step of :func:`move_pair`)."""
    _leaf, local, c, flat, x0, _native = group
    with np.errstate(invalid="ignore", over="ignore"):
        _step(x0, c, s, flat[local])


def move(group: tuple[Any, ...], keep: np.ndarray | None, s: float, out: np.ndarray | None = None) -> np.ndarray:
    """Write ``x0 + s * c`` (rounded to the array's dtype) into one group's elements; return the actual
    displacement in float64 (0 at the ``keep`` entries, which stay put), in ``out`` when given."""
    leaf, local, c, flat, x0, native = group
    with np.errstate(invalid="ignore", over="ignore"):
        if keep is None and in_place(group):  # a float64 run: written in place, no temporary
            return np.subtract(_step(x0, c, s, flat[local]), x0, out=out)
        new = np.multiply(c, s)
        np.add(new, x0, out=new)
        if leaf.dtype != np.float64:
            new = new.astype(leaf.dtype)  # the value the array can hold
    if keep is not None:
        new[keep] = native[keep]
    flat[local] = new
    if keep is None:
        return np.subtract(new, x0, dtype=np.float64, out=out)
    disp = np.zeros(x0.shape) if out is None else out
    disp[keep] = 0.0
    return np.subtract(new, x0, dtype=np.float64, where=~keep, out=disp)


#: A direction's part in one leaf: (leaf, local index or slice, coefficients, flat view of the leaf's working
#: array, x0 as float64, x0 as stored).
Group = tuple[Leaf, Any, np.ndarray, Any, np.ndarray, np.ndarray]


def split(tree: Tree, idx: Any, coef: np.ndarray, shifted: bool) -> list[Group]:
    """Split a sparse direction by leaf (see :data:`Group`). ``idx`` may be a slice of flat positions within one
    leaf (a whole array's direction); ``shifted``: the point is moved off the original (its values are copied)."""
    if isinstance(idx, slice):
        group = _run(tree, idx, np.asarray(coef, dtype=np.float64), shifted)
        if group is not None:
            return [group]
        idx = np.arange(idx.start, idx.stop)
    idx = np.asarray(idx)
    coef = np.asarray(coef, dtype=np.float64)
    if idx.size > 1 and not bool(np.all(idx[1:] > idx[:-1])):
        order = np.argsort(idx, kind="stable")
        idx, coef = idx[order], coef[order]
    bounds = np.searchsorted(idx, tree.offsets, side="left")
    groups = []
    for k, leaf in enumerate(tree.leaves):
        a = int(bounds[k])
        b = int(bounds[k + 1]) if k + 1 < len(tree.leaves) else idx.size
        if b <= a:
            continue
        local: Any = idx[a:b] - leaf.offset
        if local[-1] - local[0] == b - a - 1:  # consecutive: one slice
            local = slice(int(local[0]), int(local[-1]) + 1)
        flat = flat_view(leaf.work)
        native = np.array(flat[local], copy=True)
        wide = native if native.dtype == np.float64 else native.astype(np.float64)
        groups.append((leaf, local, coef[a:b], flat, wide, native))
    return groups


def _run(tree: Tree, sl: slice, coef: np.ndarray, shifted: bool) -> Group | None:
    """The group of a run of positions inside one leaf, without an index array; None if it spans leaves."""
    k = int(np.searchsorted(tree.offsets, sl.start, side="right")) - 1
    leaf = tree.leaves[k]
    if sl.stop > leaf.offset + leaf.size or sl.stop <= sl.start:
        return None
    local = slice(sl.start - leaf.offset, sl.stop - leaf.offset)
    flat = flat_view(leaf.work)
    if not shifted and leaf.dtype == np.float64:
        native = leaf.original.reshape(-1)[local]  # the base point itself: read, never written
    else:
        native = np.array(flat[local], copy=True)
    wide = native if native.dtype == np.float64 else native.astype(np.float64)
    return (leaf, local, coef, flat, wide, native)


def covers(group: Group) -> bool:
    """Whether a group's elements are its whole array, as one slice."""
    leaf, local = group[0], group[1]
    return isinstance(local, slice) and local.start == 0 and local.stop == leaf.size and local.step in (None, 1)
