"""Numerical gradients of scalar functions, element by element, with optional error estimates."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from backcheck.bits import machine_eps
from backcheck.calls import first_parameter_name, function_name, params_tree, require_callable, typed_arguments
from backcheck.errors import BadInputError, NonFiniteError, NotScalarError, NumericWarning, UserFunctionError
from backcheck.evaluate import Evaluator, Output
from backcheck.numeric.noise import element_noise, estimate_noise
from backcheck.numeric.richardson import MAX_ROWS, ROUNDING_MODEL, Refined, RefineOptions, largest_step, refine
from backcheck.numeric.stencils import STENCILS, Stencil
from backcheck.numeric.steps import default_steps, table_scale
from backcheck.tree import Tree

#: How many machine epsilons of |phi| one evaluation of a function may be off by (accumulated rounding).
ROUNDOFF_FACTOR = 8.0


#: Standard deviations of measured noise allowed in one value of phi, in a Richardson table: the entry of least
#: estimated error is picked among dozens, so a one-sigma allowance is beaten by chance on a noisy function.
MEASURED_NOISE = 3.0

#: Standard deviations of measured noise allowed in one difference of two values.
NOISE_FACTOR = 6.0


def noise_level(ev: Evaluator, scale: Any = None, lazy: bool = False) -> Any:
    """How far one value of ``phi`` may be off: the dtype's rounding of its magnitude, or the measured noise.

    ``scale`` (per element, or one number) is the size of the outputs the evaluation moved
    (:attr:`Evaluator.local_scale`); without it, or where it is 0 (not recorded), the largest size seen
    stands in. The measured noise is taken as proportional to that size. ``lazy`` takes the noise measured
    so far (none, before the probe runs): a screen that clears a difference on rounding alone is only
    stricter, and the first difference it cannot clear pays for the probe.
    """
    eps = ev.out_eps
    whole = max(ev.scale, abs(ev.phi0))
    measured = ev.noise_known if lazy else ev.noise
    if isinstance(scale, float):  # one element's (refinement, at every level): the same, without ufunc calls
        own = scale if scale > 0 else whole
        if not ev.noise_scale > 0:
            return float(_maximum(ROUNDOFF_FACTOR * eps * own, _maximum(NOISE_FACTOR * measured, TINY)))
        share = own / ev.noise_scale
        part = measured * (share if share != share or share < 1.0 else 1.0)  # (np.minimum's, NaN included)
        return float(_maximum(_maximum(ROUNDOFF_FACTOR * eps * own, NOISE_FACTOR * part), TINY))
    if scale is None or not ev.noise_scale > 0:
        # one noise for every element: the two floors taken together first (np.maximum is associative)
        floor = _maximum(NOISE_FACTOR * measured, TINY)
        if scale is None:
            return _maximum(ROUNDOFF_FACTOR * eps * whole, floor)
        size = np.where(np.asarray(scale) > 0, scale, whole)
        level = np.maximum(ROUNDOFF_FACTOR * eps * size, floor)
    else:
        size = np.where(np.asarray(scale) > 0, scale, whole)
        noise = measured * np.minimum(size / ev.noise_scale, 1.0)
        level = np.maximum(np.maximum(ROUNDOFF_FACTOR * eps * size, NOISE_FACTOR * noise), TINY)
    return float(level) if np.ndim(level) == 0 else level


#: The smallest normal float64: no noise level is below it (a difference is divided by it).
TINY = float(np.finfo(np.float64).tiny)


def _maximum(a: float, b: float) -> float:
    """``np.maximum`` of two floats, NaN included (NaN if either is), without a ufunc call."""
    if a != a or b != b:
        return math.nan
    return a if a >= b else b


def roundoff(ev: Evaluator, span: Any, scale: Any = None, lazy: bool = False) -> Any:
    """Round-off error of ``(phi(x + a) - phi(x - b)) / span`` (``scale``, ``lazy`` as in :func:`noise_level`)."""
    return noise_level(ev, scale, lazy) / span


def one_sided(ev: Evaluator, fp: float, fm: float, dp: float, dm: float) -> tuple[float, float, float]:
    """Central, forward and backward differences from ``phi`` at ``x + dp`` and ``x + dm`` (``dm < 0``)."""
    return (fp - fm) / (dp - dm), (fp - ev.phi0) / dp, (ev.phi0 - fm) / -dm


@typed_arguments
def numerical_grad(
    f: Callable[[Any], Any],
    params: Any,
    *,
    method: str = "central",
    step: Any = None,
    return_error: bool = False,
    extrapolate: bool = True,
) -> Any:
    """Estimate the gradient of a scalar function by finite differences, one element at a time.

    Every difference method builds a Richardson table per element (:mod:`backcheck.numeric.richardson`): its
    stencil on the steps ``h_0 / 2**k``, ``h_0 = max(|x_i|, 1)`` (4 times that for 'forward' and 'backward', whose
    tables need twice the levels of a symmetric one for the same order; large steps first: a polynomial's table
    is exact there, and rounding is divided by the step), with error terms removed one order at a time; the entry
    of least estimated error is kept, once that error is at the rounding floor and the next step agrees. The rounding
    model is the loss's dtype (a float32 loss of float64 parameters is differenced at float32's precision) plus
    the rounding of the terms the element enters (``eps |x| |f'|``, at most three deviations of the measured
    noise; where that cap binds and stands far above the rounding of ``f``, three deviations of the noise
    measured along the element alone), or one deviation of the measured noise, whichever is larger. On smooth
    functions this is as accurate as numdifftools (mostly several times more) with about half its evaluations
    (two thirds one-sided), and the error estimate bounds the actual error on every element, typically 3 to 5
    times above it, at most 10 times per function (``benchmarks/numeric.py``: RMS over seeds; at most 8.4).

    Parameters
    ----------
    f : callable
        ``f(params) -> float``. It may also ignore its argument and read the arrays of ``params`` through a
        closure: they are perturbed in place and restored bit for bit after every evaluation. A function that
        never sees the perturbation (it reads a copy), returns a coarser dtype than its parameters or an integer,
        or changes its input in place gets a :class:`~backcheck.errors.NumericWarning` naming the argument.
    params : array, float, or dict / list / tuple of them
        The point. Every float leaf is differentiated.
    method : {'central', 'forward', 'backward', 'central4', 'central6', 'richardson', 'complex'}
        The stencil. 'forward' and 'backward' evaluate one side of the point only (at the edge of a domain);
        'richardson' is 'central' (the name of the table it builds); 'complex' uses ``Im f(x + i h e_k) / h``
        with ``h = 1e-20``, exact to machine precision for functions that accept complex input (then ``f`` must
        use its argument; 1 evaluation per element, 3 with ``return_error``).
    step : float or array, optional
        With ``extrapolate``, the largest step of the table (per element or one for all); without, the step.
        Default: ``max(|x|, 1)`` with ``extrapolate``; without, ``eps**(1/(order+1)) * max(|x|, 1)`` with the
        ``eps`` of the coarser of the element's and the loss's dtype. With ``return_error``, an element whose step
        exceeds the default table's first one is refined again from the default steps, and its error covers the
        distance from that reference (a :class:`~backcheck.errors.NumericWarning` names a step whose estimate
        disagrees with it: a step far above the scale on which ``f`` is smooth). For 'complex', one positive number.
    return_error : bool
        Also return an error estimate per element. With ``extrapolate`` it costs nothing more; without, one
        more stencil at ``h/2`` per element.
    extrapolate : bool
        False evaluates the stencil once per element (2 evaluations for 'central', 1 for 'forward', 4 and 6 for
        'central4' and 'central6'): the classic, cheap and about 1e-10 relative at best in float64.

    Returns
    -------
    grad : tree of float64 arrays
        Same structure and shapes as ``params``; ``(grad, error)`` with ``return_error``.

    Notes
    -----
    Cost with ``extrapolate``, per element, on smooth functions (``benchmarks/numeric.py``): 'central' about
    17 evaluations in float64 and 14 in float32 (numdifftools: 30), 'forward'/'backward' 12 and 10 (15),
    'central4' 18 and 15, 'central6' 31 and 25; at most ``n_offsets * 18 + 2``. Plus 26 per call: the base point
    twice and 24 for the noise probe (:func:`backcheck.numeric.noise.estimate_noise`); and 24 per element whose
    terms' rounding is measured alone (counted in the averages above: 0 to 2 of 30 elements, on polynomials of
    degree 4 and more, Rosenbrock, ``exp(sin x) x**3``; never on an input of one element). Elements are refined in
    rounds, so the table arithmetic is vectorized over all elements while the calls stay serial. A function
    that is NaN or raises at the larger steps (the edge of its domain) is tried at smaller ones.

    Examples
    --------
    >>> import numpy as np
    >>> from backcheck import numerical_grad
    >>> g, err = numerical_grad(lambda x: np.sum(np.sin(x) * x), np.array([1.0, 2.0]), return_error=True)
    >>> exact = np.sin([1.0, 2.0]) + np.cos([1.0, 2.0]) * [1.0, 2.0]
    >>> bool(np.all(np.abs(g - exact) <= err)) and bool(np.all(err < 1e-12))
    True
    """
    require_callable(f, "f", "pass the function first: numerical_grad(f, params).")
    for name, flag in (("return_error", return_error), ("extrapolate", extrapolate)):
        if not isinstance(flag, (bool, np.bool_)):
            raise BadInputError(f"{name}={flag!r} is not True or False.", f"pass {name}=True or {name}=False.")
    if not isinstance(method, str) or (method not in ("complex", "richardson") and method not in STENCILS):
        raise BadInputError(
            f"unknown method={method!r}.",
            f"use one of {sorted([*STENCILS, 'richardson', 'complex'])}.",
        )
    if method == "complex":
        return _complex_grad(f, params, step, return_error)
    fname = function_name(f)
    tree = params_tree(params, first_parameter_name(f))
    ev = Evaluator(tree, f, Output.loss(fname), fname)
    stencil = STENCILS["central" if method == "richardson" else method]
    # steps toward the edge of f's domain overflow or give NaN on purpose (then tried smaller): numpy's
    # warnings about them would only alarm, as in a check
    with np.errstate(all="ignore"):
        ev.baseline()
        if extrapolate:
            grad, err = _table_grad(ev, stencil, step)
        else:
            grad, err = _single_step_grad(ev, stencil, step, return_error)
        far = _far_steps(ev, stencil, step, grad, err, extrapolate) if return_error and step is not None else ""
    _caveats(ev, far)
    out = tree.fresh(grad, np.float64)
    return (out, tree.fresh(err, np.float64)) if return_error else out


def _far_steps(ev: Evaluator, stencil: Stencil, step: Any, grad: np.ndarray, err: np.ndarray, table: bool) -> str:
    """Make the error estimate of elements differenced at a user's step beyond the default table's first one
    honest, in place, and say so ('' when nothing changed). At a step far above the scale on which ``f`` is
    smooth (``sin`` at 1e300) the differences at ``h``, ``h/2``, ... agree with each other and say nothing of the
    derivative, so their spread is no error estimate: each such element is refined again from the default steps,
    and its error is at least its distance from that reference plus the reference's own error."""
    tree = ev.tree
    user = default_steps(tree, step)
    far = np.flatnonzero(user > largest_step(stencil) * np.maximum(np.abs(tree.values()), 1.0))
    if not far.size:
        return ""
    if not table:  # the noise was probed at the user's steps: probe it where the reference is taken
        ev.noise = estimate_noise(ev, default_steps(tree))
    ref = refine_elements(ev, far, method=stencil.name, noise=MEASURED_NOISE * ev.noise)
    apart = np.abs(grad[far] - ref.value)
    honest = apart + ref.error
    off = far[~(apart <= err[far] + ref.error)]  # (NaN: no reference could be formed; its error is then inf)
    err[far] = np.where(np.isfinite(honest), np.maximum(err[far], honest), np.inf)
    if not off.size:
        return ""
    i = int(off[0])
    return (
        f"step={float(user[i]):g} for {tree.element_name(i)} ({off.size} element(s)) is far above the scale on "
        f"which {ev.fname} is smooth there: the estimate disagrees with one from the default steps by "
        f"{float(abs(grad[i] - ref.value[np.searchsorted(far, i)])):.3g}, beyond both error estimates; the "
        "error returned covers that disagreement."
    )


