"""Run the user's function at perturbed points, and put every array back afterwards.

The :class:`Evaluator` is the only place that calls the function under test.  It turns every output into one
float64 number ``phi(x) = <u, y(x)>`` (for a scalar loss, ``u = 1`` and ``phi`` is the loss), counts
evaluations, names the perturbed element when the function raises or returns NaN, and restores the user's
arrays bit for bit, whatever happens (exceptions, Ctrl-C).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from backcheck.errors import (
    BackcheckError,
    NondeterministicError,
    NonFiniteError,
    NotScalarError,
    UserFunctionError,
)
from backcheck.tree import Leaf, Tree


class Output:
    """How a function's raw output becomes the scalar ``phi``.

    ``Output.loss(name)`` accepts one number; ``Output.cotangent(u_flat, tree)`` flattens an output tree
    and dots it with the cotangent ``u``.
    """

    def __init__(self, reduce: Callable[[Any], tuple[float, float, np.dtype]], scalar: bool = False):
        self.reduce = reduce
        self.scalar = scalar  # a loss: a plain float output needs no reduction

    @classmethod
    def loss(cls, fname: str) -> Output:
        def reduce(out: Any) -> tuple[float, float, np.dtype]:
            arr = _as_array(out, f"{fname}'s return value")
            if arr.size != 1:
                raise NotScalarError(
                    f"{fname} returned an array of shape {arr.shape}; a loss must be a single number.",
                    "reduce it to a scalar (e.g. .sum() or .mean()), or check a function with array output "
                    "with check_layer(forward, backward, inputs), which takes an upstream gradient dout.",
                )
            if arr.dtype.kind not in "fiu":
                raise NotScalarError(
                    f"{fname} returned a value of dtype {arr.dtype}; a loss must be a real number.",
                    "return a float.",
                )
            value = float(arr.reshape(()))
            dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
            return value, abs(value), dtype

        return cls(reduce, scalar=True)

    @classmethod
    def cotangent(
        cls,
        fname: str,
        u: Sequence[np.ndarray],
        names: Sequence[str],
        shapes: Sequence[tuple[int, ...]],
        flatten: Callable[[Any], list[Any]],
    ) -> Output:
        u64 = [np.asarray(a, dtype=np.float64).reshape(-1) for a in u]
        absu = [np.abs(a) for a in u64]

        def reduce(out: Any) -> tuple[float, float, np.dtype]:
            parts = flatten(out)
            if len(parts) != len(u64):
                raise NotScalarError(
                    f"{fname} returned {len(parts)} output array(s), but {len(u64)} were expected "
                    f"({', '.join(names)}).",
                    "a function must return the same structure at every call.",
                )
            phi = 0.0
            scale = 0.0
            dtype = np.dtype(np.float64)
            for p, uu, au, name, shape in zip(parts, u64, absu, names, shapes, strict=True):
                arr = _as_array(p, f"{fname}'s output {name}")
                if arr.shape != shape:
                    raise NotScalarError(
                        f"{fname}'s output {name} has shape {arr.shape} at a perturbed point but {shape} at "
                        "the original point.",
                        "a function's output shape must not depend on its input values.",
                    )
                if arr.dtype.kind == "f" and arr.dtype.itemsize < dtype.itemsize:
                    dtype = arr.dtype
                y = arr.reshape(-1).astype(np.float64, copy=False)
                phi += float(np.dot(uu, y))
                scale += float(np.dot(au, np.abs(y)))
            return phi, scale, dtype

        return cls(reduce)


def _as_array(out: Any, what: str) -> np.ndarray:
    if type(out).__module__.startswith(("torch", "jax", "jaxlib")):
        raise NotScalarError(
            f"{what} is a {type(out).__module__}.{type(out).__qualname__}; the numpy checker reads numpy values.",
            "use backcheck.torch / backcheck.jax for tensors, or return .item() / np.asarray(...).",
        )
    try:
        return np.asarray(out)
    except Exception as exc:  # noqa: BLE001 - anything numpy cannot read is the user's culprit
        raise NotScalarError(
            f"{what} ({type(out).__qualname__}) is not a number or an array.",
            "return a float or a numpy array.",
        ) from exc


@dataclass(frozen=True)
class Backend:
    """How an :class:`Evaluator` evaluates many first differences: serially (the default), vectorized
    (``batch_call``: phi of a tree whose arrays carry a leading batch axis, in chunks of at most
    ``max_batch_bytes``), or on an executor (``executor`` with ``remote = (phi, private copy of the point)``).
    """

    batch_call: Callable[[Any], Any] | None = None
    #: rows that stay in cache beat fewer, larger calls
    max_batch_bytes: int = 4 * 2**20
    executor: Any = None
    remote: tuple[Callable[[Any], Any], Any] | None = None


class Evaluator:
    """Evaluate ``phi`` at the original point and at points perturbed along sparse directions.

    Parameters
    ----------
    tree : Tree
        The inputs being perturbed.
    call : callable
        ``call(current_tree) -> raw output``.
    output : Output
        Reduces the raw output to ``phi``.
    fname : str
        The function's name, for messages.
    """

    def __init__(
        self,
        tree: Tree,
        call: Callable[[Any], Any],
        output: Output,
        fname: str = "f",
        *,
        backend: Backend | None = None,
    ):
        self.tree = tree
        self.call = call
        self.output = output
        self.fname = fname
        self.n_evals = 0
        self.phi0 = 0.0
        self.scale = 0.0
        self.out_dtype = np.dtype(np.float64)
        self.noise = 0.0  # measured noise of phi (numeric.noise), 0 until estimated
        self.mutated: list[tuple[Leaf, np.ndarray]] = []
        self.ready = False  # True once the baseline has been evaluated
        backend = backend or Backend()
        # optional ways to evaluate many points at once (first differences only), chosen when built
        self.batch_call = backend.batch_call  # phi on a tree whose arrays have a batch axis
        self.max_batch_bytes = backend.max_batch_bytes
        self.executor = backend.executor
        self.remote = backend.remote  # (phi, private copy of the point)
        self.progress: Callable[[int, int], None] | None = None
        self._shifted = False
        # first differences leave the scale alone, so that serial, batched and remote runs judge alike
        self._track_scale = True

    # -- the original point -----------------------------------------------------------------------------
    def baseline(self) -> float:
        """Evaluate at the original point; detect a function that writes into its inputs."""
        try:
            phi, scale, dtype = self._eval(None)
            self.mutated = self.tree.changed()
            self.tree.restore()
            again = self._eval(None)[0]
        finally:
            self.tree.restore()
        if not (phi == again or (phi != phi and again != again)):
            raise NondeterministicError(
                f"{self.fname} returned {phi!r} and then {again!r} for the same input: it is random "
                "(dropout, sampling, an unseeded generator), so finite differences would measure noise.",
                "fix the randomness: pass a seeded generator or a fixed dropout mask as an input, or "
                "re-seed inside the function.",
            )
        if not np.isfinite(phi):
            raise NonFiniteError(
                f"{self.fname} returned {phi} at the original point, before any perturbation.",
                "check the inputs for NaN/Inf, and the function for log(0), 0/0 or overflow.",
            )
        self.phi0, self.scale, self.out_dtype = phi, scale, dtype
        self.ready = True
        return phi

    # -- many points at once ------------------------------------------------------------------------------
    def first_differences(
        self, idx: np.ndarray, steps: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``phi(x +- h_i e_i)`` for every ``i`` in ``idx``: serially, vectorized, or on the executor.

        Returns (phi plus, phi minus, actual plus displacement, actual minus displacement).
        """
        m = idx.size
        if self.executor is not None and self.remote is not None and not self.mutated and not self._shifted:
            from backcheck.parallel import run_pairs

            f, point = self.remote
            pairs = [(int(i), float(s)) for i in idx for s in (steps[i], -steps[i])]
            values, disps = run_pairs(self.executor, f, point, pairs, self.fname)
            self.n_evals += len(pairs)
            for k, v in enumerate(values):
                if not np.isfinite(v):
                    i, s = pairs[k]
                    raise NonFiniteError(
                        f"{self.fname} returned {v} when evaluated {self._where((i, s))}.",
                        "the step crosses the edge of the function's domain; pass a smaller "
                        "step= or move the point away from the edge.",
                    )
            return values[0::2], values[1::2], disps[0::2], disps[1::2]
        if self.batch_call is not None and not self.mutated and not self._shifted:
            return self._batched(idx, steps)
        if self.output.scalar and not self.mutated:
            return self._serial_fast(idx, steps)
        fp, fm, dp, dm = np.empty(m), np.empty(m), np.empty(m), np.empty(m)
        self._track_scale = False
        try:
            for k, i in enumerate(idx):
                phis, disp = self.element(int(i), (steps[i], -steps[i]))
                fp[k], fm[k] = phis
                dp[k], dm[k] = disp
                if self.progress is not None and k % 64 == 63:
                    self.progress(k + 1, m)
        finally:
            self._track_scale = True
        return fp, fm, dp, dm

    def _serial_fast(self, idx: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The serial loop with as little work per evaluation as possible (scalar losses)."""
        m = idx.size
        fp, fm, dp, dm = np.empty(m), np.empty(m), np.empty(m), np.empty(m)
        tree, call, reduce = self.tree, self.call, self.output.reduce
        which = np.searchsorted(tree.offsets, idx, side="right") - 1
        x_all = tree.values()
        isfinite = math.isfinite
        k = 0
        for leaf_k in np.unique(which):
            leaf = tree.leaves[int(leaf_k)]
            flat = _flat_view(leaf.work)
            caster = leaf.dtype.type
            locals_ = (idx[which == leaf_k] - leaf.offset).tolist()
            for local in locals_:
                gi = leaf.offset + local
                x0 = flat[local]
                x0_64 = float(x_all[gi])
                h = float(steps[gi])
                try:
                    xp, xm = caster(x0_64 + h), caster(x0_64 - h)
                    flat[local] = xp
                    where: Any = (gi, h)
                    out = call(tree.current())
                    vp = out if type(out) is float else reduce(out)[0]
                    flat[local] = xm
                    where = (gi, -h)
                    out = call(tree.current())
                    vm = out if type(out) is float else reduce(out)[0]
                except (KeyboardInterrupt, SystemExit, BackcheckError):
                    raise
                except Exception as exc:
                    raise self._user_error(exc, where) from exc
                finally:
                    flat[local] = x0
                self.n_evals += 2
                if not (isfinite(vp) and isfinite(vm)):
                    self._nonfinite(vp if not isfinite(vp) else vm, where)
                fp[k], fm[k], dp[k], dm[k] = vp, vm, float(xp) - x0_64, float(xm) - x0_64
                k += 1
                if self.progress is not None and k % 256 == 0:
                    self.progress(k, m)
        # the loop above visits leaves in order; put the results back in the order of idx
        order = np.argsort(which, kind="stable")
        out_fp, out_fm, out_dp, out_dm = (np.empty(m) for _ in range(4))
        out_fp[order], out_fm[order], out_dp[order], out_dm[order] = fp, fm, dp, dm
        return out_fp, out_fm, out_dp, out_dm

    def _batched(self, idx: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        assert self.batch_call is not None
        leaves = self.tree.leaves
        row_bytes = sum(leaf.size * leaf.dtype.itemsize for leaf in leaves)
        per_call = max(2, int(self.max_batch_bytes // max(row_bytes, 1)) // 2 * 2)
        pair_idx = np.repeat(np.asarray(idx, dtype=np.int64), 2)
        pair_step = np.stack([steps[idx], -steps[idx]], axis=1).reshape(-1)
        which = np.searchsorted(self.tree.offsets, pair_idx, side="right") - 1
        x0 = self.tree.values()
        values = np.empty(pair_idx.size)
        # every perturbed value and its actual displacement, computed once for all points
        new_all = x0[pair_idx] + pair_step
        for k, leaf in enumerate(leaves):
            if leaf.dtype != np.float64:
                sel = which == k
                new_all[sel] = new_all[sel].astype(leaf.dtype).astype(np.float64)
        disps = new_all - x0[pair_idx]
        local_all = pair_idx - self.tree.offsets[which]
        pairs = list(zip(pair_idx.tolist(), pair_step.tolist(), strict=True))
        # one buffer of rows holding the original point; each chunk writes its perturbed entries and puts
        # them back afterwards, so a chunk costs O(rows) writes rather than a copy of rows x N
        buffer = [np.repeat(leaf.original.reshape(1, -1), min(per_call, pair_idx.size), axis=0) for leaf in leaves]
        originals = [leaf.original.reshape(-1) for leaf in leaves]
        for start in range(0, pair_idx.size, per_call):
            stop = min(start + per_call, pair_idx.size)
            chunk = pairs[start:stop]
            b = stop - start
            stacks = [buf[:b] for buf in buffer]
            w = which[start:stop]
            groups = [int(w[0])] if w[0] == w[-1] and (w == w[0]).all() else [int(k) for k in np.unique(w)]
            touched = []
            for k in groups:
                rows = np.arange(b) if len(groups) == 1 else np.flatnonzero(w == k)
                local = local_all[start + rows]
                stacks[k][rows, local] = new_all[start + rows]
                touched.append((k, rows, local))
            stacks = [st.reshape((b, *leaf.shape)) for st, leaf in zip(stacks, leaves, strict=True)]
            batched = self.tree._with(self.tree.structure, stacks)
            self.n_evals += b
            try:
                raw = self.batch_call(batched)
            except (KeyboardInterrupt, SystemExit, BackcheckError):
                raise
            except Exception as exc:
                raise UserFunctionError(
                    f"{self.fname} raised {type(exc).__name__}: {exc}\n  on a batch of {b} perturbed points "
                    f"(vectorized=True).",
                    "with vectorized=True the function receives every array with a leading batch axis and must "
                    "return one value per row; the original exception is chained above.",
                ) from exc
            out = np.asarray(raw, dtype=np.float64)
            if out.shape != (b,):
                raise NotScalarError(
                    f"with vectorized=True, {self.fname} returned shape {out.shape} for a batch of {b} points; "
                    f"expected ({b},), one loss per row.",
                    "reduce over every axis but the first (e.g. .sum(axis=tuple(range(1, x.ndim)))), or pass "
                    "vectorized=False.",
                )
            bad = np.flatnonzero(~np.isfinite(out))
            if bad.size:
                i, s = chunk[int(bad[0])]
                raise NonFiniteError(
                    f"{self.fname} returned {out[bad[0]]} when evaluated {self._where((i, s))}.",
                    "the step crosses the edge of the function's domain; pass a smaller step=.",
                )
            for k, rows, local in touched:
                buffer[k][rows, local] = originals[k][local]
            values[start:stop] = out
            if self.progress is not None:
                self.progress(stop // 2, idx.size)
        return values[0::2], values[1::2], disps[0::2], disps[1::2]

    # -- a nearby base point ------------------------------------------------------------------------------
    @contextmanager
    def shifted(self, delta: np.ndarray, evaluate: bool = True) -> Iterator[float]:
        """Move the base point to ``x + delta`` (rounded to each array's dtype) while the block runs.

        Yields ``phi`` there (NaN with ``evaluate=False``); every array and ``phi0`` are restored afterwards.
        """
        phi0 = self.phi0
        self._shifted = True
        try:
            for leaf in self.tree.leaves:
                d = delta[leaf.offset : leaf.offset + leaf.size].reshape(leaf.shape)
                np.copyto(leaf.work, (leaf.original.astype(np.float64) + d).astype(leaf.dtype))
            self.phi0 = self._eval_checked(None) if evaluate else float("nan")
            yield self.phi0
        finally:
            self.tree.restore()
            self.phi0 = phi0
            self._shifted = False

    # -- perturbed points ---------------------------------------------------------------------------------
    def element(self, i: int, steps: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """``phi`` at ``x + s e_i`` for each step ``s``; returns (phi values, actual displacements).

        The actual displacement is ``fl(x_i + s) - x_i``, exact in float64 even for float32 arrays.
        """
        leaf, local = self.tree.locate(i)
        flat = _flat_view(leaf.work)
        x0 = flat[local]
        x0_64 = float(x0)
        phis = np.empty(len(steps))
        disp = np.empty(len(steps))
        caster = leaf.dtype.type
        try:
            for k, s in enumerate(steps):
                xk = caster(x0_64 + s)
                flat[local] = xk
                disp[k] = float(xk) - x0_64
                phis[k] = self._eval_checked((i, s))
                flat[local] = x0
                if self.mutated:
                    self.tree.restore()
        finally:
            flat[local] = x0
            if self.mutated:
                self.tree.restore()
        return phis, disp

    def direction(self, idx: np.ndarray, coef: np.ndarray, steps: Sequence[float]) -> tuple[np.ndarray, list]:
        """``phi`` at ``x + s v`` with ``v`` zero except ``v[idx] = coef``.

        Returns the phi values and, per step, the actual displacement of the touched elements (float64, in
        ascending order of ``idx``). A run of consecutive elements is written as one slice, so a direction
        over a million elements costs a few vectorized passes, not a gather and scatter each.
        """
        groups = self._group(idx, coef)
        phis = np.empty(len(steps))
        disps = []
        try:
            for k, s in enumerate(steps):
                parts = []
                for leaf, local, c, flat, x0, _native in groups:
                    new = x0 + s * c
                    if leaf.dtype != np.float64:
                        new = new.astype(leaf.dtype).astype(np.float64)  # the value the array can hold
                    flat[local] = new
                    new -= x0
                    parts.append(new)
                disps.append(np.concatenate(parts) if len(parts) > 1 else parts[0] if parts else np.empty(0))
                phis[k] = self._eval_checked((idx, s))
                for _leaf, local, _c, flat, _x0, native in groups:
                    flat[local] = native
                if self.mutated:
                    self.tree.restore()
        finally:
            for _leaf, local, _c, flat, _x0, native in groups:
                flat[local] = native
            if self.mutated:
                self.tree.restore()
        return phis, disps

    def _group(
        self, idx: np.ndarray, coef: np.ndarray
    ) -> list[tuple[Leaf, Any, np.ndarray, Any, np.ndarray, np.ndarray]]:
        """Split a sparse direction by leaf: (leaf, local index or slice, coefficients, flat view, x0 as float64,
        x0 as stored)."""
        idx = np.asarray(idx)
        coef = np.asarray(coef, dtype=np.float64)
        if idx.size > 1 and not bool(np.all(idx[1:] > idx[:-1])):
            order = np.argsort(idx, kind="stable")
            idx, coef = idx[order], coef[order]
        bounds = np.searchsorted(idx, self.tree.offsets, side="left")
        groups = []
        for k, leaf in enumerate(self.tree.leaves):
            a = int(bounds[k])
            b = int(bounds[k + 1]) if k + 1 < len(self.tree.leaves) else idx.size
            if b <= a:
                continue
            local: Any = idx[a:b] - leaf.offset
            if local[-1] - local[0] == b - a - 1:  # consecutive: one slice
                local = slice(int(local[0]), int(local[-1]) + 1)
            flat = _flat_view(leaf.work)
            native = np.array(flat[local], copy=True)
            groups.append((leaf, local, coef[a:b], flat, native.astype(np.float64), native))
        return groups

    # -- one call -----------------------------------------------------------------------------------------
    def _eval(self, where: Any) -> tuple[float, float, np.dtype]:
        self.n_evals += 1
        try:
            raw = self.call(self.tree.current())
        except (KeyboardInterrupt, SystemExit, BackcheckError):
            raise
        except Exception as exc:
            raise self._user_error(exc, where) from exc
        return self.output.reduce(raw)

    def _user_error(self, exc: Exception, where: Any) -> UserFunctionError:
        return UserFunctionError(
            f"{self.fname} raised {type(exc).__name__}: {exc}\n  while evaluated {self._where(where)}.",
            "the original exception is chained above; every input array has been restored.",
        )

    def _nonfinite(self, phi: float, where: Any) -> None:
        raise NonFiniteError(
            f"{self.fname} returned {phi} when evaluated {self._where(where)}.",
            "the step crosses the edge of the function's domain (log, sqrt, division near 0?); "
            "pass a smaller step= or move the point away from the edge.",
        )

    def _eval_checked(self, where: Any) -> float:
        phi, scale, _dtype = self._eval(where)
        if self._track_scale:
            self.scale = max(self.scale, scale)  # the largest magnitude seen bounds the round-off of every value
        if not math.isfinite(phi):
            self._nonfinite(phi, where)
        return phi

    def _where(self, where: Any) -> str:
        if where is None:
            return "at the base point"
        i, s = where
        if isinstance(i, (int, np.integer)):
            return f"with {self.tree.element_name(int(i))} perturbed by {s:+.3g}"
        return f"along a direction over {len(i)} element(s) with step {s:+.3g}"


def _flat_view(arr: np.ndarray) -> Any:
    """A writable flat view of ``arr`` (``arr.flat`` when it is not contiguous)."""
    if arr.flags.c_contiguous:
        return arr.reshape(-1)
    return arr.flat
