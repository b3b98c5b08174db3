"""How an evaluator evaluates many points at once: its backend, and the one memory budget of every batched path."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from backcheck.edges import raised_off_domain
from backcheck.errors import BackcheckError, NotScalarError, UserFunctionError
from backcheck.tree import Leaf, Tree, flat_view, resized

if TYPE_CHECKING:
    from backcheck.evaluate import Evaluator

#: Most points one vectorized call evaluates, whatever the memory budget allows.
MAX_ROWS = 512
#: Inputs per call of a batched numpy function by default: rows that stay in a core's cache (its L2, a few
#: MB) beat fewer, larger calls once each row computes much; below that, each call's own overhead (a few
#: microseconds per numpy operation) is what is saved. An MLP loss at N = 1e4 (benchmarks/scaling.py (c)), a
#: batch of 1, 8 and 64 examples per row: 51, 152 and 782 ms at 1 MB; 41, 140 and 769 ms at 2 MB; 35, 134 and
#: 939 ms at 4 MB; 34, 168 and 1310 ms at 16 MB (a 2 MB L2 per core).
BATCH_BYTES = 2 * 2**20
#: The same for a framework's batched function (jax.vmap, torch.func.vmap): each call pays a dispatch.
FRAMEWORK_BATCH_BYTES = 16 * 2**20


def rows_per_call(row_bytes: int, budget: int) -> int:
    """Points per vectorized call: as many rows of ``row_bytes`` as ``budget`` bytes hold (an even number, at
    least 2, at most :data:`MAX_ROWS`). The one memory budget of every batched path (numpy and frameworks)."""
    return int(min(MAX_ROWS, max(2, int(budget // max(row_bytes, 1)) // 2 * 2)))


@dataclass(frozen=True)
class Backend:
    """How an :class:`Evaluator` evaluates many first differences: serially (the default), vectorized
    (``batch_call``: phi of a tree whose arrays carry a leading batch axis, in chunks of at most
    ``max_batch_bytes``), or on an executor (``executor`` with ``remote = (phi, private copy of the point)``).
    """

    batch_call: Callable[[Any], Any] | None = None
    #: None: :data:`BATCH_BYTES` (numpy), :data:`FRAMEWORK_BATCH_BYTES` (a framework's vmap)
    max_batch_bytes: int | None = None
    executor: Any = None
    remote: tuple[Callable[[Any], Any], Any] | None = None


def put_back(tree: Tree, leaf: Leaf, flat: np.ndarray, local: Any, values: Any, restore: bool = True) -> None:
    """Write ``values`` back through ``flat``, a view of ``leaf``'s array taken before the function was called,
    unless the function changed the shape of that array or of the user's array it views: resized in place
    (``ndarray.resize(refcheck=False)``), its old memory is freed and the view stale. Then nothing is written
    through the view; with ``restore`` the array is put back (:meth:`Tree.restore`, which stops the check with a
    typed error naming a resized array), and the values written once its memory is known to be the view's."""
    if leaf.name not in tree.stale and not resized(leaf):
        flat[local] = values
        return
    tree.stale.add(leaf.name)  # (a restore sizes it back, in new memory: the view stays stale)
    if not restore:
        return
    tree.restore()
    if not np.shares_memory(flat, leaf.work):  # (compares addresses only: reads no freed memory)
        raise UserFunctionError(
            f"{leaf.name} cannot be put back as it was: the function under test resized it, which moves its memory.",
            "do not resize arrays being checked or change their memory; work on a copy inside the function.",
        )
    tree.stale.discard(leaf.name)  # its shape only had changed: the memory is the view's
    flat[local] = values


#: Pairs of the serial fast loop between two checksums of the inputs.
CHECK_EVERY = 16
#: Loss values the serial fast loop reads as they are (a Python float, numpy's float64 scalar of a sum).
PLAIN = (float, np.float64)


