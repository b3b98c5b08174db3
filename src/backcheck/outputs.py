"""How a function's raw output becomes the one float64 number ``phi`` the checker differences."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from backcheck.bits import dot
from backcheck.errors import NonFiniteError, NotScalarError

F64 = np.dtype(np.float64)


class Output:
    """How a function's raw output becomes the scalar ``phi``.

    ``Output.loss(name)`` accepts one number; ``Output.cotangent(u_flat, tree)`` flattens an output tree
    and dots it with the cotangent ``u``.
    """

    def __init__(
        self,
        reduce: Callable[[Any], tuple[float, float, np.dtype]],
        scalar: bool = False,
        anchor: Callable[[Any], tuple[float, float, np.dtype]] | None = None,
    ):
        self.reduce = reduce
        self.scalar = scalar  # a loss: a plain float output needs no reduction
        #: ``anchor(raw)`` reduces the output at the base point and makes later values relative to it
        self.anchor = anchor or reduce
        #: a cotangent output's flat outputs at the base point (empty until anchored) and its cotangent
        self.base: list[np.ndarray] = []
        self.weights: list[np.ndarray] = []
        #: the largest single term ``|u_j y_j|`` at the base point (0 for a loss: its value is the term)
        self.peak = 0.0
        #: the dtype the outputs declare at the base point (``anchor`` may find a narrower one computed)
        self.declared = np.dtype(np.float64)
        #: a cotangent output's flat outputs at the last reduced call, in float64 (empty for a loss)
        self.last: list[np.ndarray] = []
        #: per flat output, whether a first difference or a random direction (a move of about one step per
        #: element, while :attr:`track` is on) moved each entry to another finite value, where :attr:`reduce` and
        #: :meth:`rows` saw it (empty for a loss; see mixing.py)
        self.ever: list[np.ndarray] = []
        self.track = False
        #: per flat output, its masked entries at the base point (positions and values, +-inf), or None
        self.masks: list[tuple[np.ndarray, np.ndarray] | None] = []

    def rows(self, parts: Sequence[np.ndarray]) -> np.ndarray:
        """``phi`` of each row of outputs that carry a leading batch axis, as :attr:`reduce` computes it."""
        total = np.zeros(parts[0].shape[0] if len(parts) else 0)
        for k, (p, uu) in enumerate(zip(parts, self.weights, strict=True)):
            y = np.asarray(p).reshape(p.shape[0], -1).astype(np.float64)
            m = self.masks[k] if self.masks else None
            y = y if m is None else unmasked(y, m)
            delta = y - self.base[k] if self.base else y
            if self.track and self.ever:
                self.ever[k] |= ((delta != 0) & np.isfinite(delta)).any(axis=0)
            total += delta @ uu
        return total

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
            return value, abs(value), arr.dtype  # an integer dtype is the evaluator's to explain

        def anchor(out: Any) -> tuple[float, float, np.dtype]:
            value, size, dtype = reduce(out)
            # an integer loss declares no float precision: the evaluator explains it and steps as for float64
            output.declared = dtype if dtype.kind == "f" else np.dtype(np.float64)
            return value, size, computed_dtype_of(value, dtype) if dtype.kind == "f" else dtype

        output = cls(reduce, scalar=True, anchor=anchor)
        return output

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
        base: list[np.ndarray] = []
        masks: list[tuple[np.ndarray, np.ndarray] | None] = []  # per output: masked (+-inf) positions, values
        masked = False  # whether any output has masked entries (read at every call; set at the anchor)

        def arrays(out: Any) -> tuple[list[np.ndarray], np.dtype]:
            parts = flatten(out)
            if len(parts) != len(u64):
                raise NotScalarError(
                    f"{fname} returned {len(parts)} output array(s), but {len(u64)} were expected "
                    f"({', '.join(names)}).",
                    "a function must return the same structure at every call.",
                )
            ys, dtype = [], F64
            for k, p in enumerate(parts):
                arr = p if type(p) is np.ndarray else _as_array(p, f"{fname}'s output {names[k]}")
                if arr.shape != shapes[k]:
                    raise NotScalarError(
                        f"{fname}'s output {names[k]} has shape {arr.shape} at a perturbed point but {shapes[k]} "
                        "at the original point.",
                        "a function's output shape must not depend on its input values.",
                    )
                if arr.dtype is not F64 and arr.dtype.kind == "f" and arr.dtype.itemsize < dtype.itemsize:
                    dtype = arr.dtype
                ys.append(arr.reshape(-1).astype(F64, copy=False))
            if masked:
                ys = [y if m is None else unmasked(y, m) for y, m in zip(ys, masks, strict=True)]
            return ys, dtype

        def anchor(out: Any) -> tuple[float, float, np.dtype]:
            # phi is measured from the base point's outputs from now on: outputs a perturbation leaves
            # unchanged then add exactly zero, so a large output elsewhere (a pole) adds no rounding
            nonlocal masked
            masks[:], masked = [], False
            ys, output.declared = arrays(out)
            masks[:] = [mask_of(y) for y in ys]  # masked entries (-inf scores) weigh 0 and must stay as they are
            masked = any(m is not None for m in masks)
            ys = [y if m is None else unmasked(y, m) for y, m in zip(ys, masks, strict=True)]
            dtype = computed_dtype(ys, output.declared)
            base[:] = [y.copy() for y in ys]
            output.ever = [np.zeros(y.size, dtype=bool) for y in ys]
            # a backward pass mixes these terms through dout, so it cannot resolve its result below their rounding
            terms = [au * np.abs(y) for au, y in zip(absu, ys, strict=True) if y.size]
            many = sum(y.size for y in ys) > 1
            output.peak = max((float(np.max(t)) for t in terms), default=0.0) if many else 0.0
            return 0.0, sum(dot(au, np.abs(y)) for au, y in zip(absu, ys, strict=True)), dtype

        def reduce(out: Any) -> tuple[float, float, np.dtype]:
            """``(phi, scale, dtype)``: ``scale`` sums ``|u| |y|`` over the outputs that moved, the size whose
            rounding the difference carries."""
            ys, dtype = arrays(out)
            if not base:  # (before the anchor: masked entries, weighed 0, add 0)
                ys = [y if np.isfinite(y).all() else np.where(uu == 0, 0.0, y) for uu, y in zip(u64, ys, strict=True)]
                phi = sum(dot(uu, y) for uu, y in zip(u64, ys, strict=True))
                return phi, sum(dot(au, np.abs(y)) for au, y in zip(absu, ys, strict=True)), dtype
            phi = scale = 0.0
            for y, y0, uu, au, ever in zip(ys, base, u64, absu, output.ever, strict=True):
                delta = y - y0  # (base holds no inf, its masks at 0: no inf - inf here)
                moved = delta.nonzero()[0]  # (NaN counts as moved, as it is not 0)
                if not moved.size:
                    continue  # (phi and scale gain exact zeros)
                every = moved.size == y.size  # (every output moved: the same sums, without copies)
                finite = np.isfinite(delta if every else delta[moved])
                if np.count_nonzero(finite) == moved.size:  # (faster than .all() on a few entries)
                    phi += dot(uu, delta)
                    scale += dot(au, np.abs(y)) if every else dot(au[moved], np.abs(y[moved]))
                else:
                    with np.errstate(invalid="ignore"):  # (a mask that moved is NaN: the evaluator says what it means)
                        phi += dot(uu, delta)
                        scale += dot(au, np.abs(y)) if every else dot(au[moved], np.abs(y[moved]))
                    moved = moved[finite]
                if output.track:
                    ever[moved] = True
            output.last = ys
            return phi, scale, dtype

        output = cls(reduce, anchor=anchor)
        output.base, output.weights = base, u64  # for evaluations made elsewhere (batched rows, workers)
        output.masks = masks
        return output


def mask_of(y: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """An output's masked entries (+-inf, as ``masked_fill(mask, -inf)`` before a softmax leaves them): their
    positions and values; None when every entry is finite (the common case, one pass)."""
    if np.isfinite(y).all():
        return None
    where = np.flatnonzero(np.isinf(y))
    return where, y[where].copy()


def unmasked(y: np.ndarray, mask: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``y`` (flat outputs, or rows of them) with its masked entries at 0 (their cotangent is 0), all NaN where
    one of them moved: a mask that changes with the inputs is a jump of f, and NaN sends the step back as at the
    edge of f's domain."""
    where, values = mask
    out = y.copy()
    moved = (out[..., where] != values).any(axis=-1)  # (one boolean per row; a 0-d one for flat outputs)
    out[..., where] = 0.0
    out[moved] = np.nan
    return out