def _caveats(ev: Evaluator, far: str = "") -> None:
    """Warn (:class:`~backcheck.errors.NumericWarning`) where the gradient just computed may mislead: an argument
    whose moves never changed the function, a loss coarser than its parameters, a function that changed its
    input, a step far above the function's scale (``far``)."""
    if far:
        _warn(far, "leave step= out (the default steps follow each element's size), or pass a smaller one.")
    still = [ev.tree.leaves[k] for k in ev.unmoved()]
    if still:
        copied = [leaf.name for leaf in still if not leaf.in_place]
        why = (
            f" {', '.join(copied)} cannot be perturbed in place (read-only, 0-d or a Python number), so it reaches "
            f"{ev.fname} only through its argument."
            if copied
            else ""
        )
        _warn(
            f"{ev.fname} returned exactly the same value whenever {', '.join(leaf.name for leaf in still)} moved: "
            "its numerical gradient there is 0. A function that reads a copy (a closure over a copy, float(x), "
            f"a read-only array it copied) cannot see the perturbation.{why}",
            "let the function read the array it is given; if it truly does not depend on it, ignore this warning.",
        )
    coarse = getattr(ev, "_coarse", "")
    if coarse:
        integer = getattr(ev, "_integer", False)
        _warn(
            coarse,
            "return a float loss (no int() or round())."
            if integer
            else "the steps and error estimates follow the loss's precision; compute the loss in the parameters' "
            "dtype for a sharper gradient.",
        )
    if ev.mutated:
        where = "; ".join(
            f"{leaf.name} ({idx.size} element(s), e.g. {leaf.element_name(int(idx[0]))})" for leaf, idx in ev.mutated
        )
        _warn(
            f"{ev.fname} changed its input in place: {where}. The array was restored after every call and is "
            "unchanged; each call saw the point plus its own perturbation only, so the gradient is that of the "
            "function as it computes from the given point.",
            "work on a copy inside the function (x = x.copy()) or use out-of-place operations.",
        )


