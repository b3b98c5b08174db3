"""Sharp derivatives: a Richardson table over a geometric sequence of steps, element by element.

Contract of :func:`sharp_derivative` (one element or one direction) and :func:`refine` (many at once)
-----------------------------------------------------------------------------------------------------
The caller owns a function of one real variable, ``phi(t) = f(x + t v)`` (``v = e_i`` for one element, or any
direction), and hands over a callable that evaluates it at a list of steps ``t`` and returns the values (and,
optionally, the displacements actually taken: a float32 coordinate rounds ``x + t``). A step where ``phi`` is
not finite (or the function raises a typed error) is unusable, not fatal: the edge of a domain. The primitive

- evaluates ``phi`` at ``o * h_k`` for every offset ``o`` of the stencil (central by default: ``o = +-1``), on the
  steps ``h_k = h_0 / 2**k`` with ``h_0 = largest_step(stencil) * x_scale``, and never evaluates the same point twice (a
  central4 stencil at ``h_k`` reuses ``+-2 h_k = +-h_(k-1)``);
- builds the Richardson table ``T[j, k]``: the stencil at ``h_k`` with ``j`` terms of its error series removed
  (error ``O(h_k**(p + j q))``; ``p, q = 2, 2`` for central), with weights computed from the actual nodes;
- estimates each entry's error as its change from the previous step in the same column (or the change the
  column predicts, if larger) plus the propagated rounding of ``phi``: each value off by at most
  ``eps(dtype) * (|phi| + |x| |phi'|)`` or the caller's ``noise``, distinct values adding in quadrature, the
  base point (shared by every row of a one-sided stencil) coherently;
- trusts an entry only where its column shrinks as it should (at least twofold per step) or two consecutive
  changes are at the rounding level, and only on steps after the last *jump* (a change that grows, fourfold if
  one-sided: the steps were still above the function's scale, across kinks a little off the point, or an edge);
- stops once the least estimated error among trusted entries is at the rounding floor (or below the caller's
  ``target``), the next step agrees with it, and a central difference at ``0.7 h`` (off the halving sequence;
  the stencil itself if one-sided) agrees with those at ``h`` and ``2 h``: a function whose period aliases with
  the halvings (``sin(w h_k)`` the same for every ``k``) fools the table but not that check. Otherwise it
  halves the step again, up to ``max_rows``.

It returns the trusted entry of least estimated error, that error, and the evaluations spent. On smooth
functions the estimate bounds the actual error; with the allowances of ``numerical_grad`` (one deviation of the
measured noise, the rounding of the terms an element enters capped at three: ``term_cap``) typically 3 to 5 times
it, at most 10 times on 90 to 100% of the benchmark's points; ``benchmarks/numeric.py`` measures both against
numdifftools and scipy. Cost per element on smooth functions, including the confirming stencil, on average:
central 17 evaluations in float64 and 14 in float32 (11 on low-degree polynomials); forward/backward 12 and 10;
central4 18 and 15; central6 31 and 25 (numdifftools spends 30, or 15 one-sided), with 24 for each element whose
terms' rounding is measured alone (:meth:`_Refiner.measure`: 0 to 2 of 30, on some of the functions). At most
``n_offsets * max_rows + 2`` where every step works; a step past the edge of the domain (where phi is NaN or the
function raises) does not count against ``max_rows``, up to as many again: an element at 1e-4 of the edge of
``sqrt`` gets its full table on steps below 1e-4.

Where no entry can be trusted after ``max_rows`` rows (noise, a kink, a function varying on a scale far below
``x_scale``), the least-error entry is returned with its error multiplied by ``UNCONVERGED_FACTOR`` and
``converged`` False.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backcheck.errors import NonFiniteError, UserFunctionError
from backcheck.numeric.stencils import STENCILS, Stencil, apply_nodes

#: The largest step, relative to the coordinate's scale ``max(|x|, 1)``: high orders need large steps, and where
#: the table converges there (polynomials, slowly varying functions) rounding is divided by the largest step.
FIRST_STEP = 1.0
#: ... times this one-sided: every power of ``h`` in the error series (every other one if symmetric) takes twice the
#: levels for an order, and level ``j`` is trusted ``j + 2`` rows down: 4 to 8 times finer steps than a central
#: table's, as many times the rounding (float32 Rosenbrock, forward: 1.8-2.7x numdifftools' error, 0.07-0.72 now).
ONE_SIDED_FIRST_STEP = 4.0
#: Ratio of consecutive steps; powers of 2 keep ``2 * h_k == h_(k-1)`` exact, so stencil points are reused.
RATIO = 2.0
#: Most rows (steps): ``h_0 / 2**17`` is about the classic central step in float64.
MAX_ROWS = 18
#: Most columns of the table (error terms removed, plus one).
MAX_LEVELS = 8
#: Stop once the best error is at most this many times its rounding part: truncation is no longer visible.
FLOOR_FACTOR = 3.0
#: Two consecutive changes within this many rounding bounds settle a column: trusted without a convergence check.
ROUNDING_ACCEPT = 2.0
#: A column converges when its change shrank by this factor (or by 3/4 of the expected ratio, if smaller).
CONVERGENCE = 2.0
#: A change of the first column of order >= 2 that grows by this factor (one-sided) or at all (symmetric: rows across
#: kinks 0.05 off gave an entry 15% off, estimated at 3%), beyond this many rounding bounds, is a jump.
JUMP_GROWTH, SYMMETRIC_JUMP_GROWTH = 4.0, 1.0
#: ... or by this factor between the first two changes of the column (no earlier change tells a dip there).
FIRST_JUMP_GROWTH = 32.0
JUMP_ROUNDING = 4.0
#: The rounding of one value of phi, in units of ``eps * (|phi| + |x| |phi'|)``.
ROUNDING_MODEL = 1.0
#: Deviations of the rounding of distinct values (each within ``ROUNDING_MODEL``), added in quadrature.
ROUNDING_SPREAD = 1.5
#: The step of the confirming stencil, relative to the chosen entry's: off the sequence of halvings.
CONFIRM_STEP = 0.7
#: The confirming estimate must agree within this many times the chosen error plus its own rounding.
CONFIRM_TOLERANCE = 2.0
#: The rounding of the terms an element enters is measured along the element alone (``RefineOptions.measure``)
#: only where the cap on it is over this many times the rounding of ``phi`` itself, ``eps |phi|``.
MEASURE_ABOVE = 3.0
#: How much an estimate that never converged is inflated.
UNCONVERGED_FACTOR = 10.0

#: ``evaluate(m, steps) -> (phis, displacements)`` for element ``m`` of a refinement; NaN where it failed.
Evaluate = Callable[[int, list[float]], tuple[np.ndarray, np.ndarray]]


@dataclass
class Refined:
    """Per-element results of :func:`refine` (arrays of the same length)."""

    value: np.ndarray
    error: np.ndarray
    evaluations: np.ndarray  # evaluations of phi spent on each element
    step: np.ndarray  # the step of the chosen entry
    order: np.ndarray  # its truncation order p + j q
    converged: np.ndarray  # False where no entry could be trusted (error inflated)
    failures: dict[int, Exception] = field(default_factory=dict)  # the last failed evaluation per element


@dataclass(frozen=True)
class RefineOptions:
    """How far :func:`refine` goes: ``target`` (scalar or per element) stops an element once its error estimate
    is below it (0: as accurate as the dtype allows); at most ``max_rows`` steps; ``term_cap`` (scalar or per
    element) caps the modelled rounding of the terms an element enters, ``eps |x| |phi'|`` per value, where a
    noise probe measured the rounding of all terms together; ``measure(positions, derivatives) -> caps`` measures
    it along each element alone (:meth:`_Refiner.measure`)."""

    target: Any = 0.0
    max_rows: int = MAX_ROWS
    term_cap: Any = np.inf
    measure: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None


@dataclass(frozen=True)
class SharpDerivative:
    """One sharp derivative; unpacks as ``value, error, evaluations``."""

    value: float
    error: float
    evaluations: int
    step: float
    order: int
    converged: bool

    def __iter__(self) -> Iterator[Any]:
        return iter((self.value, self.error, self.evaluations))


def sharp_derivative(
    phi_of_step: Callable[[np.ndarray], Any],
    x_scale: float,
    dtype: Any = np.float64,
    *,
    method: str = "central",
    phi0: float | None = None,
    noise: float = 0.0,
    target: float = 0.0,
    max_rows: int = MAX_ROWS,
) -> SharpDerivative:
    """The derivative of ``phi`` at 0 to the accuracy of the dtype, with an error estimate.

    Parameters
    ----------
    phi_of_step : callable
        ``phi_of_step(steps) -> phis`` or ``(phis, displacements)`` for a 1-d array of steps: ``phi(t) = f(x + t v)``
        along one element or one direction. Displacements are the steps actually taken (default: ``steps``).
        A :class:`~backcheck.errors.NonFiniteError` or :class:`~backcheck.errors.UserFunctionError` marks those
        steps as unusable (the edge of the domain); smaller steps are tried.
    x_scale : float
        The coordinate's scale, ``max(|x_i|, 1)`` for one element: the largest step is
        ``largest_step(stencil) * x_scale``,
        and ``x_scale * |phi'|`` enters the rounding model.
    dtype : dtype
        The precision ``phi`` is computed in (its machine epsilon sets the rounding model).
    method : {'central', 'forward', 'backward', 'central4', 'central6'}
        The base stencil.
    phi0 : float, optional
        ``phi(0)``, needed by 'forward' and 'backward' (evaluated once if not given).
    noise : float
        A bound on the error of one value of ``phi`` beyond its rounding (measured noise), if known.
    target : float
        Stop as soon as the error estimate is below this (and confirmed by one more step); 0 means as accurate as
        the dtype allows.
    max_rows : int
        At most this many steps.

    Returns
    -------
    SharpDerivative
        ``value, error, evaluations = sharp_derivative(...)``; also ``.step``, ``.order``, ``.converged``.

    Examples
    --------
    >>> import numpy as np
    >>> d = sharp_derivative(lambda t: np.exp(1.0 + t), 1.0)
    >>> bool(abs(d.value - np.e) <= d.error < 1e-12)
    True
    """
    stencil = STENCILS[method]
    spent = [0]
    last: list[Exception] = []

    def evaluate(_m: int, steps: list[float]) -> tuple[np.ndarray, np.ndarray]:
        arr = np.asarray(steps, dtype=np.float64)
        spent[0] += arr.size
        try:
            out = phi_of_step(arr)
        except (NonFiniteError, UserFunctionError) as exc:
            last[:] = [exc]
            return np.full(arr.size, np.nan), arr
        phis, disp = out if isinstance(out, tuple) else (out, arr)
        phis = np.asarray(phis, dtype=np.float64).reshape(-1)
        return np.where(np.isfinite(phis), phis, np.nan), np.asarray(disp, dtype=np.float64).reshape(-1)

    if phi0 is None and 0.0 in stencil.offsets:
        phi0 = float(evaluate(0, [0.0])[0][0])
    eps = float(np.finfo(np.dtype(dtype)).eps)
    res = refine(
        evaluate,
        np.array([largest_step(stencil) * float(x_scale)]),
        np.array([float(x_scale)]),
        eps,
        stencil=stencil,
        noise=noise,
        phi0=np.nan if phi0 is None else float(phi0),
        options=RefineOptions(float(target), int(max_rows)),
    )
    if not np.isfinite(res.value[0]) and last:
        raise last[0]
    return SharpDerivative(
        float(res.value[0]),
        float(res.error[0]),
        int(spent[0]),
        float(res.step[0]),
        int(res.order[0]),
        bool(res.converged[0]),
    )


def largest_step(stencil: Stencil) -> float:
    """The largest step of a table on ``stencil``, relative to the coordinate's scale ``max(|x|, 1)``."""
    return FIRST_STEP * (ONE_SIDED_FIRST_STEP if stencil.increment == 1 else 1.0)


