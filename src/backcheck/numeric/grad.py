"""Numerical gradients of scalar functions, element by element, with optional error estimates."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from backcheck.errors import BadInputError, NotScalarError, UserFunctionError
from backcheck.evaluate import Evaluator, Output
from backcheck.numeric.noise import estimate_noise
from backcheck.numeric.stencils import STENCILS, richardson
from backcheck.numeric.steps import default_steps
from backcheck.tree import Tree

#: How many machine epsilons of |phi| one evaluation of a function may be off by (accumulated rounding).
ROUNDOFF_FACTOR = 8.0


def function_name(f: Callable[..., Any], default: str = "f") -> str:
    name = getattr(f, "__name__", None) or type(f).__name__
    return default if name == "<lambda>" else name


def first_parameter_name(f: Callable[..., Any], default: str = "params") -> str:
    try:
        params = list(inspect.signature(f).parameters.values())
    except (TypeError, ValueError):
        return default
    if params and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        return params[0].name
    return default


#: Standard deviations of measured noise allowed in one difference of two values.
NOISE_FACTOR = 6.0


def noise_level(ev: Evaluator) -> float:
    """How far one value of ``phi`` may be off: the dtype's rounding of its magnitude, or the measured noise."""
    eps = float(np.finfo(ev.out_dtype).eps)
    return max(
        ROUNDOFF_FACTOR * eps * max(ev.scale, abs(ev.phi0)),
        NOISE_FACTOR * ev.noise,
        np.finfo(np.float64).tiny,
    )


def roundoff(ev: Evaluator, span: float) -> float:
    """Round-off error of ``(phi(x + a) - phi(x - b)) / span``."""
    return noise_level(ev) / span


@dataclass
class Probe:
    """Differences of ``phi`` along one direction at steps ``h`` and ``h/2``.

    ``central``/``forward``/``backward`` hold the estimates at (h, h/2); ``roundoff`` the round-off bound
    of the central estimate at h/2.
    """

    central: tuple[float, float]
    forward: tuple[float, float]
    backward: tuple[float, float]
    roundoff: float

    @property
    def value(self) -> float:
        """Richardson-extrapolated central estimate."""
        return richardson(self.central[0], self.central[1], 2)[0]

    @property
    def error(self) -> float:
        """An error bound of :attr:`value`: the change between steps plus round-off."""
        return abs(self.central[1] - self.central[0]) + self.roundoff

    @property
    def gap(self) -> tuple[float, float]:
        """|forward - backward| at h and at h/2: halves for a smooth function, stays put at a kink."""
        return abs(self.forward[0] - self.backward[0]), abs(self.forward[1] - self.backward[1])


def probe_element(ev: Evaluator, i: int, h: float) -> Probe:
    """Evaluate ``phi`` at ``x +- h e_i`` and ``x +- h/2 e_i`` (4 evaluations)."""
    phis, disp = ev.element(i, (h, -h, h / 2, -h / 2))
    return _probe(ev, phis, disp)


def one_sided(ev: Evaluator, fp: float, fm: float, dp: float, dm: float) -> tuple[float, float, float]:
    """Central, forward and backward differences from ``phi`` at ``x + dp`` and ``x + dm`` (``dm < 0``)."""
    return (fp - fm) / (dp - dm), (fp - ev.phi0) / dp, (ev.phi0 - fm) / -dm


def _probe(ev: Evaluator, phis: np.ndarray, disp: np.ndarray) -> Probe:
    fp1, fm1, fp2, fm2 = phis
    dp1, dm1, dp2, dm2 = disp
    phi0 = ev.phi0
    if dp1 == 0 or dm1 == 0 or dp2 == 0 or dm2 == 0:
        raise BadInputError(
            "a step vanished when rounded to the parameter's dtype.", "pass a larger step= for this dtype."
        )
    central = ((fp1 - fm1) / (dp1 - dm1), (fp2 - fm2) / (dp2 - dm2))
    forward = ((fp1 - phi0) / dp1, (fp2 - phi0) / dp2)
    backward = ((phi0 - fm1) / -dm1, (phi0 - fm2) / -dm2)
    return Probe(central, forward, backward, roundoff(ev, dp2 - dm2))