def _warn(message: str, hint: str) -> None:
    # stacklevel: _warn, _caveats, numerical_grad, the caller
    warnings.warn(NumericWarning(message, hint), stacklevel=4)


def _table_grad(ev: Evaluator, stencil: Stencil, step: Any) -> tuple[np.ndarray, np.ndarray]:
    """Every element refined by a Richardson table (see :func:`backcheck.numeric.richardson.refine`)."""
    tree = ev.tree
    first = None if step is None else default_steps(tree, step)
    ev.noise = estimate_noise(ev, default_steps(tree))
    # the probe's deviation is measured along a direction that moves every element, so it stirs the rounding of
    # every term; moving one element alone stirs only the terms that element enters (measured along single
    # elements: 3 to 4 times less on smooth float64 functions). One deviation of the probe stands for the
    # MEASURED_NOISE deviations of one element's noise, and MEASURED_NOISE of them bound the rounding of the
    # terms any one element enters (the model's eps |x| |phi'| is their size for a power x**p, p times too large).
    # Where the model exceeds that cap, the element's own terms are measured along it alone, unless it is the
    # only element (the probe then measured it alone)
    cap = MEASURED_NOISE * ev.noise if ev.noise > 0 else np.inf
    others = tree.size > 1
    res = refine_elements(ev, method=stencil.name, first_step=first, noise=ev.noise, term_cap=cap, measure_terms=others)
    bad = np.flatnonzero(~np.isfinite(res.value))
    if bad.size:
        i = int(bad[0])
        if i in res.failures:
            raise res.failures[i]
        raise NonFiniteError(
            f"no finite difference of {ev.fname} could be formed for {tree.element_name(i)}.",
            "check the function near this element, or pass a smaller step=.",
        )
    return res.value, res.error


