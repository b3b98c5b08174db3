"""Machinery the framework frontends share: an evaluator that remembers points, so first differences can be
evaluated in batches (vmap) before a strategy asks for them. Framework-free: numpy and the core only.
"""

from __future__ import annotations

import copy
import difflib
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backcheck.backends import FRAMEWORK_BATCH_BYTES, rows_per_call
from backcheck.calls import did_you_mean, first_line, function_name
from backcheck.errors import ArgumentError, BadInputError
from backcheck.evaluate import Evaluator, Output
from backcheck.findings import SMALL_ERROR
from backcheck.moves import pair_dots
from backcheck.numeric.steps import default_steps
from backcheck.report import Finding, Report
from backcheck.strategies import choose, resolve
from backcheck.tree import Tree
from backcheck.verdict import WIDE_AGREEMENT, typical_size

#: Below this many elements 'auto' does not vectorize: a few dozen serial calls cost less than vmap's setup.
AUTO_MIN_ELEMENTS = 8
#: The prefix of the leaves that hold the forward-mode (jvp) section of a report.
JVP_PREFIX = "jvp:"


class VectorizeError(RuntimeError):
    """A vectorized evaluation disagreed with the serial one, so it is not used."""


class CachedEvaluator(Evaluator):
    """An :class:`Evaluator` that remembers the points it has evaluated and can prefetch them in batches.

    ``prefetch`` evaluates the first central differences of many elements in a few vectorized calls (vmap);
    ``element`` then serves them and counts each one as one evaluation when it is first used, so
    ``n_evals`` is the same as for serial evaluation. A point asked for again (a second section of a report
    over the same function, e.g. the forward-mode check after the reverse-mode one) is served from memory
    and not counted again. Points around a shifted base point are never remembered.
    """

    def __init__(self, tree: Tree, call: Callable[[Any], Any], output: Output, fname: str = "f"):
        super().__init__(tree, call, output, fname)
        self._elements: dict[tuple[int, float], list[Any]] = {}  # (i, step) -> [phi, scale, disp, counted]
        self._directions: dict[tuple[Any, bytes, tuple[float, ...]], tuple[np.ndarray, list[np.ndarray], np.ndarray]]
        self._directions = {}
        self._depth = 0
        self.n_prefetched = 0

    def _element(self, i: int, steps: Sequence[float], retries: int) -> tuple[np.ndarray, np.ndarray, float]:
        # every single-element evaluation (element(), and first differences one at a time) passes here
        keys = [(int(i), float(s)) for s in steps]
        if self._depth == 0:
            hits = [self._elements.get(k) for k in keys]
            if all(h is not None for h in hits):
                phis, disp = np.empty(len(keys)), np.empty(len(keys))
                for j, h in enumerate(hits):
                    assert h is not None
                    phis[j], disp[j] = h[0], h[2]
                    if not h[3]:
                        h[3] = True
                        self.n_evals += 1
                        self.scale = max(self.scale, h[1])
                self._probed(self.tree.leaf_of(i), phis)
                return phis, disp, 1.0
        phis, disp, factor = super()._element(i, steps, retries)
        if self._depth == 0 and factor == 1.0:
            for k, p, d in zip(keys, phis, disp, strict=True):
                self._elements[k] = [float(p), 0.0, float(d), True]
        return phis, disp, factor

    def direction(
        self,
        idx: np.ndarray,
        coef: np.ndarray,
        steps: Sequence[float],
        out: Sequence[np.ndarray] | None = None,
        weights: Sequence[np.ndarray] | None = None,
    ) -> tuple[np.ndarray, list]:
        if self._depth:
            return super().direction(idx, coef, steps, out, weights)
        coef = np.asarray(coef, dtype=np.float64)
        key = (_positions_key(idx), _fingerprint(coef), tuple(float(s) for s in steps))
        hit = self._directions.get(key)
        if hit is None or not np.array_equal(hit[2], coef):  # a fingerprint is confirmed on the full values
            phis, disps = super().direction(idx, coef, steps, out)  # displacements kept: a later section's
            self._directions[key] = (phis.copy(), [d.copy() for d in disps], coef.copy())
        else:
            phis, disps = hit[0].copy(), [d.copy() for d in hit[1]]
        if weights is None:
            return phis, disps
        return phis, pair_dots(disps, weights)

    @contextmanager
    def shifted(self, delta: np.ndarray, evaluate: bool = True) -> Iterator[float]:
        self._depth += 1
        try:
            with super().shifted(delta, evaluate) as phi:
                yield phi
        finally:
            self._depth -= 1

    def prefetch(
        self, idx: np.ndarray, steps: np.ndarray, batch: Callable[[np.ndarray], list[np.ndarray]], chunk: int
    ) -> int:
        """Evaluate ``phi`` at ``x +- steps[i] e_i`` for every ``i`` in ``idx`` with vectorized calls.

        ``batch(X)`` evaluates the function at the rows of ``X`` (points x elements, float64, each value
        representable in its array's dtype) and returns the output arrays, each with a leading batch axis.
        The first call also evaluates the original point and must reproduce ``phi0`` (up to rounding), or
        :class:`VectorizeError` is raised. Returns the number of points evaluated. Nothing is remembered
        unless every call succeeds.
        """
        tree = self.tree
        base = np.concatenate([lf.original.reshape(-1).astype(np.float64) for lf in tree.leaves])
        which = np.searchsorted(tree.offsets, idx, side="right") - 1
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        disps: list[np.ndarray] = []
        keys: list[tuple[int, float]] = []
        for k, leaf in enumerate(tree.leaves):
            sel = np.asarray(idx)[which == k]
            if not sel.size:
                continue
            x64 = leaf.original.reshape(-1)[sel - leaf.offset].astype(np.float64)
            for sign in (1.0, -1.0):
                s = sign * steps[sel]
                xk = (x64 + s).astype(leaf.dtype).astype(np.float64)
                cols.append(sel)
                vals.append(xk)
                disps.append(xk - x64)
                keys.extend(zip(sel.tolist(), s.tolist(), strict=True))
        col, val, disp = np.concatenate(cols), np.concatenate(vals), np.concatenate(disps)
        rows = np.concatenate([[-1], np.arange(col.size)])  # -1: the original point, to validate the batch
        found: dict[tuple[int, float], list[Any]] = {}
        eps = self.out_eps
        for start in range(0, rows.size, chunk):
            sub = rows[start : start + chunk]
            X = np.repeat(base[None, :], sub.size, axis=0)
            pts = sub >= 0
            X[np.flatnonzero(pts), col[sub[pts]]] = val[sub[pts]]
            parts = batch(X)
            for r, j in enumerate(sub):
                self.output.track = j >= 0  # (first differences: the outputs they move are recorded)
                try:
                    phi, scale, _dtype = self.output.reduce([p[r] for p in parts])
                finally:
                    self.output.track = False
                if j < 0:
                    if not abs(phi - self.phi0) <= 64 * eps * max(scale, abs(self.phi0)) + 1e-300:
                        raise VectorizeError(
                            f"the vectorized call gives phi = {phi!r} at the original point, the serial one "
                            f"{self.phi0!r}"
                        )
                elif np.isfinite(phi):
                    found[keys[j]] = [phi, scale, float(disp[j]), False]
        for key, entry in found.items():
            self._elements.setdefault(key, entry)
        self.n_prefetched += len(found)
        return len(found)