#: Telling values (non-integer, more digits than float16) needed to call an array output float32-computed.
NARROW_EVIDENCE = 3


def computed_dtype(ys: Sequence[np.ndarray], dtype: np.dtype) -> np.dtype:
    """The precision a function really computes in: float32 where it returns float64 values that are all exactly
    float32 (a kernel that casts its inputs and computes in float32, whatever dtype it is handed).

    Values with short mantissas (exact in float16: 0.5, 3.25, integers) are no evidence either way; a float64
    computation gives a float32-exact value otherwise with probability about 2**-29.
    """
    if dtype != _FLOAT64:
        return dtype
    if len(ys) == 1:
        values = np.ravel(ys[0])  # (read only)
    else:
        values = np.concatenate([np.ravel(y) for y in ys]) if len(ys) else np.empty(0)
    values = values[np.isfinite(values) & (values != np.round(values))]  # integers (1e10) tell nothing
    mantissa = np.frexp(values)[0]
    telling = mantissa.astype(np.float16) != mantissa  # more digits than float16 holds (0.5, 2**-51 tell nothing)
    told = np.count_nonzero(telling)
    if told < min(NARROW_EVIDENCE, len(values)) or not told:
        return dtype
    m = mantissa[telling]
    return _FLOAT32 if (m.astype(np.float32) == m).all() else dtype