def refine_elements(
    ev: Evaluator,
    idx: Any = None,
    *,
    method: str = "central",
    target: Any = 0.0,
    first_step: Any = None,
    noise: Any = None,
    term_cap: Any = np.inf,
    measure_terms: bool = False,
) -> Refined:
    """Sharp derivatives of ``phi`` along elements ``idx`` of an evaluator (all by default), in rounds.

    The checker's entry to :func:`backcheck.numeric.richardson.refine`: ``ev`` has its baseline (and, if
    measured, ``ev.noise``); ``target`` (one number or one per element) stops an element as soon as its error
    estimate is below it; ``first_step`` defaults to ``max(|x_i|, 1)`` times
    :func:`~backcheck.numeric.richardson.largest_step` (4 for a one-sided stencil, else 1); ``noise`` (per value
    of ``phi``) defaults to ``MEASURED_NOISE * ev.noise``; ``term_cap`` as in
    :func:`~backcheck.numeric.richardson.refine`; ``measure_terms`` measures the noise along an element alone
    (:func:`~backcheck.numeric.noise.element_noise`, 24 evaluations) where the modelled rounding of its terms
    exceeds ``term_cap``, and caps it at ``MEASURED_NOISE`` deviations of that. A step where ``phi`` is not
    finite or the function raises is skipped (the edge of a domain); an element where none worked comes back
    NaN with an infinite error and its last failure in ``failures`` (keyed by position in ``idx``). Results
    are in the order of ``idx``.
    """
    x = ev.tree.values()
    idx = np.arange(x.size) if idx is None else np.asarray(idx, dtype=np.int64).reshape(-1)
    first = (
        np.asarray(first_step)
        if first_step is not None
        else largest_step(STENCILS[method]) * table_scale(ev.tree, ev.out_eps)[idx]
    )
    failures: dict[int, Exception] = {}

    def evaluate(m: int, steps: list[float]) -> tuple[np.ndarray, np.ndarray]:
        i = int(idx[m])
        try:
            return ev.element(i, steps)
        except (NonFiniteError, UserFunctionError):
            pass  # one of the steps failed: find which, keep the others
        phis = np.full(len(steps), np.nan)
        disp = np.asarray(steps, dtype=np.float64).copy()
        for t, s in enumerate(steps):
            try:
                p, d = ev.element(i, (s,))
            except (NonFiniteError, UserFunctionError) as exc:
                failures[m] = exc
                continue
            phis[t], disp[t] = p[0], d[0]
        return phis, disp

    def measure(ms: np.ndarray, slopes: np.ndarray) -> np.ndarray:
        near = default_steps(ev.tree)  # where the probe of the whole input took its values
        return np.array(
            [
                MEASURED_NOISE * element_noise(ev, int(idx[m]), float(near[idx[m]]), float(d))
                for m, d in zip(ms, slopes, strict=True)
            ]
        )

    eps = ev.out_eps
    noise = MEASURED_NOISE * ev.noise if noise is None else noise
    # at least the rounding of the outputs each element moves where phi is taken relative to the outputs at the
    # point (a layer's phi0 is 0): the model's eps |phi| would not see a float32 loss of size 2 round by 2.4e-7
    if ev.output.base:  # phi relative to the outputs at the point
        local = ev.local_scale[idx]  # (0 where no evaluation recorded it: the outputs' scale stands in)
        noise = np.maximum(noise, ROUNDING_MODEL * eps * np.where(local > 0, local, ev.scale))
    res = refine(
        evaluate,
        np.broadcast_to(first, idx.shape).astype(np.float64),
        np.abs(x[idx]),
        eps,
        stencil=STENCILS[method],
        noise=noise,
        phi0=ev.phi0,
        options=RefineOptions(target, MAX_ROWS, term_cap, measure if measure_terms else None),
    )
    res.failures = failures
    return res