class _Rows:
    """The evaluated rows of every element: base estimates, the sums of their weights ``sum |w_m| / h`` and of
    their weighted values ``sum |w_m phi_m| / h`` (for the rounding bounds), and the cache of values."""

    def __init__(self, evaluate: Evaluate, first_step: np.ndarray, stencil: Stencil, phi0: np.ndarray, rows: int):
        m = first_step.size
        self.evaluate, self.h0, self.stencil, self.phi0 = evaluate, first_step, stencil, phi0
        self.base = np.full((m, rows), np.nan)
        self.unit = np.full((m, rows), np.nan)
        self.weighted = np.full((m, rows), np.nan)
        # for the statistical bound: root-sum-squares of the weights and weighted values of the nodes off the
        # base point, and the weight of the base point (its value is shared by every row)
        self.rms = np.full((m, rows), np.nan)
        self.rms_unit = np.full((m, rows), np.nan)
        self.w0 = np.zeros((m, rows))
        self.evals = np.zeros(m, dtype=np.int64)
        self.cache: list[dict[float, tuple[float, float]]] = [{} for _ in range(m)]

    def add(self, active: np.ndarray, k: int) -> None:
        """Evaluate row ``k`` (step ``h_0 / 2**k``) of the active elements."""
        keys = [o * RATIO**-k for o in self.stencil.offsets]
        nodes = np.empty((active.size, len(keys)))
        phis = np.empty((active.size, len(keys)))
        for a, m in enumerate(active.tolist()):
            cache = self.cache[m]
            missing = [key for key in keys if key != 0.0 and key not in cache]
            if missing:
                vals, disp = self.evaluate(m, [key * float(self.h0[m]) for key in missing])
                self.evals[m] += len(missing)
                for key, v, d in zip(missing, vals.tolist(), disp.tolist(), strict=True):
                    cache[key] = (v, d)
            for c, key in enumerate(keys):
                phis[a, c], nodes[a, c] = (self.phi0[m], 0.0) if key == 0.0 else cache[key]
        found = apply_nodes(phis, nodes, self.h0[active] * RATIO**-k)
        self.base[active, k], self.unit[active, k], self.weighted[active, k] = found[:3]
        self.rms[active, k], self.rms_unit[active, k], self.w0[active, k] = found[3:]

    def at(self, idx: np.ndarray, stencil: Stencil, h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``stencil`` at any step ``h[a]`` for element ``idx[a]`` (not a row of the table, not cached)."""
        offsets = [o for o in stencil.offsets if o != 0.0]
        nodes = np.zeros((idx.size, len(stencil.offsets)))
        phis = np.empty((idx.size, len(stencil.offsets)))
        for a, m in enumerate(idx.tolist()):
            vals, disp = self.evaluate(m, [o * float(h[a]) for o in offsets])
            self.evals[m] += len(offsets)
            got = dict(zip(offsets, zip(vals.tolist(), disp.tolist(), strict=True), strict=True))
            for c, o in enumerate(stencil.offsets):
                phis[a, c], nodes[a, c] = (self.phi0[m], 0.0) if o == 0.0 else got[o]
        est, unit, weighted = apply_nodes(phis, nodes, h)[:3]
        return est, unit, weighted

    def cached(self, idx: np.ndarray, stencil: Stencil, k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``stencil`` at the step of row ``k[a]`` for element ``idx[a]``, from values already evaluated."""
        nodes = np.zeros((idx.size, len(stencil.offsets)))
        phis = np.empty((idx.size, len(stencil.offsets)))
        for a, (m, kk) in enumerate(zip(idx.tolist(), k.tolist(), strict=True)):
            for c, o in enumerate(stencil.offsets):
                key = o * RATIO**-kk
                phis[a, c], nodes[a, c] = (self.phi0[m], 0.0) if o == 0.0 else self.cache[m].get(key, (np.nan, 0.0))
        est, unit, weighted = apply_nodes(phis, nodes, self.h0[idx] * RATIO ** -k.astype(np.float64))[:3]
        return est, unit, weighted


class _Refiner:
    """The state of :func:`refine` between rounds."""

    def __init__(self, rows: _Rows, x_abs: np.ndarray, eps: float, noise: np.ndarray, options: RefineOptions):
        m = rows.h0.size
        self.rows, self.x_abs, self.eps, self.noise = rows, x_abs, eps, noise
        self.term_cap = np.broadcast_to(np.asarray(options.term_cap, dtype=np.float64), (m,)).copy()
        self.measurer, self.measured = options.measure, np.zeros(m, dtype=bool)
        self.target = np.broadcast_to(np.asarray(options.target, dtype=np.float64), (m,))
        self.max_rows = int(options.max_rows)
        self.start = np.zeros(m, dtype=np.int64)
        # rows where phi failed (the edge of its domain) or the changes grew (steps above the function's scale)
        self.failed = np.zeros(m, dtype=np.int64)
        self.wasted = np.zeros(m, dtype=np.int64)
        self.done = np.zeros(m, dtype=bool)
        # the previous round's choice per element
        self.prev = {"error": np.full(m, np.inf), "value": np.full(m, np.nan), "rounding": np.full(m, np.nan)}
        self.prev.update(j=np.zeros(m, np.int64), k=np.zeros(m, np.int64))
        zeros = np.zeros(m, np.int64)
        self.out = Refined(np.full(m, np.nan), np.full(m, np.inf), rows.evals, np.full(m, np.nan), zeros, zeros < 0)

    def term(self, idx: np.ndarray, value: np.ndarray) -> np.ndarray:
        """The rounding of the terms the element enters, per value: ``eps |x| |phi'|`` (their size, for a power of
        ``x``), at most ``term_cap`` (where a probe measured the rounding of every term at once)."""
        known = np.where(np.isfinite(value), np.abs(value), 0.0)
        return np.minimum(ROUNDING_MODEL * self.eps * self.x_abs[idx] * known, self.term_cap[idx])

    def measure(self, idx: np.ndarray) -> None:
        """Measure the rounding of the terms an element enters where the model exceeds the cap, once per element:
        the cap is what a probe along all elements at once measured; the model ``eps |x| |phi'|`` is ``p`` times
        the size of a term ``x**p``. Where the model exceeds the cap, the cap stands for the element's rounding,
        and it measured every element's terms together: several times one element's own where other elements
        enter terms as large. Asked once the trusted estimate of ``phi'``, less its estimated error, says so,
        and only where the cap is over ``MEASURE_ABOVE`` times the rounding of ``phi`` itself: an element's
        measured rounding includes that of ``phi``, so a cap below it cannot come down severalfold.
        """
        if self.measurer is None:
            return
        value, cap = self.prev["value"][idx], self.term_cap[idx]
        phi0 = np.where(np.isfinite(self.rows.phi0[idx]), np.abs(self.rows.phi0[idx]), 0.0)
        with np.errstate(invalid="ignore"):
            # the least |phi'| the estimate allows: a coarse estimate at large steps asks for nothing yet
            least = np.abs(value) - self.prev["error"][idx]
            over = ROUNDING_MODEL * self.eps * self.x_abs[idx] * least > cap
            over &= ~self.measured[idx] & (cap > MEASURE_ABOVE * ROUNDING_MODEL * self.eps * phi0)
        ask = idx[over]
        if ask.size:
            self.measured[ask] = True
            self.term_cap[ask] = np.minimum(self.term_cap[ask], self.measurer(ask, value[over]))

    def bound(self, idx: np.ndarray, unit: np.ndarray, weighted: np.ndarray, value: np.ndarray) -> np.ndarray:
        """Rounding bound of stencil estimates: every value off by ``eps |phi|`` plus :meth:`term`, or the noise."""
        model = ROUNDING_MODEL * self.eps * weighted + self.term(idx, value)[:, None] * unit
        return np.maximum(self.noise[idx, None] * unit, model)

    def spread(self, idx: np.ndarray, k: int, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Independent (root-sum-square) and shared (the base point's) rounding of each row, for the table."""
        rows = self.rows
        term = self.term(idx, value)[:, None]
        unit = np.nan_to_num(rows.rms_unit[idx, : k + 1])
        indep = ROUNDING_MODEL * self.eps * np.nan_to_num(rows.rms[idx, : k + 1]) + term * unit
        indep = np.maximum(indep, self.noise[idx, None] * unit)
        phi0 = np.where(np.isfinite(rows.phi0[idx]), np.abs(rows.phi0[idx]), 0.0)[:, None]
        shared = np.maximum(ROUNDING_MODEL * self.eps * phi0 + term, self.noise[idx, None])
        return indep, shared * rows.w0[idx, : k + 1]

    def round(self, k: int) -> None:
        rows, prev = self.rows, self.prev
        active = np.flatnonzero(~self.done)
        if active.size == 0:
            return
        rows.add(active, k)
        self.measure(active)
        base = rows.base[active, : k + 1]
        self.failed[active] += ~np.isfinite(base[:, -1])
        rounding = self.bound(active, rows.unit[active, : k + 1], rows.weighted[active, : k + 1], base[:, -1])
        self.start[active], growing = _restart(base, rounding, self.start[active], k, rows.stencil)
        self.wasted[active] += growing
        if k == 0:
            return
        pick = _select(base, self.spread(active, k, base[:, -1]), self.start[active], rows.stencil)
        last = {key: arr[active] for key, arr in prev.items()}
        with np.errstate(invalid="ignore"):
            # at the floor: truncation no longer visible, or the rounding of the newest step alone exceeds it
            floor = last["error"] <= np.maximum(FLOOR_FACTOR * last["rounding"], self.target[active])
            floor |= pick["row_rounding"] >= last["error"]
            agrees = np.abs(pick["row_value"] - last["value"]) <= last["error"] + pick["row_error"]
        # the newest trusted choice; the previous one if a jump has just untrusted every entry
        use_last = ~np.isfinite(pick["error"]) & np.isfinite(last["error"])
        for key, arr in prev.items():
            arr[active] = np.where(use_last, last[key], pick[key])
        converged = floor & agrees & np.isfinite(last["error"])
        if converged.any():
            sure = self.confirm(active[converged])
            failed = active[converged][~sure]
            self.start[failed] = k + 1  # aliased: everything so far is suspect
            prev["error"][failed] = np.inf
            converged[np.flatnonzero(converged)[~sure]] = False
        used = k + 1 - np.maximum(self.failed[active] + self.wasted[active], self.start[active])
        stop = converged | (used >= self.max_rows) | (k + 1 >= rows.base.shape[1])
        self.finish(active[stop], converged[stop], pick, stop)

    def confirm(self, idx: np.ndarray) -> np.ndarray:
        """Check each chosen entry against a stencil at a step off the geometric sequence.

        A function whose period aliases with the halving steps (``sin(w h_k)`` the same for every ``k``) gives a
        table that looks converged; at ``CONFIRM_STEP * h_k`` a stencil jumps away. On a smooth function it moves
        from ``h_k`` to ``0.7 h_k`` by less than from ``2 h_k`` to ``h_k`` (plus rounding), or than the change
        from ``4 h_k`` to ``2 h_k`` predicts (``/ 2**p``) where that is larger: two error terms of opposite signs
        that nearly cancel between ``2 h_k`` and ``h_k`` (an inflection point under a one-sided stencil) make
        that one change small, and the next move grows back, as in a dip of the table (:func:`_restart`). The
        check uses the plain central difference for every symmetric stencil (2 evaluations; its values at
        ``h_k``, ``2 h_k`` and ``4 h_k`` are already there), the stencil itself for a one-sided one (1 evaluation).
        """
        st = self.rows.stencil
        probe = STENCILS["central"] if st.increment == 2 else st
        k = np.maximum(self.prev["k"][idx], 1)
        hk = self.rows.h0[idx] * RATIO ** -k.astype(np.float64)
        # the change before, only from a row the table still trusts (not from steps above the function's scale)
        k2 = np.where(k - 2 >= self.start[idx], k - 2, k - 1)
        parts = [
            self.rows.cached(idx, probe, k),
            self.rows.cached(idx, probe, k - 1),
            self.rows.at(idx, probe, CONFIRM_STEP * hk),
            self.rows.cached(idx, probe, k2),
        ]
        here, coarser, extra, before = (p[0] for p in parts)
        rnd = [self.bound(idx, p[1][:, None], p[2][:, None], p[0])[:, 0] for p in parts]
        shrink = RATIO**probe.order
        with np.errstate(invalid="ignore"):
            predicted = (np.abs(coarser - before) + rnd[3]) / shrink
            slack = CONFIRM_TOLERANCE * (np.fmax(np.abs(here - coarser), predicted) + rnd[0] + rnd[1] + rnd[2])
            return np.abs(extra - here) <= slack

    def finish(self, fin: np.ndarray, converged: np.ndarray, pick: dict, stop: np.ndarray) -> None:
        prev, out, st = self.prev, self.out, self.rows.stencil
        trusted = np.isfinite(prev["error"][fin])
        choice = {key: np.where(trusted, prev[key][fin], pick["any_" + key][stop]) for key in prev}
        out.value[fin] = choice["value"]
        out.error[fin] = np.where(trusted & converged, choice["error"], UNCONVERGED_FACTOR * choice["error"])
        out.converged[fin] = trusted & converged
        out.step[fin] = self.rows.h0[fin] * RATIO ** -choice["k"].astype(np.float64)
        out.order[fin] = st.order + st.increment * choice["j"]
        self.done[fin] = True


def refine(
    evaluate: Evaluate,
    first_step: np.ndarray,
    x_abs: np.ndarray,
    eps: float,
    *,
    stencil: Stencil = STENCILS["central"],
    noise: Any = 0.0,
    phi0: Any = np.nan,
    options: RefineOptions | None = None,
) -> Refined:
    """Sharp derivatives of many elements, in rounds: every open element gets its next step, then the tables
    of all of them are rebuilt and judged at once (numpy over elements; the calls themselves stay serial).

    ``first_step`` and ``x_abs`` have one entry per element; ``eps`` is the machine epsilon of ``phi``;
    ``noise`` (a bound on the error of one value of ``phi``, measured) and ``phi0`` are scalars or per element;
    ``options`` (:class:`RefineOptions`) holds the target error, the most rows and the cap on the modelled
    rounding of the terms an element enters.
    """
    options = RefineOptions() if options is None else options
    first_step = np.asarray(first_step, dtype=np.float64)
    m = first_step.size
    phi0 = np.broadcast_to(np.asarray(phi0, np.float64), (m,)).copy()
    # rows where phi failed (past the edge of its domain), or before a restart, or whose change grew (steps above
    # the function's scale) do not count against max_rows, up to as many again
    capacity = options.max_rows * 2 if options.max_rows > 1 else 1
    rows = _Rows(evaluate, first_step, stencil, phi0, capacity)
    x_abs = np.broadcast_to(np.asarray(x_abs, dtype=np.float64), (m,))
    noise = np.broadcast_to(np.asarray(noise, dtype=np.float64), (m,))
    state = _Refiner(rows, x_abs, eps, noise, options)
    for k in range(capacity):
        state.round(k)
    if options.max_rows == 1:  # one row has no error estimate: the stencil itself, unconverged
        state.out.value[:] = rows.base[:, 0]
        state.out.step[:], state.out.order[:] = first_step, stencil.order
    return state.out


def _restart(
    base: np.ndarray, rounding: np.ndarray, start: np.ndarray, k: int, stencil: Stencil
) -> tuple[np.ndarray, np.ndarray]:
    """The first row to trust: after a NaN row, or from a row whose change jumps up instead of shrinking; and
    whether the newest change grew at all beyond rounding (the steps are still above the function's scale).

    The test watches the first column of order 2 or more: a one-sided column (order 1) mixes its ``h`` and
    ``h**2`` terms at large steps and may change non-monotonically on a polynomial, its first extrapolation not."""
    start = start.copy()
    start[~np.isfinite(base[:, -1])] = k + 1
    growing = np.zeros(start.shape, dtype=bool)
    series, bound = base, rounding
    if stencil.order < 2:
        c = RATIO**stencil.order
        series = base[:, 1:] + (base[:, 1:] - base[:, :-1]) / (c - 1.0)
        bound = rounding[:, 1:] * (c + 1.0) / (c - 1.0)
    if series.shape[1] >= 3:
        change = np.abs(series[:, -1] - series[:, -2])
        before = np.abs(series[:, -2] - series[:, -3])
        with np.errstate(invalid="ignore"):
            growing = (change > before) & (change > JUMP_ROUNDING * bound[:, -1])
            jump = growing & (change > (JUMP_GROWTH if stencil.order < 2 else SYMMETRIC_JUMP_GROWTH) * before)
            if series.shape[1] >= 4:
                # a dip is no jump: two error terms of opposite signs that nearly cancel at one step make that
                # change small, and the next one grows back, still below the change before the dip
                jump &= change > np.abs(series[:, -3] - series[:, -4])
            else:
                # the first two changes have no earlier one to tell a dip: only a far larger growth is a jump
                jump &= change > FIRST_JUMP_GROWTH * before
        start[jump] = np.maximum(start[jump], k)
    return start, growing


def _tables(base: np.ndarray, spread: tuple[np.ndarray, np.ndarray], stencil: Stencil) -> tuple[np.ndarray, ...]:
    """Richardson tables ``T[:, j, k]`` and their rounding bounds ``U[:, j, k]``.

    ``T[j, k] = sum_r A[j, k, r] B_r`` over the base estimates; the rounding of distinct values adds in
    quadrature (``ROUNDING_SPREAD`` deviations), that of the base point, shared by every row, coherently.
    """
    a, n_rows = base.shape
    levels = min(n_rows, MAX_LEVELS)
    A = np.full((levels, n_rows, n_rows), np.nan)
    A[0] = np.eye(n_rows)
    for j in range(1, levels):
        c = RATIO ** (stencil.order + (j - 1) * stencil.increment)
        A[j, 1:] = (c * A[j - 1, 1:] - A[j - 1, :-1]) / (c - 1.0)
    A = np.nan_to_num(A)  # undefined entries: T is NaN there
    T = np.einsum("jkr,ar->ajk", A, np.nan_to_num(base))
    T[np.isnan(_propagate(base, levels))] = np.nan
    indep, shared = spread
    U = ROUNDING_SPREAD * np.sqrt(np.einsum("jkr,ar->ajk", A**2, indep**2) + np.einsum("jkr,ar->ajk", A, shared) ** 2)
    return T, U


def _propagate(base: np.ndarray, levels: int) -> np.ndarray:
    """NaN where a table entry is undefined or uses a NaN base estimate."""
    out = np.full((base.shape[0], levels, base.shape[1]), np.nan)
    out[:, 0] = base
    for j in range(1, levels):
        out[:, j, 1:] = out[:, j - 1, 1:] + out[:, j - 1, :-1]
    return out


def _select(base: np.ndarray, spread: tuple[np.ndarray, np.ndarray], start: np.ndarray, stencil: Stencil) -> dict:
    """The trusted entry of least estimated error per element, the best entry of the newest row, and the entry
    of least error regardless of trust (the fallback)."""
    T, U = _tables(base, spread, stencil)
    a, levels, n_rows = T.shape
    R = U[:, :, 1:]
    change = np.abs(np.diff(T, axis=2))  # entry k against entry k - 1, for k = 1 .. n_rows - 1
    expected = RATIO ** (stencil.order + np.arange(levels) * stencil.increment)
    # the change bounds the error of the coarser entry; of the finer one only if the column shrinks at least
    # twofold per step, so a slower column (one-sided, first column) counts its change twice
    margin = np.maximum(1.0, 2.0 / (expected - 1.0))[None, :, None]
    j = np.arange(levels)[None, :, None]
    first = np.arange(1, n_rows)[None, None, :] - 1 - j  # the first row the estimate uses
    earlier = np.full_like(change, np.nan)
    earlier[:, :, 1:] = change[:, :, :-1]
    # a change far below what the previous one predicts (earlier / expected) is two errors that happen to agree:
    # the prediction is then the better measure
    # in a slow column the change is doubled, and so is the rounding it carries: that of both entries is added
    # before doubling (a rounding error of the change that made it look small would otherwise be hidden)
    slow = np.where(margin > 1.0, R + U[:, :, :-1], 0.0)
    err = margin * (np.fmax(change, earlier / expected[None, :, None]) + slow) + R
    shrink = np.minimum(CONVERGENCE, 0.75 * expected)[None, :, None]
    s = start[:, None, None]
    with np.errstate(invalid="ignore"):
        # trusted: the column shrinks as it should, or two consecutive changes are at the rounding level
        converging = earlier >= shrink * change
        settled = (change <= ROUNDING_ACCEPT * R) & (earlier <= ROUNDING_ACCEPT * R)
        ok = (first - 1 >= s) & (converging | settled) & np.isfinite(err)
    flat_err = np.where(ok, err, np.inf).reshape(a, -1)
    flat_any = np.where(np.isfinite(err), err, np.inf).reshape(a, -1)
    values = T[:, :, 1:].reshape(a, -1)
    rounding = R.reshape(a, -1)
    rows_ = np.arange(a)
    best = np.argmin(flat_err, axis=1)
    anyb = np.argmin(flat_any, axis=1)
    row_err = np.where(np.isfinite(err[:, :, -1]), err[:, :, -1], np.inf)
    row_j = np.argmin(row_err, axis=1)
    e_best = flat_err[rows_, best]
    return {
        "error": e_best,
        "value": np.where(np.isfinite(e_best), values[rows_, best], np.nan),
        "rounding": rounding[rows_, best],
        "j": best // (n_rows - 1),
        "k": best % (n_rows - 1) + 1,
        "row_error": row_err[rows_, row_j],
        "row_value": T[rows_, row_j, -1],
        "row_rounding": np.fmin.reduce(R[:, :, -1], axis=1),  # (nanmin, without its 'All-NaN slice' warning)
        "any_error": flat_any[rows_, anyb],
        "any_value": np.where(np.isfinite(flat_any[rows_, anyb]), values[rows_, anyb], base[:, -1]),
        "any_rounding": rounding[rows_, anyb],
        "any_j": anyb // (n_rows - 1),
        "any_k": anyb % (n_rows - 1) + 1,
    }