_FLOAT64, _FLOAT32, _FLOAT16 = np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.float16)


def float16_work(dtype: np.dtype, inputs: Sequence[np.dtype], values: Sequence[np.ndarray]) -> np.dtype:
    """float16 where some input differenced is float16 and ``f`` returns a wider ``dtype`` whose every value at the
    point (``values``) is exact in float16, else ``dtype``.

    Work done in the inputs' own dtype and returned wider (a Python float of a float16 sum, a float16 kernel's
    result cast to float32) rounds as float16 does, and a bound from the wider dtype's rounding fails its right
    gradient (its differences stand still over steps its gradient moves by a fraction of float16's spacing). A
    wider computation shows digits beyond float16's, but for short values (3000.0, 0.5), which tell nothing:
    taken as float16 then, a looser bound, never a false failure. (float32 inputs are left to the rounding and
    noise the check measures, which meet them.)
    """
    if dtype.kind != "f" or dtype.itemsize <= 2 or _FLOAT16 not in inputs:
        return dtype
    flat = np.concatenate([np.ravel(v) for v in values]) if len(values) else np.empty(0)
    flat = flat[np.isfinite(flat)]
    with np.errstate(over="ignore"):
        exact = flat.astype(_FLOAT16).astype(np.float64) == flat
    return _FLOAT16 if flat.size and bool(exact.all()) else dtype


def computed_dtype_of(value: float, dtype: np.dtype) -> np.dtype:
    """:func:`computed_dtype` of one value (a loss), the same answer in float arithmetic: one value is evidence
    when it is finite, no integer and its mantissa has more digits than float16 holds."""
    if dtype != _FLOAT64 or not math.isfinite(value) or float(value).is_integer():
        return dtype
    mantissa = math.frexp(value)[0]
    if float(np.float16(mantissa)) == mantissa:
        return dtype  # a short mantissa (0.5, 3.25): no evidence either way
    return _FLOAT32 if float(np.float32(mantissa)) == mantissa else dtype