def _single_step_grad(ev: Evaluator, stencil: Stencil, step: Any, return_error: bool) -> tuple[np.ndarray, np.ndarray]:
    """The stencil once per element (and at half the step for the error estimate)."""
    tree = ev.tree
    h = default_steps(tree, step, order=stencil.order, out_eps=ev.out_eps)
    if return_error:
        ev.noise = estimate_noise(ev, h)
    grad = np.empty(tree.size)
    err = np.full(tree.size, np.nan)
    offs = [o for o in stencil.offsets if o != 0.0]
    for i in range(tree.size):
        grad[i], span = _stencil_at(ev, stencil, offs, i, h[i])
        if return_error:
            half, span2 = _stencil_at(ev, stencil, offs, i, h[i] / 2)
            factor = 2.0**stencil.order / (2.0**stencil.order - 1.0)
            err[i] = abs(half - grad[i]) * factor + 2 * roundoff(ev, span2)
    return grad, err


def _stencil_at(ev: Evaluator, stencil: Stencil, offs: list[float], i: int, h: float) -> tuple[float, float]:
    """The stencil at step ``h`` on element ``i``, and the span of its nodes."""
    phis, disp = ev.element(i, [o * h for o in offs])
    full = dict(zip(offs, phis, strict=True))
    full[0.0] = ev.phi0
    unit = disp[offs.index(1.0)] if 1.0 in offs else -disp[offs.index(-1.0)]
    if unit == 0.0:
        raise BadInputError(
            f"the step {h:g} vanished when rounded to the dtype of {ev.tree.element_name(i)}.",
            "pass a larger step= for this dtype.",
        )
    value = float(np.dot(stencil.weights, [full[o] for o in stencil.offsets]) / unit)
    # the nodes and the point itself: a one-sided stencil's span is its step, on either side
    return value, float(max(np.max(disp), 0.0) - min(np.min(disp), 0.0))


