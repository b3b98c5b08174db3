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
from typing import Any

import numpy as np

from backcheck.backends import Backend, batched_first_differences, put_back, serial_first_differences
from backcheck.bits import BFLOAT16_EPS, machine_eps
from backcheck.containers import flatten
from backcheck.edges import (
    EDGE_HINTS,
    EDGE_RETRIES,
    EDGE_SHRINK,
    edge_notes,
    next_shrink,
    one_sided,
    raised_off_domain,
)
from backcheck.errors import (
    BackcheckError,
    NonFiniteError,
    UserFunctionError,
)
from backcheck.moves import PAIR_ONLY, covers, in_place, move, move_pair, pair_dots, split, write_step
from backcheck.outputs import NARROW_EVIDENCE, Output, computed_dtype, float16_work, narrow_inputs
from backcheck.randomness import jitter
from backcheck.tree import Leaf, Tree, flat_view


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
        #: a rounding unit of the outputs coarser than their numpy dtype's, where a frontend knows one (bfloat16
        #: outputs held as float16, which numpy has): 0 for none
        self.out_unit = 0.0
        self._noise = 0.0  # measured noise of phi (numeric.noise), 0 until estimated
        self.jitter = 0.0  # how far two calls at the same point differed, within rounding (randomness.jitter)
        self.noise_quantum = 0.0  # the step phi moves in where the noise probe found it standing still
        #: measures the noise the first time :attr:`noise` is read (a check that needs it only to refine)
        self.noise_probe: Callable[[], float] | None = None
        #: arrays the function wrote into, with the elements, found at any evaluation (restored each time)
        self.mutated: list[tuple[Leaf, np.ndarray]] = []
        #: per leaf: evaluations that perturbed it alone, and whether any of them changed phi at all
        self.probed = np.zeros(len(tree.leaves), dtype=np.int64)
        self.moved = np.zeros(len(tree.leaves), dtype=bool)
        #: elements whose step was shrunk at the edge of the function's domain: flat index -> factor
        self.shrunk: dict[int, float] = {}
        #: elements on the edge of the domain, differenced from one side (see :mod:`backcheck.edges`)
        self.one_sided: set[int] = set()
        self.flat_tries: dict[str, int] = {}  # per array, elements widened without moving f (not read by f)
        self.wider: set[int] = set()  # judged at a wider step than their own (refinement.judged_at): the last word
        self.straddled: set[int] = set()  # a kink inside the first step, off the point (judgement.off_the_point)
        self.unsettled: set[int] = set()  # at kinks unsettled at the step, whose finer steps' slopes agree
        self.stood: set[int] = set()  # f exactly still on a side at half the step that moved it (refinement.py)
        self.plain: dict[int, bool] = {}  # mismatches taken unconfirmed (judgement.py): whether near their bound
        self.unconfirmed = False  # while set, a refined mismatch stands without the noise along it (judgement.py)
        self.confirm_all = False  # every mismatch judged in full (those taken plainly lost their support: run.py)
        self.measured_moves = 0  # moves along which strategies.nearby measured f's noise (a budget per check)
        self.native: np.ndarray | None = None  # per element, a unit in its last place in a narrower dtype (run.py)
        self._sums: list[int] = []  # checksums of the inputs at the current base point
        self._base: list[np.ndarray] | None = None  # the base point's values while shifted
        self._coarse = ""  # a note when the output is in a coarser dtype than the inputs
        self._integer = False  # the function returns integers
        self.ready = False  # True once the baseline has been evaluated
        self.raised: tuple[Exception, Any] | None = None  # the last raise read as NaN, and where (edges.py)
        self.repeat_due = False  # the baseline's second call at the point is still to be made (recheck)
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
        # per element, the size of the outputs its refinement moved (0 where not recorded: ``scale`` stands in);
        # the largest since last reset (a direction, a probe); the size the noise probe moved
        self._local_scale: np.ndarray | None = None  # made on first use: a check by directions never needs it
        self.last_scale, self.noise_scale = 0.0, 0.0

    # -- the function's noise -----------------------------------------------------------------------------
    @property
    def local_scale(self) -> np.ndarray:
        """Per element, the size of the outputs its own evaluations moved (0 where none was recorded)."""
        if self._local_scale is None:
            self._local_scale = np.zeros(self.tree.size)
        return self._local_scale

    @property
    def noise(self) -> float:
        """The measured noise of ``phi`` (one standard deviation), measured by :attr:`noise_probe` on first use, and
        at least the :attr:`jitter` of two calls at the point.

        A check that clears every difference on the dtype's rounding alone never needs it, and never pays for
        it; the first comparison that cannot be cleared reads it, and so runs the probe.
        """
        if self.noise_probe is not None:
            probe, self.noise_probe = self.noise_probe, None
            saved, self.last_scale = self.last_scale, 0.0
            try:
                self._noise = float(probe())
                self.noise_scale = self.last_scale
            finally:
                self.last_scale = saved
        return max(self._noise, self.jitter)

    @noise.setter
    def noise(self, value: float) -> None:
        self._noise, self.noise_probe = float(value), None

    @property
    def noise_known(self) -> float:
        """The noise measured so far (0 while the probe has not run): for screens that rounding alone clears."""
        return max(self._noise, self.jitter)

    # -- the original point -----------------------------------------------------------------------------
    def baseline(self, repeat: bool = True, at_point: Any = None) -> float:
        """Evaluate at the original point; detect a function that writes into its inputs.

        A second call at the point tells a random function (:class:`NondeterministicError`). ``repeat=False``
        defers it to :meth:`recheck`, which the noise probe and any verdict but a pass call first: a check
        whose every difference clears on rounding alone has measured no noise, random or not, and pays for
        one evaluation less (random directions: 7 evaluations, not 8). ``at_point``: f's output at the point
        from a call the frontend made (on copies of it), taken for the first call."""
        try:
            phi, scale, dtype = self._eval(None, anchor=True) if at_point is None else self.output.anchor(at_point)
            self.mutated = self.tree.changed()
            if self.mutated:
                self.tree.restore()
            again = phi
            if repeat:
                again = self._eval(None)[0]
                self._note_mutation()
        except BaseException:
            self.tree.restore()
            raise
        self._sums = self.tree.sums()
        self.repeat_due = not repeat
        rel = bool(self.output.base)  # (a layer's phi: its outputs' change weighed by dout)
        self.jitter = max(self.jitter, jitter(self.fname, (phi, again), max(abs(scale), abs(phi)), dtype, rel))
        if not np.isfinite(phi):
            raise NonFiniteError(
                f"{self.fname} returned {phi} at the original point, before any perturbation.",
                "check the inputs for NaN/Inf, and the function for log(0), 0/0 or overflow.",
            )
        if dtype.kind != "f":
            self._integer = True
            self._coarse = (
                f"{self.fname} returns {dtype}, an integer: its value moves in whole steps that finite differences "
                "of small steps cannot resolve, so its numeric gradient is 0 or huge; return a float to check it."
            )
            dtype = np.dtype(np.float64)
        if dtype != self.output.declared and narrow_inputs(self.tree.values()):
            dtype = self._off_the_grid(dtype)  # outputs may copy float32-exact inputs: asked off float32's grid
        base = self.output.base  # (a layer's outputs at the point; a loss's value is phi)
        dtype = float16_work(dtype, [leaf.dtype for leaf in self.tree.leaves], base or [np.array([phi])])
        self.phi0, self.scale, self.out_dtype = phi, scale, dtype
        self.ready = True
        finest = min((leaf.dtype for leaf in self.tree.leaves), key=machine_eps, default=dtype)
        if not self._integer and self.out_eps > machine_eps(finest):
            self._coarse = (
                f"{self.fname} returns {self.out_name} for {finest} inputs: its differences cannot resolve more "
                f"than {self.out_name}'s rounding of |phi| ({self.out_eps:.2g} relative), and the bounds say so; "
                f"return {finest} to check the gradient more tightly."
            )
        return phi

    def _off_the_grid(self, narrow: np.dtype) -> np.dtype:
        """The dtype ``f`` computes in where its outputs and inputs are all float32-exact (float64 copies of
        float32 tensors): asked again at the point moved off float32's grid (each value by 2**-30 of itself, far
        below float32's spacing), where a function that casts to float32 inside (``f(x.float()).double()``) still
        returns float32-exact values and one whose outputs copy its inputs (a ReLU, a pool) no longer does. One
        evaluation; the declared dtype where the point cannot hold such values or ``f`` fails there, or for fewer
        than NARROW_EVIDENCE output values."""
        declared = self.output.declared
        if any(leaf.dtype != np.float64 for leaf in self.tree.leaves):
            return declared
        try:
            for leaf in self.tree.leaves:
                with np.errstate(all="ignore"):
                    np.add(leaf.work, np.ldexp(leaf.work, -30), out=leaf.work, where=np.isfinite(leaf.work))
            self.n_evals += 1
            raw = self.call(self.tree.current())
            values = [np.asarray(p, dtype=np.float64).reshape(-1) for _, p in flatten(raw)]
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception:  # noqa: BLE001 - a point it refuses tells nothing: as declared
            return declared
        finally:
            self.tree.restore()
        if sum(v.size for v in values) < NARROW_EVIDENCE:
            return declared  # (one value, a loss that cancels to a few bits, is float32-exact by chance)
        return narrow if computed_dtype(values, declared) == narrow else declared

    @property
    def out_eps(self) -> float:
        """The relative rounding of the function's value: its dtype's epsilon, or :attr:`out_unit`."""
        return max(machine_eps(self.out_dtype), self.out_unit)

    @property
    def out_name(self) -> str:
        """The name of the dtype the function's value rounds in (bfloat16 where :attr:`out_unit` is its epsilon)."""
        return "bfloat16" if self.out_unit == BFLOAT16_EPS > machine_eps(self.out_dtype) else str(self.out_dtype)

    def recheck(self) -> None:
        """Evaluate at the point once more: a random function whose two baseline calls agreed by chance (a mask
        of a few bits), or whose baseline made one call (``repeat=False``), differs now, and raises
        :class:`NondeterministicError` as the baseline would have."""
        if self._shifted or not self.ready:
            return
        again = self._value(None)
        self._after_call()
        self.repeat_due = False
        size, rel = max(self.scale, abs(self.phi0)), bool(self.output.base)
        self.jitter = max(self.jitter, jitter(self.fname, (self.phi0, again), size, self.out_dtype, rel))

    # -- many points at once ------------------------------------------------------------------------------
    def first_differences(self, idx: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, ...]:
        """``phi(x +- h_i e_i)`` for every ``i`` in ``idx``: serially, vectorized, or on the executor.

        Returns (phi plus, phi minus, actual plus displacement, actual minus displacement). Where a value is
        not finite (the step crosses the edge of the function's domain: log or sqrt near 0), the step of that
        element is shrunk until it is: ``steps[i]`` is updated in place, so that refinement continues from
        the shrunk step, :attr:`shrunk` records it and :meth:`notes` says so. The outputs they move are recorded
        (:attr:`Output.ever`).
        """
        self.output.track = True
        try:
            return self._first_differences(idx, steps)
        finally:
            self.output.track = False

    def _first_differences(
        self, idx: np.ndarray, steps: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        m = idx.size
        if m == 0:
            return np.empty(0), np.empty(0), np.empty(0), np.empty(0)
        if self.executor is not None and self.remote is not None and not self.mutated and not self._shifted:
            from backcheck.parallel import run_pairs

            f, point = self.remote
            pairs = [(int(i), float(s)) for i in idx for s in (steps[i], -steps[i])]
            values, disps = run_pairs(self.executor, f, point, pairs, self.fname)
            self.n_evals += len(pairs)
            return self._edges(idx, steps, (values[0::2], values[1::2], disps[0::2], disps[1::2]))
        if self.batch_call is not None and not self.mutated and not self._shifted:
            return self._edges(idx, steps, batched_first_differences(self, idx, steps))
        return serial_first_differences(self, idx, steps)

    def _slow_pair(self, k: int, i: int, steps: np.ndarray, out: np.ndarray) -> None:
        """One element's first differences through :meth:`element`, into column ``k`` of ``out``."""
        h = float(steps[i])
        phis, disp, factor = self._element(i, (h, -h), EDGE_RETRIES)
        steps[i] = h * factor
        out[:, k] = phis[0], phis[1], disp[0], disp[1]

    def _edges(
        self, idx: np.ndarray, steps: np.ndarray, first: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Record which arrays moved phi; redo non-finite first differences here with shrinking steps."""
        out = np.array(first, dtype=np.float64)
        which = np.searchsorted(self.tree.offsets, idx, side="right") - 1
        np.add.at(self.probed, which, 1)
        self.moved[np.unique(which[(out[0] != self.phi0) | (out[1] != self.phi0)])] = True
        for k in np.flatnonzero(~(np.isfinite(out[0]) & np.isfinite(out[1]))).tolist():
            self._slow_pair(k, int(idx[k]), steps, out)
        return out[0], out[1], out[2], out[3]

    # -- a nearby base point ------------------------------------------------------------------------------
    @contextmanager
    def shifted(self, delta: np.ndarray, evaluate: bool = True) -> Iterator[float]:
        """Move the base point to ``x + delta`` (rounded to each array's dtype) while the block runs.

        Yields ``phi`` there (NaN with ``evaluate=False``); every array and ``phi0`` are restored afterwards;
        non-finite entries (masks) keep their value."""
        _ = self.noise  # measured at the original point, before it moves
        phi0, sums = self.phi0, self._sums
        self._shifted = True
        try:
            base = []
            for leaf in self.tree.leaves:
                d = delta[leaf.offset : leaf.offset + leaf.size].reshape(leaf.shape)
                with np.errstate(all="ignore"):
                    moved = (leaf.original.astype(np.float64) + d).astype(leaf.dtype)
                base.append(np.where(np.isfinite(leaf.original), moved, leaf.original))
            self._base = base
            self._reset()
            self._sums = self.tree.sums()
            self.phi0 = self._eval_checked(None) if evaluate else float("nan")
            if evaluate:  # (without a call the arrays are as just written)
                self._after_call()
            yield self.phi0
        finally:
            self._base = None
            self.tree.restore()
            self._sums, self.phi0 = sums, phi0
            self._shifted = False

    # -- perturbed points ---------------------------------------------------------------------------------
    def element(self, i: int, steps: Sequence[float], *, shrink: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``phi`` at ``x + s e_i`` for each step ``s``; returns (phi values, actual displacements).

        The actual displacement is ``fl(x_i + s) - x_i``, exact in float64 even for float32 arrays. A value
        that is not finite raises :class:`NonFiniteError`; with ``shrink``, every step is instead divided by
        :data:`EDGE_SHRINK` and tried again (see :attr:`shrunk`); the displacements returned are those used.
        """
        return self._element(i, steps, EDGE_RETRIES if shrink else 0)[:2]

    def element_anew(self, i: int, steps: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`element` evaluated anew by any evaluator: :attr:`Output.last` is then its last step's."""
        return Evaluator._element(self, i, steps, 0)[:2]

    def _element(self, i: int, steps: Sequence[float], retries: int) -> tuple[np.ndarray, np.ndarray, float]:
        k_leaf = self.tree.leaf_of(i)
        factor, kept = 1.0, None
        for _attempt in range(retries + 2 if retries else 1):  # the last attempt only as the margin
            phis, disp, bad = self._at_steps(i, [s * factor for s in steps])
            if bad is None and not (factor < 1.0 and np.any(disp == 0.0)):
                if factor == 1.0 or kept is not None:
                    break
                # finite again within EDGE_SHRINK steps of the edge: one more shrink keeps the step well inside
                kept = (phis, disp, factor)
            elif kept is not None or _attempt >= retries:
                break
            factor = next_shrink(self, i, steps, factor, bad is not None)
        if kept is not None and (bad is not None or np.any(disp == 0.0)):
            phis, disp, factor = kept
            bad = None
        if bad is not None or (factor < 1.0 and np.any(disp == 0.0)):
            # on the edge of the domain (x = 0 of sqrt): the finite side alone, if there is one
            edge = one_sided(self, i, steps) if retries or i in self.one_sided else None
            if edge is None:
                phi, s = bad if bad is not None else (float("nan"), float(steps[0]))
                self._nonfinite(phi, (i, s / factor), retried=factor < 1.0)
            else:
                phis, disp, factor = edge
        self._probed(k_leaf, phis)
        if factor != 1.0:
            self.shrunk[i] = min(self.shrunk.get(i, 1.0), factor)
        return phis, disp, factor

    def along(self, i: int, offsets: np.ndarray) -> np.ndarray:
        """``phi`` at ``x + o e_i`` for each offset ``o``: :meth:`direction` over ``i`` alone (finite: not a mask), one
        step each, with a fraction of its work per evaluation; a value not finite raises :class:`NonFiniteError`."""
        phis, _disp, bad = self._at_steps(i, offsets.tolist(), scale=False)
        self._probed(self.tree.leaf_of(i), phis)
        if bad is not None:
            self._nonfinite(bad[0], (i, bad[1]))
        return phis

    def _at_steps(
        self, i: int, steps: Sequence[float], scale: bool = True
    ) -> tuple[np.ndarray, np.ndarray, tuple[float, float] | None]:
        """``phi`` at ``x + s e_i`` for each step, up to the first value that is not finite (its ``(value, step)``);
        ``scale``: the outputs' sizes recorded (:attr:`local_scale`) where refinement asks."""
        leaf, local = self.tree.locate(i)
        flat = flat_view(leaf.work)
        x0 = flat[local]
        x0_64 = float(x0)
        phis = np.full(len(steps), np.nan)
        disp = np.zeros(len(steps))
        caster = leaf.dtype.type
        try:
            for k, s in enumerate(steps):
                xk = caster(x0_64 + s)
                flat[local] = xk
                disp[k] = float(xk) - x0_64
                self.last_scale = 0.0
                phis[k] = self._value((i, s))
                if scale and self._track_scale:  # refinement only, so that every backend records the same
                    self.local_scale[i] = max(self.local_scale[i], self.last_scale)
                put_back(self.tree, leaf, flat, local, x0)
                self._after_call()
                if not math.isfinite(phis[k]):
                    return phis, disp, (float(phis[k]), float(s))
        finally:
            put_back(self.tree, leaf, flat, local, x0, restore=False)
            if self.mutated:
                self._reset()
        return phis, disp, None

    def direction(
        self,
        idx: Any,
        coef: np.ndarray,
        steps: Sequence[float],
        out: Sequence[np.ndarray] | None = None,
        weights: Sequence[np.ndarray] | None = None,
    ) -> tuple[np.ndarray, list]:
        """``phi`` at ``x + s v`` with ``v`` zero except ``v[idx] = coef``.

        Returns the phi values and, per step, the actual displacement of the touched elements (float64, in
        ascending order of ``idx``; written into ``out``, one buffer of ``coef``'s size per step, if given).
        With ``weights`` and a pair of steps, the list of their dot products with the difference of the two
        displacements (first minus second) instead: one float64 run's never written out (:func:`~.moves.move_pair`).
        A run of consecutive elements is written as one slice, so a direction over a million elements costs a
        few vectorized passes, not a gather and scatter each. Non-finite entries (masks) are not moved: their
        displacement is 0.
        """
        if weights is not None and len(steps) != 2:
            raise ValueError(PAIR_ONLY)
        self.last_scale = 0.0
        groups = split(self.tree, idx, coef, self._base is not None)
        # non-finite entries (masks) stay put; None where there are none (the common case, and the fast one)
        fixed = [None if self._finite(x0) else ~np.isfinite(x0) for _l, _i, _c, _f, x0, _n in groups]
        fused = weights is not None and len(groups) == 1 and fixed[0] is None and in_place(groups[0])
        # a move over a whole array: each step writes all of it (put back after the last), and its checksum
        # after a call says nothing (the function's writes into it are overwritten by the next move)
        whole = groups[0][0] if len(groups) == 1 and covers(groups[0]) else None
        phis = np.empty(len(steps))
        disps: list = []
        moved = False
        try:
            for k, s in enumerate(steps):
                moved = True
                if fused and k:
                    write_step(groups[0], s)  # (its dots were taken with the first step's)
                elif fused:
                    disps = move_pair(groups[0], (steps[0], steps[1]), weights or ())
                else:
                    buf = out[k] if out is not None and len(groups) == 1 else None
                    parts = [move(group, keep, s, buf) for group, keep in zip(groups, fixed, strict=True)]
                    disps.append(np.concatenate(parts) if len(parts) > 1 else parts[0] if parts else np.empty(0))
                phis[k] = self._eval_checked((idx, s))
                if whole is not None and k + 1 < len(steps) and self._untouched(whole):
                    continue  # the next step rewrites every element of this array: put back after the last
                for leaf, local, _c, flat, _x0, native in groups:
                    put_back(self.tree, leaf, flat, local, native)
                moved = False
                self._after_call(whole)
        finally:
            if moved:  # interrupted between a move and its restore
                for leaf, local, _c, flat, _x0, native in groups:
                    put_back(self.tree, leaf, flat, local, native, restore=False)
            if self.mutated:
                self._reset()
        if len(groups) == 1:
            self._probed(next(j for j, leaf in enumerate(self.tree.leaves) if leaf is groups[0][0]), phis)
        return phis, (disps if weights is None or fused else pair_dots(disps, weights))

    def _probed(self, k_leaf: int, phis: np.ndarray) -> None:
        """Count a move of array ``k_leaf`` alone, and whether ``phi`` moved at any of its steps (read as floats)."""
        self.probed[k_leaf] += 1
        phi0 = self.phi0
        if any(phi != phi0 for phi in phis.tolist()):
            self.moved[k_leaf] = True

    def _finite(self, x0: np.ndarray) -> bool:
        """Whether every base value is finite (known without a pass when the inputs hold no masks)."""
        return (self._base is None and not self.tree.excluded.size) or bool(np.isfinite(x0).all())

    # -- one call -----------------------------------------------------------------------------------------
    def _eval(self, where: Any, anchor: bool = False) -> tuple[float, float, np.dtype]:
        self.n_evals += 1
        try:
            raw = self.call(self.tree.current())
        except (KeyboardInterrupt, SystemExit, BackcheckError):
            raise
        except Exception as exc:
            if raised_off_domain(self, exc, where):  # (read as NaN: a step off f's domain)
                return math.nan, 0.0, self.out_dtype
            raise self._user_error(exc, where) from exc
        return self.output.anchor(raw) if anchor else self.output.reduce(raw)

    def _user_error(self, exc: Exception, where: Any, tried: str = "") -> UserFunctionError:
        return UserFunctionError(
            f"{self.fname} raised {type(exc).__name__}: {exc}\n  while evaluated {self._where(where)}{tried}.",
            "the original exception is chained above; every input array has been restored.",
        )

    def _nonfinite(self, phi: float, where: Any, retried: bool = False) -> None:
        tried = f" (steps down to {EDGE_SHRINK:g}**-{EDGE_RETRIES} times smaller did not help)" if retried else ""
        if self.raised is not None and isinstance(self.raised[1], (int, np.integer)) and self.raised[1] == where[0]:
            raise self._user_error(self.raised[0], where, tried) from self.raised[0]  # (raised moving this element)
        raise NonFiniteError(
            f"{self.fname} returned {phi} when evaluated {self._where(where)}{tried}.", EDGE_HINTS[retried]
        )

    def _value(self, where: Any) -> float:
        """``phi`` at the current point (NaN and inf returned as they are)."""
        phi, scale, _dtype = self._eval(where)
        if math.isfinite(phi):
            self.last_scale = max(self.last_scale, scale)
        if self._track_scale and math.isfinite(phi):
            self.scale = max(self.scale, scale)  # the largest magnitude seen bounds the round-off of every value
        return phi

    def _eval_checked(self, where: Any) -> float:
        phi = self._value(where)
        if not math.isfinite(phi):
            self._nonfinite(phi, where)
        return phi

    # -- the inputs between calls -------------------------------------------------------------------------
    def _after_call(self, moving: Leaf | None = None) -> None:
        """After a call, with the evaluator's own perturbation undone: a function that wrote into its inputs
        is recorded (at whatever call it starts) and the base point restored, so every call sees its input.
        ``moving``: an array the evaluator rewrites whole at every step of a direction, whose values are not
        checked (only its shape, dtype and flags)."""
        if self.mutated:
            self._reset()
        elif self._sums and not self.tree.intact(self._sums, moving):
            self._note_mutation()

    def _untouched(self, moving: Leaf) -> bool:
        """Whether the function left every input as it was, ``moving`` aside (its values are the evaluator's)."""
        return (
            not self.mutated
            and self.tree.unaltered(moving)
            and (not self._sums or self.tree.intact(self._sums, moving))
        )

    def _note_mutation(self) -> None:
        """Record the elements the function changed (against the base point) and restore them."""
        for leaf, idx in self.tree.changed(self._base):
            for j, (seen, before) in enumerate(self.mutated):
                if seen is leaf:
                    self.mutated[j] = (leaf, np.union1d(before, idx))
                    break
            else:
                self.mutated.append((leaf, idx))
        if self.mutated:
            self._reset()

    def _reset(self) -> None:
        """Put every input back to the base point (the original, or the shifted point)."""
        self.tree.restore()
        if self._base is not None:
            for leaf, values in zip(self.tree.leaves, self._base, strict=True):
                np.copyto(leaf.work, values)

    # -- what the evaluations showed --------------------------------------------------------------------
    def notes(self) -> list[str]:
        """What the report should say about the evaluations themselves: an output coarser than the inputs,
        steps shrunk at the edge of the function's domain."""
        out = [self._coarse] if self._coarse else []
        if self.jitter:
            out.append(
                f"{self.fname} returned values {self.jitter:.2g} apart for the same input, within a few hundred units "
                "of its rounding (a threaded or pivoting kernel, not randomness): the bounds count that as noise."
            )
        return out + edge_notes(self.fname, self.tree, self.one_sided, self.shrunk)

    def unmoved(self) -> list[int]:
        """Leaves (by position) perturbed at least once on their own without ``phi`` changing at all."""
        if self._integer:
            return []  # an integer output stands still for small steps whatever the function reads
        return [k for k in range(len(self.tree.leaves)) if self.probed[k] and not self.moved[k]]

    def _where(self, where: Any) -> str:
        shifted = " (the point moved a few dozen steps, to be judged nearby)" if self._shifted else ""
        if where is None:
            return "at the base point" + shifted
        i, s = where
        if isinstance(i, (int, np.integer)):
            return f"with {self.tree.element_name(int(i))} perturbed by {s:+.3g}{shifted}"
        count = i.stop - i.start if isinstance(i, slice) else len(i)
        return f"along a direction over {count} element(s) with step {s:+.3g}{shifted}"