def narrow_inputs(values: np.ndarray) -> bool:
    """Whether every value is exactly float32 (then float32-exact outputs may be copies, and tell nothing)."""
    m = np.frexp(values[np.isfinite(values) & (values != 0)])[0]  # the mantissa: float32's range plays no part
    return bool(np.all(m.astype(np.float32) == m))


#: Machine epsilons of the narrow dtype, of each value's own size and of its array's RMS, within which a
#: function evaluated on float64 copies is the same function as on the narrow values themselves.
AGREEMENT = 1024.0
#: ... but never more than this relative part (a thousand float16 epsilons is the whole value).
AGREEMENT_MOST = 2.0**-6


def computes_alike(wide: Any, narrow: Any, eps: float | None = None) -> bool:
    """Whether outputs computed from float64 copies match those from the narrow inputs beyond rounding: not
    where the narrow ones underflow to 0, or come from random regions drawn in the inputs' own dtype (then the
    float64 evaluation is another function). ``eps``: the narrow precision (default: ``narrow``'s dtype's)."""
    n = np.asarray(narrow)
    if eps is None:
        if n.dtype.kind != "f" or n.dtype.itemsize >= 8:
            return True
        eps = float(np.finfo(n.dtype).eps)
    w, n = np.asarray(wide, dtype=np.float64).reshape(-1), n.astype(np.float64).reshape(-1)
    if w.shape != n.shape or not np.array_equal(np.isfinite(w), np.isfinite(n)):
        return False
    finite = np.isfinite(n)
    w, n = w[finite], n[finite]
    with np.errstate(all="ignore"):  # outputs near float64's edges: a difference may overflow to inf (unlike)
        scale = np.abs(n) + _rms(n)
        return bool(
            np.all(np.abs(w - n) <= np.maximum(same_function_tolerance(eps) * scale, np.finfo(np.float64).tiny))
        )


def _rms(v: np.ndarray) -> float:
    """The root mean square of finite values, scaled by the largest so that values near 1e200 do not overflow."""
    peak = float(np.max(np.abs(v), initial=0.0))
    return peak * float(np.sqrt(np.mean((v / peak) ** 2))) if peak > 0 else 0.0


def same_function_tolerance(eps: float) -> float:
    """How far, relative to its size, a function evaluated on float64 copies may differ from its run at the narrow
    dtype (machine epsilon ``eps``) and still be the same function rounded differently: ``AGREEMENT`` epsilons,
    at most ``AGREEMENT_MOST`` (random draws made in the narrow dtype differ by far more)."""
    return min(AGREEMENT * eps, AGREEMENT_MOST)


#: A function evaluated on float64 copies may differ from its narrow run by this many times how far the narrow
#: run's own outputs move when every input moves by a unit in the last place, and still be the same function.
SPREAD_AGREEMENT = 16.0


def within_spread(wide: Any, narrow: Any, nudged: Any, eps: float | None = None) -> bool:
    """Whether outputs from float64 copies differ from the narrow ones by no more than the narrow run's own
    rounding: measured (``nudged`` is that run at inputs moved by a unit in the last place), or that of
    unit-sized intermediates (``-log p`` at ``p`` near 1 in float32 rounds far above eps32 of itself, and a
    nudge of its inputs may not move the rounded ``p`` at all) at the narrow precision ``eps`` (default:
    ``narrow``'s dtype's; a float32 layer returning float64 passes its inputs')."""
    n = np.asarray(narrow)
    if eps is None:
        eps = float(np.finfo(n.dtype).eps) if n.dtype.kind == "f" else 0.0
    w, n, m = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (wide, narrow, nudged))
    if not (w.shape == n.shape == m.shape) or not np.array_equal(np.isfinite(w), np.isfinite(n)):
        return False
    if np.any((n == 0) & (w != 0) & (np.abs(w) < _smallest_normal(eps))):
        return False  # underflow to 0 in the narrow dtype: another function there (not x - mean, exactly 0)
    finite = np.isfinite(n) & np.isfinite(m)
    with np.errstate(all="ignore"):  # outputs near float64's edges: a difference may overflow to inf
        spread = float(np.max(np.abs(m[finite] - n[finite]), initial=0.0))
        unit = eps * max(float(np.max(np.abs(n[finite]), initial=0.0)), 1.0)
        return bool(np.max(np.abs(w[finite] - n[finite]), initial=0.0) <= SPREAD_AGREEMENT * max(spread, unit))