#: The further imaginary steps of the complex step's error estimate, relative to the first: not powers of 2 (nor
#: of each other), so the imaginary parts round differently and their differences show the rounding. Two of them:
#: a single difference agrees by chance often enough to miss a rounding of 5 units (poly8, 1 element in 2160).
COMPLEX_STEPS = (3**0.5, 5**0.5)
#: The measured part of a complex step's error estimate: the larger difference of the first step's value from
#: the others', this many times (a difference of two independent roundings has sqrt(2) times the deviation of one).
COMPLEX_MEASURED = 2.0
#: The modelled part: machine epsilons of the argument's largest gradient element, for a rounding the steps happen
#: to share (over 4320 elements of 18 functions the error beyond the measured part stayed below 1.9 of them;
#: the rounding unit of the stored value itself is 0.5 to 1). The estimate was 5 epsilons of the element plus 5
#: of the largest, about 11 times an error of one rounding unit by construction.
COMPLEX_ROUNDING = 3.0


def _complex_grad(f: Callable[[Any], Any], params: Any, step: Any, return_error: bool) -> Any:
    """``Im f(x + i h e_k) / h`` per element; with ``return_error``, again at ``h * sqrt(3)`` and ``h * sqrt(5)``."""
    fname = function_name(f)
    tree = params_tree(params, first_parameter_name(f), in_place=False)
    h = 1e-20 if step is None else _complex_step_size(step)
    obj, arrays = tree.fresh_arrays(np.complex128)
    saved = [arr.copy() for arr in arrays]
    touched: list[str] = []

    def at(leaf: Any, flat: np.ndarray, j: int, hh: float) -> float:
        g = _complex_step(f, obj, flat, (leaf, j), hh, fname)
        _reset_complex(tree, arrays, saved, touched, fname)  # a function that writes into its input
        return g

    grad = np.empty(tree.size)
    err = np.zeros(tree.size)
    eps = machine_eps(np.float64)
    for leaf, arr in zip(tree.leaves, arrays, strict=True):
        flat = arr.reshape(-1)
        for j in range(leaf.size):
            g = at(leaf, flat, j, h)
            grad[leaf.offset + j] = g
            if return_error:
                err[leaf.offset + j] = COMPLEX_MEASURED * max(abs(at(leaf, flat, j, h * c) - g) for c in COMPLEX_STEPS)
        if return_error:
            # the imaginary part is rounded like the terms the derivative sums, which may cancel (3x^2 - 4x + 1
            # near a root, 1 - sum of the other softmax terms): the two steps measure that rounding, element by
            # element; the argument's largest gradient element stands for the size of what they may share
            part = slice(leaf.offset, leaf.offset + leaf.size)
            scale = float(np.max(np.abs(grad[part]), initial=0.0))
            err[part] += COMPLEX_ROUNDING * eps * np.maximum(np.abs(grad[part]), scale)
    if touched:
        _warn(
            f"{fname} changed its input in place: {', '.join(touched)}. The complex copy it is given was restored "
            "after every call (the user's arrays are never touched by the complex step), so each call saw the "
            "point plus its own imaginary step only.",
            "work on a copy inside the function (x = x.copy()) or use out-of-place operations.",
        )
    out_tree = tree.fresh(grad, np.float64)
    return (out_tree, tree.fresh(err, np.float64)) if return_error else out_tree