def prefetch_first_differences(
    ev: CachedEvaluator,
    *,
    strategy: str | None,
    samples: int | None,
    seed: int,
    step: Any,
    batch: Callable[[np.ndarray], list[np.ndarray]],
    notes: list[str],
    what: str,
) -> bool:
    """Prefetch the first differences the strategy will ask for; on any failure note it and return False.

    Only the elementwise strategies ('full', 'sparse') difference element by element; for the others
    (projected, auto) there is nothing to prefetch.
    """
    strategy = resolve(strategy, ev.tree.size)
    if strategy not in ("full", "sparse"):
        return False
    idx = choose(strategy, [np.arange(ev.tree.size)], samples, np.random.default_rng(seed))
    steps = default_steps(ev.tree, step)
    budget = ev.max_batch_bytes or FRAMEWORK_BATCH_BYTES
    chunk = max(8, rows_per_call(8 * ev.tree.size, budget))  # float64 rows of the point
    try:
        ev.prefetch(idx, steps, batch, chunk)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the fast path falls back to the serial one
        notes.append(
            f"{what} of {ev.fname} failed ({type(exc).__name__}: {first_line(exc)}); it was evaluated one point "
            "at a time instead."
        )
        return False
    return True


def _positions_key(idx: Any) -> Any:
    """A hashable key of a direction's positions: a slice's ends, or the positions' bytes."""
    if isinstance(idx, slice):
        return (idx.start, idx.stop)
    return np.asarray(idx, dtype=np.int64).tobytes()