def nudge_ulp(v: np.ndarray, gen: np.random.Generator, eps: float | None = None) -> None:
    """Move every finite entry of ``v`` (in place) by one unit in the last place (``eps``: its dtype's machine
    epsilon, for a dtype numpy's finfo does not know), up or down at random; masks (inf, NaN) stay as they are."""
    eps = float(np.finfo(v.dtype).eps) if eps is None else eps
    with np.errstate(invalid="ignore", over="ignore"):
        step = v * np.where(gen.random(v.shape) < 0.5, -1, 1).astype(v.dtype) * np.asarray(eps, dtype=v.dtype)
    v += np.where(np.isfinite(v), step, 0).astype(v.dtype)


def _smallest_normal(eps: float) -> float:
    """The smallest normal number of the narrow dtype whose machine epsilon is ``eps`` (float16's, or float32's
    range for float32 and bfloat16): below it a value may underflow to 0 there."""
    half = np.finfo(np.float16)
    return float(half.tiny) if eps == float(half.eps) else float(np.finfo(np.float32).tiny)


def _as_array(out: Any, what: str) -> np.ndarray:
    if type(out) is np.ndarray:
        return out  # (the common case: neither a tensor nor masked)
    if type(out).__module__.startswith(("torch", "jax", "jaxlib")):
        raise NotScalarError(
            f"{what} is a {type(out).__module__}.{type(out).__qualname__}; the numpy checker reads numpy values.",
            "use backcheck.torch / backcheck.jax for tensors, or return .item() / np.asarray(...).",
        )
    if np.ma.is_masked(out):  # (np.asarray would read a masked entry as whatever lies beneath it)
        raise NonFiniteError(
            f"{what} is masked ({type(out).__qualname__} with masked entries): it has no value there.",
            "return plain numbers: fill the masked entries (np.ma.filled) or leave them out of the loss.",
        )
    try:
        return np.asarray(out)
    except Exception as exc:  # noqa: BLE001 - anything numpy cannot read is the user's culprit
        if type(out).__module__.startswith("backcheck.nn"):  # a backcheck.nn tensor that requires grad
            raise NotScalarError(
                f"{what} is a backcheck.nn {type(out).__qualname__} that requires grad: numpy cannot read it.",
                "return loss.item() (or .data), or compute it under backcheck.nn.no_grad(); to check an nn layer's "
                "backward pass, use backcheck.nn.check.check_module.",
            ) from exc
        raise NotScalarError(
            f"{what} ({type(out).__qualname__}) is not a number or an array.",
            "return a float or a numpy array." + (f" {PAIR_HINT}" if loss_pair(out) else ""),
        ) from exc


#: What a function returning CS231n's ``(loss, dx)`` (or ``model.loss``'s ``(loss, grads)``) is told.
PAIR_HINT = (
    "It returns a pair, a loss and its gradient (CS231n's softmax_loss and model.loss do): check the loss with "
    "its gradient as two functions, check(lambda x: f(x)[0], x, lambda x: f(x)[1])."
)


def loss_pair(out: Any) -> bool:
    """Whether ``out`` is a loss with its gradient: a pair of one number and arrays (or a dict or list of them)."""
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        return False
    first, second = out
    number = isinstance(first, (int, float, np.generic)) or (isinstance(first, np.ndarray) and first.size == 1)
    grads = list(second.values()) if isinstance(second, dict) else second
    grads = grads if isinstance(grads, (tuple, list)) else [grads]
    return number and bool(grads) and all(isinstance(g, np.ndarray) and g.dtype.kind == "f" for g in grads)