def _complex_step_size(step: Any) -> float:
    """The user's step of the complex step: one finite positive number, or :class:`BadInputError`."""
    try:
        h = float(step)
    except (TypeError, ValueError):
        h = math.nan
    if not (math.isfinite(h) and h > 0):
        raise BadInputError(
            f"step={step!r} is not one finite positive number, as method='complex' takes.",
            "leave step out (1e-20), or pass a tiny number such as step=1e-30.",
        )
    return h


def _reset_complex(tree: Tree, arrays: list[np.ndarray], saved: list[np.ndarray], touched: list[str], fname: str):
    """Put the complex arrays back to the point after a call, noting the arguments the function changed."""
    for leaf, arr, orig in zip(tree.leaves, arrays, saved, strict=True):
        if arr.shape != orig.shape:
            raise UserFunctionError(
                f"{fname} changed the shape of {leaf.name} from {orig.shape} to {arr.shape} when given complex input.",
                "do not resize arrays being differentiated; work on a copy inside the function.",
            )
        if arr.tobytes() != orig.tobytes():
            np.copyto(arr, orig)
            if leaf.name not in touched:
                touched.append(leaf.name)


def _complex_step(f: Callable[[Any], Any], obj: Any, flat: np.ndarray, where: tuple[Any, int], h: float, fname: str):
    """``Im f(x + i h e_j) / h`` with element ``j`` of the complex array ``flat`` moved."""
    leaf, j = where
    x0 = flat[j]
    flat[j] = x0 + 1j * h
    try:
        out = f(obj)
    except Exception as exc:
        raise UserFunctionError(
            f"{fname} raised {type(exc).__name__}: {exc}\n  when given complex input with "
            f"{leaf.element_name(j)} + {h:g}i.",
            "the complex step needs a function that accepts complex arrays (no np.maximum on "
            "complex, no float() casts); use method='central' otherwise.",
        ) from exc
    finally:
        flat[j] = x0
    val = np.asarray(out)
    if val.size != 1:
        raise NotScalarError(
            f"{fname} returned an array of shape {val.shape}; a loss must be a scalar.",
            "reduce it with .sum().",
        )
    if val.dtype.kind != "c":
        raise BadInputError(
            f"{fname} returned a real value for complex input at {leaf.element_name(j)}: it drops the "
            "imaginary part (np.abs, np.real, float(), a cast) or never reads its argument (a closure over a "
            "copy), so the complex step cannot work.",
            "use method='central' for this function.",
        )
    return float(val.reshape(()).imag) / h