def serial_first_differences(
    ev: Evaluator, idx: np.ndarray, steps: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The serial loop with as little work per evaluation as possible.

    The inputs are checksummed every :data:`CHECK_EVERY` pairs; a function found writing into them has
    its arrays restored and those pairs evaluated again, each call from the restored point.
    """
    m = idx.size
    out = np.empty((4, m))
    tree, call, reduce, phi0 = ev.tree, ev.call, ev.output.reduce, ev.phi0
    plain = PLAIN if ev.output.scalar else ()  # (a loss's float is phi itself; an output's is reduced)
    offsets = tree.offsets.tolist()
    leaves = tree.leaves
    flats = [flat_view(leaf.work) for leaf in leaves]
    casters = [leaf.dtype.type for leaf in tree.leaves]
    if len(leaves) == 1:  # (one array: no leaf to look up, nothing to sort)
        which, order = [0] * m, list(range(m))
    else:
        which = (np.searchsorted(tree.offsets, idx, side="right") - 1).tolist()
        order = np.argsort(which, kind="stable").tolist()  # leaf by leaf
    idx_l = idx.tolist()
    probed, moved, isfinite = ev.probed, ev.moved, math.isfinite
    for start in range(0, m, CHECK_EVERY):
        block = order[start : start + CHECK_EVERY]
        if ev.mutated:  # every call from a restored point
            for p in block:
                ev._slow_pair(p, idx_l[p], steps, out)
            continue
        edge = []
        for p in block:
            gi, kk = idx_l[p], which[p]
            flat, local, caster = flats[kk], gi - offsets[kk], casters[kk]
            x0 = flat[local]
            x0_64 = float(x0)
            h = float(steps[gi])
            try:
                xp, xm = caster(x0_64 + h), caster(x0_64 - h)
                flat[local] = xp
                where: Any = (gi, h)
                raw = call(tree.current())
                vp = float(raw) if type(raw) in plain else reduce(raw)[0]
                put_back(tree, leaves[kk], flat, local, xm)
                where = (gi, -h)
                raw = call(tree.current())
                vm = float(raw) if type(raw) in plain else reduce(raw)[0]
            except (KeyboardInterrupt, SystemExit, BackcheckError):
                raise
            except Exception as exc:
                if not raised_off_domain(ev, exc, where):
                    raise ev._user_error(exc, where) from exc
                vp = vm = math.nan  # a step off f's domain: redone below with shrinking steps, as a NaN
            finally:
                put_back(tree, leaves[kk], flat, local, x0, restore=False)
            ev.n_evals += 2
            probed[kk] += 1
            if vp != phi0 or vm != phi0:
                moved[kk] = True
            if not (isfinite(vp) and isfinite(vm)):
                edge.append(p)
            out[:, p] = vp, vm, float(xp) - x0_64, float(xm) - x0_64
        if ev._sums and not tree.intact(ev._sums):
            ev._note_mutation()
            edge = block
        for p in edge:
            ev._slow_pair(p, idx_l[p], steps, out)
        if ev.progress is not None and (start // CHECK_EVERY) % 16 == 15:
            ev.progress(start + len(block), m)
    return out[0], out[1], out[2], out[3]


def batched_first_differences(
    ev: Evaluator, idx: np.ndarray, steps: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """First differences of many points per call of the function's batched form (``vectorized=True``)."""
    assert ev.batch_call is not None
    leaves = ev.tree.leaves
    row_bytes = sum(leaf.size * leaf.dtype.itemsize for leaf in leaves)
    per_call = rows_per_call(row_bytes, ev.max_batch_bytes or BATCH_BYTES)
    pair_idx = np.repeat(np.asarray(idx, dtype=np.int64), 2)
    pair_step = np.stack([steps[idx], -steps[idx]], axis=1).reshape(-1)
    which = np.searchsorted(ev.tree.offsets, pair_idx, side="right") - 1
    x0 = ev.tree.values()
    values = np.empty(pair_idx.size)
    # every perturbed value and its actual displacement, computed once for all points
    new_all = x0[pair_idx] + pair_step
    for k, leaf in enumerate(leaves):
        if leaf.dtype != np.float64:
            sel = which == k
            new_all[sel] = new_all[sel].astype(leaf.dtype).astype(np.float64)
    old_all = x0[pair_idx]
    disps = new_all - old_all
    # one buffer of rows holding the original point; each chunk writes its perturbed entries and puts
    # them back afterwards, so a chunk costs O(rows) writes rather than a copy of rows x N
    rows = min(per_call, pair_idx.size)
    buffer = [np.repeat(leaf.original.reshape(1, -1), rows, axis=0).reshape(-1) for leaf in leaves]
    full = [buf.reshape((rows, *leaf.shape)) for buf, leaf in zip(buffer, leaves, strict=True)]
    # each point's position in its leaf's buffer (row-major): its row in its chunk, then its element
    sizes = np.array([leaf.size for leaf in leaves], dtype=np.int64)
    pos_all = np.arange(pair_idx.size) % per_call * sizes[which] + (pair_idx - ev.tree.offsets[which])
    # the leaf of each chunk's first and last row: with points in ascending order (the usual case) a chunk's
    # rows of one leaf are a contiguous run, found without a pass over the chunk
    ascending = bool(np.all(which[1:] >= which[:-1]))
    for start in range(0, pair_idx.size, per_call):
        stop = min(start + per_call, pair_idx.size)
        b = stop - start
        touched = _touch(buffer, which, start, stop, ascending, pos_all, new_all)
        stacks = full if b == rows else [st[:b] for st in full]
        batched = ev.tree._with(ev.tree.structure, stacks)
        ev.n_evals += b
        try:
            raw = ev.batch_call(batched)
        except (KeyboardInterrupt, SystemExit, BackcheckError):
            raise
        except Exception as exc:
            raise UserFunctionError(
                f"{ev.fname} raised {type(exc).__name__}: {exc}\n  on a batch of {b} perturbed points "
                f"(vectorized=True).",
                "with vectorized=True the function receives every array with a leading batch axis and must "
                "return one value per row; the original exception is chained above.",
            ) from exc
        out = np.asarray(raw, dtype=np.float64)
        if out.shape != (b,):
            raise NotScalarError(
                f"with vectorized=True, {ev.fname} returned shape {out.shape} for a batch of {b} points; "
                f"expected ({b},), one loss per row.",
                "reduce over every axis but the first (e.g. .sum(axis=tuple(range(1, x.ndim)))), or pass "
                "vectorized=False.",
            )
        for k, pos, sel in touched:
            buffer[k][pos] = old_all[sel]
        values[start:stop] = out
        if ev.progress is not None:
            ev.progress(stop // 2, idx.size)
    return values[0::2], values[1::2], disps[0::2], disps[1::2]


def _touch(
    buffer: list[np.ndarray],
    which: np.ndarray,
    start: int,
    stop: int,
    ascending: bool,
    pos_all: np.ndarray,
    new_all: np.ndarray,
) -> list[tuple[int, np.ndarray, Any]]:
    """Write points ``start:stop``'s perturbed entries into their leaves' flat buffers (at ``pos_all``);
    return (leaf, positions, points) of every write, to put back after the call."""
    first, last = int(which[start]), int(which[stop - 1])
    runs: list[tuple[int, Any]]
    if first == last and (ascending or bool((which[start:stop] == first).all())):
        runs = [(first, slice(start, stop))]
    elif ascending:
        cuts = (start + np.searchsorted(which[start:stop], np.arange(first, last + 2))).tolist()
        runs = [(first + j, slice(a, b)) for j, (a, b) in enumerate(itertools.pairwise(cuts)) if b > a]
    else:
        w = which[start:stop]
        runs = [(int(k), start + np.flatnonzero(w == k)) for k in np.unique(w)]
    touched = []
    for k, sel in runs:
        pos = pos_all[sel]
        buffer[k][pos] = new_all[sel]
        touched.append((k, pos, sel))
    return touched


__all__ = [
    "BATCH_BYTES",
    "FRAMEWORK_BATCH_BYTES",
    "MAX_ROWS",
    "Backend",
    "batched_first_differences",
    "rows_per_call",
    "serial_first_differences",
]