#: Coefficients sampled into a direction's fingerprint (the full values confirm a hit).
FINGERPRINT = 257


def _fingerprint(coef: np.ndarray) -> bytes:
    """A short digest of a direction's coefficients: a strided sample, its size and its sum."""
    stride = max(1, coef.size // FINGERPRINT)
    return coef[::stride].tobytes() + np.array([coef.size, float(np.sum(coef))]).tobytes()


def wide_disagreement(tree: Tree, g: np.ndarray, wide: np.ndarray, eps: np.ndarray, spread: Any = None) -> str:
    """Why the float64 run ``wide`` of the backward pass cannot stand in for the native gradient ``g``'s
    formula ('' when it can): per tensor, their gap against the native rounding (``eps`` per element, of
    intermediates of unit size or of the inputs' own, times the gradient's largest element; and the measured
    ``spread`` of the native result when every input moves by a unit in the last place). A log-space backward
    at inputs near 1e4 (logcumsumexp's ``exp(log|g| - result)``) rounds ``result`` on a grid of 1e-3 in float32,
    which a nudge of its inputs by one unit does not move."""
    inputs = max((_largest_finite(lf.original) for lf in tree.leaves if lf.size), default=0.0)
    for leaf in tree.leaves:
        sl = slice(leaf.offset, leaf.offset + leaf.size)
        if not leaf.size:
            continue
        scale = max(float(np.max(np.abs(wide[sl]))), 1.0) * max(inputs, 1.0)
        gap = float(np.max(np.abs(g[sl] - wide[sl])))
        moved = 0.0 if spread is None else float(np.max(spread[sl]))
        allowed = WIDE_AGREEMENT * max(moved, float(eps[leaf.offset]) * scale)
        if not gap <= allowed:
            return (
                f"the float64 run of the backward pass differs from its own-dtype result for {leaf.name} by "
                f"{gap:.3g}, more than the own-dtype result's rounding ({allowed / WIDE_AGREEMENT:.3g}): the gradient "
                "is judged at its own dtype's resolution, not through the float64 run."
            )
    return ""


def wide_refused(what: str, exc: BaseException) -> str:
    """The note for a backward pass whose float64 run raised: the gradient is judged at its own dtype alone."""
    return (
        f"the float64 run of the backward pass of {what} raised {type(exc).__name__} ({first_line(exc)}), so the "
        "gradient is judged at its own dtype's resolution only."
    )


def _largest_finite(a: np.ndarray) -> float:
    """The largest finite magnitude in ``a`` (0 where none: masks of -inf)."""
    v = np.abs(np.asarray(a, dtype=np.float64).reshape(-1))
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size else 0.0


# -- the inputs of a layer (check_layer, check_object) -------------------------------------------------------
def float_input(x: Any) -> bool:
    return isinstance(x, float) or (isinstance(x, (np.ndarray, np.generic)) and np.asarray(x).dtype.kind == "f")


def float_list(x: Any) -> bool:
    """A list or tuple of float arrays (``forward(X)`` with ``X = [a, b]``): one input, differentiated whole."""
    return (
        isinstance(x, (list, tuple))
        and len(x) > 0
        and all(isinstance(v, np.ndarray) and v.dtype.kind == "f" for v in x)
    )


def float_dict(x: Any) -> bool:
    """A dict of float arrays (deeplearning.ai's ``parameters`` of a cell: ``{"Wax": ..., "ba": ...}``): one input,
    differentiated entry by entry."""
    return (
        isinstance(x, Mapping)
        and len(x) > 0
        and all(isinstance(k, str) and isinstance(v, np.ndarray) and v.dtype.kind == "f" for k, v in x.items())
    )


def python_float(x: Any) -> bool:
    """A bare Python float (not np.float64, not a 0-d array): a hyperparameter unless backward claims it."""
    return type(x) is float


#: Values passed to every evaluation as they are (immutable, or random generators the check replays).
_SHARED = (int, float, complex, bool, str, bytes, type(None), np.generic)


def mutable_input(x: Any) -> bool:
    """A config dict, list or object that ``forward`` may write into (not an array, not a generator)."""
    from backcheck.randomness import _is_generator

    return not (isinstance(x, (*_SHARED, np.ndarray)) or _is_generator(x) or callable(x))


def private_copy(x: Any) -> Any:
    """A private copy of a fixed input, or the value itself when it cannot be written (or is a generator)."""
    if isinstance(x, np.ndarray):
        return x.copy()
    if not mutable_input(x):
        return x
    try:
        return copy.deepcopy(x)
    except Exception:  # noqa: BLE001 - a lock or file inside: its container copied one level deep instead
        pass
    try:
        return copy.copy(x)
    except Exception as exc:  # noqa: BLE001 - the user's object refuses every copy: named, typed
        from backcheck.errors import BadInputError

        raise BadInputError(
            f"an input passed through unperturbed ({type(x).__name__}) can be neither deep-copied nor copied "
            f"({type(exc).__name__}: {exc}); the check gives every evaluation a private copy, so that the "
            "function's writes into it never reach yours.",
            "pass a copyable config (a dict of plain values), or close over the object in the function instead.",
        ) from exc


def zero_dout_error(fname: str, what: str = "dout", masked: bool = False) -> Exception:
    """The error for a ``dout`` (``what``) that is zero everywhere: ``<dout, fn(x)>`` is then identically zero,
    its every derivative too, and any backward that multiplies by its cotangent agrees with it; nothing is
    compared. ``masked``: its nonzero entries sat at masked (infinite) entries of the output, set to 0 there."""

    where = " outside the output's masked (infinite) entries, where it is set to 0," if masked else ""
    return BadInputError(
        f"{what} is zero everywhere{where} so <{what}, {fname}(...)> is identically zero and so is its gradient: every "
        f"rule that multiplies by its incoming {what}, right or wrong, gives 0, and the check would compare "
        "nothing.",
        f"a zero {'upstream gradient' if what == 'dout' else what} compares nothing: pass a nonzero {what} (or "
        f"leave {what}=None for a seeded random "
        "one); to check some outputs alone, give the others' cotangent as zeros and theirs nonzero.",
    )


#: The upstream-gradient scales every frontend probes a backward's linearity at (a layer's backward, costlier to
#: call, at the first only). Powers of two, so that a linear backward's gradient for them, scaled back, is the
#: first one bit for bit (but for underflow). A few times larger and smaller than the cotangent: a backward that
#: clips, normalizes or thresholds it crosses a threshold near its size; not more, since a backward iterated to
#: an absolute tolerance (an implicit layer's fixed point) may never converge on a cotangent far larger than the
#: one it was written for. The larger negative: a backward only positively homogeneous in it (guided
#: backpropagation's ``maximum(g, 0)``, ``abs(g)``) agrees with a linear one on positive scales at a scalar
#: output's cotangent of 1.
LINEAR_PROBES = (-4.0, 0.25)
#: A scaled cotangent's gradient, scaled back, must differ from the first by more than epsilon to this power
#: (relative to the check's largest gradient element) to count as not linear (see :func:`linearity_finding`).
LINEAR_ROOT = 1.0 / 3.0
#: ... and by more than this many units of the gradient dtype's epsilon (rounding in another order).
LINEAR_ULPS = 64.0


@dataclass
class Nonlinear(Finding):
    """A 'nonlinear backward' finding with the gaps behind it: per element, how far the gradient for a scaled
    cotangent, scaled back, moved (NaN where no scale told), for :func:`settle_linearity` to weigh against the
    elements' verdicts."""

    gaps: Any = field(default=None, repr=False, compare=False)
    #: the gradient for the cotangent itself, and per scale ``(times, gradient scaled back)``: what was compared
    probes: Any = field(default=None, repr=False, compare=False)


def scale_name(times: float) -> str:
    """A cotangent's scale as the messages write it: 4, -4, 1/4, -1/4."""
    sign, size = ("-" if times < 0 else ""), abs(times)
    return f"{sign}{size:g}" if size >= 1 else f"{sign}1/{1 / size:g}"


def linearity_finding(
    fname: str, tree: Tree, g1: np.ndarray, scaled: Sequence[tuple[float, np.ndarray]], eps: np.ndarray
) -> Finding | None:
    """A failing finding when the gradient for a scaled cotangent (``scaled``: (times, gradient scaled back)),
    is not the gradient ``g1`` for the cotangent itself beyond rounding: the backward is not linear in its
    incoming gradient.

    A backward that works in log space (logcumsumexp's) rounds a scaled cotangent differently, by its dtype's
    epsilon times the size of what it adds in log space (1e-12 of the gradient at inputs of 1e4 in float64); a
    rule solved to a tolerance whose step control follows the cotangent's size (an adaptive ODE adjoint, an
    implicit layer's fixed point) is linear only up to that tolerance. A difference counts only beyond the cube
    root of epsilon of the check's largest gradient element, over every tensor (6e-6 in float64, 5e-3 in
    float32): as large as what central differences resolve, whose bounds follow the size of the whole
    computation, not of one small tensor's gradient; a clipping or normalizing backward moves the gradient by a
    good part of itself. A scale whose gradient is not finite (overflow of a large gradient times the large
    scale) tells nothing.
    """
    worst: tuple[float, int, float, np.ndarray] | None = None
    hit: list[str] = []
    largest = _largest_finite(g1)
    for _, gk in scaled:
        largest = max(largest, _largest_finite(gk))
    for leaf in tree.leaves:
        sl = slice(leaf.offset, leaf.offset + leaf.size)
        for times, gk in scaled:
            if not np.all(np.isfinite(gk[sl])):
                continue
            gap = np.abs(gk[sl] - g1[sl])
            if not np.any(gap > np.maximum(LINEAR_ULPS * eps[sl], eps[sl] ** LINEAR_ROOT) * largest):
                continue
            hit.append(leaf.name)
            j = int(np.argmax(gap))
            if worst is None or gap[j] / largest > worst[0]:
                worst = (float(gap[j] / largest), leaf.offset + j, times, gk)
            break
    if worst is None:
        return None
    _, i, times, g_worst = worst
    leaf, _ = tree.locate(i)
    names = ", ".join(dict.fromkeys(n.removesuffix(".real").removesuffix(".imag") for n in hit))
    gaps = np.zeros(g1.size)
    for _, g_times in scaled:
        with np.errstate(invalid="ignore"):
            gaps = np.fmax(gaps, np.where(np.isfinite(g_times), np.abs(g_times - g1), np.nan))
    return Nonlinear(
        gaps=gaps,
        probes=(g1, list(scaled)),
        kind="nonlinear backward",
        message=(
            f"backward is not linear in its cotangent: the backward pass of {fname} with the upstream gradient "
            f"times {scale_name(times)} gives, scaled back, another gradient for {names} than with the upstream "
            f"gradient itself ({tree.element_name(i)}: {g_worst[i]:.6g} against {g1[i]:.6g}). "
            f"{_clipped_sentence(clip_bounds(tree, g1, scaled, eps))}The gradient of a "
            "function is linear in the incoming gradient; a backward that clips, normalizes or thresholds it "
            "(gradient clipping inside backward, or keeping only its positive part or its size: guided "
            "backpropagation's clamp(min=0), abs), or adds a term that does not depend on it (a weight decay), is "
            "not the function's derivative, and passes or fails depending on the cotangent. Clip the gradients "
            "outside the backward (in the optimizer's step), and add regularizers to the loss. (A backward solved "
            "to a tolerance whose steps follow the cotangent's size, an adaptive ODE adjoint, is linear only up to "
            "that tolerance: tighten it.)"
        ),
        where=leaf.name,
        elements=[tree.element_name(i)],
    )


def clip_bounds(
    tree: Tree, g1: np.ndarray, scaled: Sequence[tuple[float, np.ndarray]], eps: np.ndarray
) -> dict[str, float]:
    """Per array, the bound ``c`` at which the backward clips the gradients it returns, when that is the only
    way the gradients for scaled cotangents differ from ``g1``, and the cotangent checked does not reach it: for
    each scale, every element that moved came back at exactly ``+-c`` (with the sign of the unclipped value,
    which lies beyond ``c``), no element lies beyond ``c``, and ``g1`` lies strictly within it (a min-char-rnn's
    ``np.clip(dparam, -5, 5, out=dparam)`` at the end of its backward pass). Empty otherwise: a normalization or
    guided backpropagation's clamp give other values."""
    bounds: dict[str, float] = {}
    for leaf in tree.leaves:
        sl = slice(leaf.offset, leaf.offset + leaf.size)
        for times, gk in scaled:
            raw, want = gk[sl] * times, g1[sl] * times
            moved = np.abs(raw - want) > np.maximum(LINEAR_ULPS * eps[sl], eps[sl] ** LINEAR_ROOT) * np.abs(want)
            if not np.any(moved):
                continue
            c = float(np.abs(raw[moved]).max())
            at_c = np.abs(np.abs(raw[moved]) - c) <= LINEAR_ULPS * eps[sl][moved] * c
            beyond = np.abs(want[moved]) > c
            same_sign = np.sign(raw[moved]) == np.sign(want[moved])
            inside = np.abs(raw) <= c * (1 + LINEAR_ULPS * eps[sl])
            if not (c > 0 and at_c.all() and beyond.all() and same_sign.all() and inside.all()):
                return {}
            if not np.abs(g1[sl]).max(initial=0.0) < c or bounds.get(leaf.name, c) != c:
                return {}
            bounds[leaf.name] = c
    return bounds


def _clipped_sentence(bounds: dict[str, float]) -> str:
    """The sentence the nonlinear-backward message gives a backward that clips its results ("" if it does not)."""
    if not bounds:
        return ""
    said = ", ".join(f"{name} at +-{c:g}" for name, c in bounds.items())
    return (
        f"It clips the gradients it returns ({said}): at the upstream gradient checked no element reached the "
        "clip, so the gradients compared there are right, but where the clip engages they are not the "
        "function's. "
    )


def tangent_coefficients(n: int) -> np.ndarray:
    """The scales of the unit tangents summed into the tangent that probes a forward-mode rule's linearity:
    negative (a rule that uses its tangent's size, abs(t), agrees with a linear one on positive tangents), not of
    unit size (one that squares it agrees on 0 and 1), and unequal (their effects do not cancel in a sum): -1.5,
    -0.75, -0.375 in turn, exact in every float dtype."""
    return -1.5 * 2.0 ** -(np.arange(n) % 3)


def jvp_linearity_finding(
    fname: str, probe: np.ndarray, expected: np.ndarray, size: np.ndarray, eps: float, names: Sequence[str]
) -> Finding | None:
    """A failing 'nonlinear jvp' finding when the forward-mode rule's output tangent for the probing tangent
    (``probe``: the unit tangents scaled by :func:`tangent_coefficients` and summed) is not the same combination of
    the unit tangents' outputs (``expected``) beyond rounding, judged as :func:`linearity_finding` judges a
    backward: beyond the cube root of ``eps`` (the tangents' dtype) of the largest term (``size``: the sum of the
    terms' magnitudes, per output element). ``names``: each output element's name. Elements where either side
    is not finite tell nothing."""
    with np.errstate(invalid="ignore"):
        told = np.isfinite(probe) & np.isfinite(expected) & np.isfinite(size)
        if not np.any(told):
            return None
        largest = max(float(np.max(size[told])), float(np.max(np.abs(probe[told]))))
        gap = np.where(told, np.abs(probe - expected), 0.0)
    if not np.any(gap > max(LINEAR_ULPS * eps, eps**LINEAR_ROOT) * largest):
        return None
    j = int(np.argmax(gap))
    return Finding(
        kind="nonlinear jvp",
        message=(
            f"the forward-mode rule (jvp) of {fname} is not linear in its tangent: pushed through it, the sum of the "
            "unit tangents of the inputs' elements, scaled by -1.5, -0.75, -0.375 in turn, gives another output "
            f"tangent than the same sum of the unit tangents' own results ({names[j]}: {probe[j]:.6g} against "
            f"{expected[j]:.6g}). The derivative is linear in the tangent; a rule that uses the tangent's size "
            "(abs(t)), squares it, or clips it agrees with it on unit tangents only, and is wrong for every other "
            "direction a user pushes through it. Multiply the tangent by the derivative, and use nothing else of it."
        ),
        where=names[j].split("[")[0],
        elements=[names[j]],
    )


def settle_linearity(report: Report, tree: Tree, fname: str) -> None:
    """Drop a 'nonlinear backward' finding (for a note) when the check's elements show the scaled cotangents'
    gaps to be nothing new: every element's gap is within its bound (the element comparison could not see such a
    difference), or small (within :data:`SMALL_ERROR` of the gradient's typical size) and within the element's
    own error against the numeric derivative (the rule is off by that much already, and the elements fail for
    it: a rule solved to a tolerance whose steps follow the cotangent's size). A clipping or normalizing backward
    moves the gradient by a good part of itself, and keeps the finding; so does an element not compared (a
    sampled or projected check). ``tree``: the reverse-mode leaves."""
    for found in [f for f in report.findings if isinstance(f, Nonlinear) and f.gaps is not None]:
        g, n, b = (tree.pack(t, "report") for t in (report.analytic, report.numeric, report.bound))
        told = np.isfinite(found.gaps)
        gaps = found.gaps[told]
        with np.errstate(invalid="ignore"):
            err = np.abs(g - n)[told]
            small = SMALL_ERROR * typical_size(g[np.isfinite(n)])
            if not np.all((gaps <= b[told]) | ((gaps <= err) & (gaps <= small))):
                continue  # (NaN: an element not compared)
        report.findings.remove(found)
        report.notes.append(_linear_enough(fname, found))


def _linear_enough(fname: str, found: Nonlinear) -> str:
    worst = float(np.nanmax(found.gaps, initial=0.0))
    return (
        f"the backward pass of {fname} is linear in its cotangent only up to {worst:.2g} (its gradient for a scaled "
        "cotangent, scaled back, moves by that much), no more than what the check resolves, or than its own small "
        "error against the numeric derivative, in every element, so it is not reported as a nonlinear backward; a "
        "rule solved to a tolerance whose steps follow the cotangent's size does this."
    )


#: Keywords of torch's own builtin functions (whose signatures cannot be read) that lie near an option's name:
#: passed to the function, never taken for a misspelt option.
OP_KEYWORDS = frozenset({"out", "tol", "scales", "num_samples", "dropout", "pad_mode"})


def check_keywords(fn: Callable[..., Any], kwargs: dict[str, Any], entry: Callable[..., Any], where: str) -> None:
    """Keyword inputs must be parameters of ``fn`` (a misspelt option would otherwise reach ``fn``, or be dropped
    by its ``**kwargs``): an :class:`ArgumentError` naming the keyword, the entry point (``where``, the public
    name of ``entry``) and its options (``entry``'s keyword-only parameters)."""
    if not kwargs:
        return
    options = [p.name for p in inspect.signature(entry).parameters.values() if p.kind == p.KEYWORD_ONLY]
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # (a builtin: a keyword one letter off an option is a misspelt option)
        unknown = sorted(k for k in kwargs if k not in OP_KEYWORDS and difflib.get_close_matches(k, options, 1, 0.75))
    else:
        if any(p.kind == p.VAR_KEYWORD for p in params):
            return
        names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        unknown = sorted(set(kwargs) - names)
    if unknown:
        raise ArgumentError(
            f"{unknown[0]}= is neither an option of {where} nor a parameter of {function_name(fn)}"
            + did_you_mean(unknown[0], options),
            f"options: {', '.join(options)}; any other keyword is passed to the function as an input.",
        )