def numerical_grad(
    f: Callable[[Any], Any],
    params: Any,
    *,
    method: str = "central",
    step: Any = None,
    return_error: bool = False,
) -> Any:
    """Estimate the gradient of a scalar function by finite differences, one element at a time.

    Parameters
    ----------
    f : callable
        ``f(params) -> float``. It may also ignore its argument and read the arrays of ``params`` through a
        closure: they are perturbed in place and restored bit for bit after every evaluation.
    params : array, float, or dict / list / tuple of them
        The point. Every float leaf is differentiated.
    method : {'central', 'forward', 'backward', 'central4', 'central6', 'richardson', 'complex'}
        The stencil. 'richardson' extrapolates central differences at ``h`` and ``h/2`` (4 evaluations per
        element, error O(h**4)); 'complex' uses ``Im f(x + i h e_k) / h`` with ``h = 1e-20``, exact to machine
        precision for functions that accept complex input (then ``f`` must use its argument).
    step : float or array, optional
        Absolute step(s). Default: ``eps**(1/(order+1)) * max(|x|, 1)`` per element, from its dtype.
    return_error : bool
        Also return an error estimate per element (costs 2 more evaluations per element for the
        difference methods: the estimate is the change between steps ``h`` and ``h/2`` plus round-off).

    Returns
    -------
    grad : tree of float64 arrays
        Same structure and shapes as ``params``; ``(grad, error)`` with ``return_error``.

    Examples
    --------
    >>> import numpy as np
    >>> from backcheck import numerical_grad
    >>> g = numerical_grad(lambda x: np.sum(x ** 3), np.array([1.0, 2.0]))
    >>> np.allclose(g, [3.0, 12.0])
    True
    """
    if method == "complex":
        return _complex_grad(f, params, step, return_error)
    if method != "richardson" and method not in STENCILS:
        raise BadInputError(
            f"unknown method={method!r}.",
            f"use one of {sorted([*STENCILS, 'richardson', 'complex'])}.",
        )
    fname = function_name(f)
    tree = Tree(params, first_parameter_name(f))
    ev = Evaluator(tree, f, Output.loss(fname), fname)
    ev.baseline()
    stencil = STENCILS["central" if method == "richardson" else method]
    h = default_steps(tree, step, order=stencil.order)
    if return_error or method == "richardson":
        ev.noise = estimate_noise(ev, h)
    grad = np.empty(tree.size)
    err = np.empty(tree.size)
    extra = method == "richardson" or return_error
    for i in range(tree.size):
        if stencil.name == "central" and extra:
            pr = probe_element(ev, i, h[i])
            grad[i] = pr.value if method == "richardson" else pr.central[0]
            # Richardson: the error of D(h) is (D(h) - D(h/2)) * 4/3; the extrapolated value's error is
            # bounded by the change itself
            err[i] = (
                pr.error if method == "richardson" else (abs(pr.central[0] - pr.central[1]) * 4 / 3 + 2 * pr.roundoff)
            )
            continue
        offs = [o for o in stencil.offsets if o != 0.0]
        phis, disp = ev.element(i, [o * h[i] for o in offs])
        full = dict(zip(offs, phis, strict=True))
        full[0.0] = ev.phi0
        unit = disp[offs.index(1.0)] if 1.0 in offs else -disp[offs.index(-1.0)]
        vals = np.array([full[o] for o in stencil.offsets])
        grad[i] = np.dot(stencil.weights, vals) / unit
        if extra:
            phis2, disp2 = ev.element(i, [o * h[i] / 2 for o in offs])
            full2 = dict(zip(offs, phis2, strict=True))
            full2[0.0] = ev.phi0
            unit2 = disp2[offs.index(1.0)] if 1.0 in offs else -disp2[offs.index(-1.0)]
            g2 = np.dot(stencil.weights, [full2[o] for o in stencil.offsets]) / unit2
            factor = 2.0**stencil.order / (2.0**stencil.order - 1.0)
            err[i] = abs(g2 - grad[i]) * factor + 2 * roundoff(ev, abs(unit2))
    out = tree.fresh(grad, np.float64)
    return (out, tree.fresh(err, np.float64)) if return_error else out


def _complex_grad(f: Callable[[Any], Any], params: Any, step: Any, return_error: bool) -> Any:
    fname = function_name(f)
    tree = Tree(params, first_parameter_name(f), in_place=False)
    h = 1e-20 if step is None else float(step)
    obj, arrays = tree.fresh_arrays(np.complex128)
    grad = np.empty(tree.size)
    for leaf, arr in zip(tree.leaves, arrays, strict=True):
        flat = arr.reshape(-1)
        for j in range(leaf.size):
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
                    "imaginary part (np.abs, np.real, float(), a cast), so the complex step cannot work.",
                    "use method='central' for this function.",
                )
            grad[leaf.offset + j] = float(val.reshape(()).imag) / h
    out_tree = tree.fresh(grad, np.float64)
    if return_error:
        return out_tree, tree.fresh(np.abs(grad) * np.finfo(np.float64).eps * 4, np.float64)
    return out_tree
