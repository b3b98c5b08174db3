"""Second order: Hessian-vector products and gradients of gradients, reduced to the core contract.

For a gradient function ``g(x)`` and a fixed vector ``u``, the scalar ``<u, g(x)>`` has gradient ``H u``
(``H`` symmetric). So checking ``hvp(x, u)`` is checking the gradient of ``x -> <u, g(x)>``, with all of the
first-order checker's machinery (error bounds, kinks, localization).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from backcheck.api import check
from backcheck.bits import dot
from backcheck.calls import first_parameter_name, function_name, params_tree, require_callable, typed_arguments
from backcheck.containers import flatten
from backcheck.errors import ArgumentError, NonFiniteError
from backcheck.findings import changed_elements, mutation_finding
from backcheck.frontends.common import zero_dout_error
from backcheck.options import Options
from backcheck.report import Report


@typed_arguments
def check_hvp(
    f: Callable[[Any], Any] | None,
    grad: Callable[[Any], Any],
    hvp: Callable[[Any, Any], Any],
    params: Any,
    *,
    v: Any = None,
    seed: int = 0,
    **options: Any,
) -> Report:
    """Check a Hessian-vector product ``hvp(params, v) -> H v`` against differences of ``grad``.

    Parameters
    ----------
    f : callable or None
        The loss (unused by the check itself; accepted so calls read like ``check_hvp(f, grad, hvp, x)``).
    grad : callable
        ``grad(params) -> tree`` like ``params``, trusted (check it first with :func:`backcheck.check`).
    hvp : callable
        ``hvp(params, v) -> tree`` like ``params``: the product under test.
    params : tree
        The point.
    v : tree, optional
        The vector; default a standard normal tree like ``params``, from the seed's ``"hvp vector"`` stream. A
        ``v`` zero everywhere is refused (it compares nothing). ``hvp`` gets a private copy of it at every call:
        one that writes into it fails with a 'mutation' finding, and the caller's ``v`` is never written.
    **options
        Passed to :func:`backcheck.check` (strategy, atol, rtol, step, ...).

    Examples
    --------
    >>> import numpy as np, backcheck
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> grad = lambda x: A @ x + np.sin(x)
    >>> hvp = lambda x, v: A @ v + np.cos(x) * v
    >>> backcheck.check_hvp(None, grad, hvp, np.array([0.5, -1.0])).ok
    True
    """
    return _check_hvp(f, grad, hvp, params, v, seed, options, "check_hvp")


def _check_hvp(
    f: Any, grad: Any, hvp: Any, params: Any, v: Any, seed: int, options: dict[str, Any], entry: str
) -> Report:
    """:func:`check_hvp`, its errors naming ``entry`` (the public function called)."""
    _known_options(options, entry)
    if f is not None:
        require_callable(f, "f", "pass the loss (or None) first: check_hvp(f, grad, hvp, params).")
    require_callable(grad, "grad", "pass the gradient function second: check_hvp(f, grad, hvp, params).")
    require_callable(hvp, "hvp", "pass the Hessian-vector product third: check_hvp(f, grad, hvp, params).")
    root = first_parameter_name(hvp, default=first_parameter_name(grad))  # the product under test names the point
    shape_tree = params_tree(params, root, in_place=False)
    if v is None:
        rng = Options.make(seed=seed).rng("hvp vector")
        v = shape_tree.fresh(rng.standard_normal(shape_tree.size))
    v_flat = shape_tree.pack(v, "vector v")
    gname, hname = function_name(grad, "grad"), function_name(hvp, "hvp")
    if not np.isfinite(v_flat).all():
        bad = int(np.flatnonzero(~np.isfinite(v_flat))[0])
        raise NonFiniteError(
            f"the vector v is {v_flat[bad]} at {shape_tree.element_name(bad).replace(root, 'v', 1)}.",
            "pass a finite vector v (or none: a standard normal one is drawn).",
        )
    if v_flat.size and not np.any(v_flat != 0):
        raise zero_dout_error(gname, what="v")

    def directional_gradient(p: Any) -> float:
        return dot(v_flat, shape_tree.pack(grad(p), "gradient"))

    directional_gradient.__name__ = f"<v, {gname}>"
    directional_gradient.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(root, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    )
    pristine = [(n, np.array(x, copy=True)) for n, x in flatten(v, "v")]
    written: list[tuple[str, tuple[int, ...], np.ndarray]] = []
    packed: list[int] = []

    def product(p: Any) -> Any:
        mine = copy.deepcopy(v)  # a private copy: the caller's v is never written
        out = hvp(p, mine)
        if not packed:  # its structure checked once, the error naming hvp (not "the gradient")
            packed.append(shape_tree.pack(out, f"product {hname}({root}, v)").size)
        if not written:  # the first call that writes into v is reported
            now = [x for _, x in flatten(mine, "v")]
            written.extend(
                hit for (n, b), x in zip(pristine, now, strict=True) if (hit := changed_elements(n, b, x)) is not None
            )
        return out

    product.__name__ = hname
    report = check(directional_gradient, params, product, seed=seed, **options)
    if written:
        report.findings.insert(0, mutation_finding(hname, written, "argument"))
    return report


def _known_options(options: dict[str, Any], entry: str) -> None:
    """:class:`ArgumentError` naming ``entry`` for a keyword :func:`backcheck.check` does not take either."""
    known = set(inspect.signature(check).parameters) - {"f", "params", "grad", "seed"}
    unknown = sorted(set(options) - known)
    if unknown:
        call = (
            "check_hvp(f, grad, hvp, params, ...)"
            if entry == "check_hvp"
            else f"{entry}(grad, hessian_vector, params, ...)"
        )
        raise ArgumentError(
            f"{entry}() got an unexpected keyword argument {unknown[0]!r}.",
            f"call {call}; its options are {', '.join(sorted({*known, 'v', 'seed'}))}.",
        )


@typed_arguments
def check_grad_of_grad(
    grad: Callable[[Any], Any], hessian_vector: Callable[[Any, Any], Any], params: Any, **options: Any
) -> Report:
    """Check a gradient of a gradient (double backward): the same contract as :func:`check_hvp`.

    ``grad(params)`` is the first-order gradient (of a fixed cotangent), ``hessian_vector(params, v)`` its
    derivative along ``v``; :func:`backcheck.nn.check.check_grad_of_grad` builds both from engine ops and
    calls this.
    """
    v, seed = options.pop("v", None), options.pop("seed", 0)
    return _check_hvp(None, grad, hessian_vector, params, v, seed, options, "check_grad_of_grad")
