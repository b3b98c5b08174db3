"""One-sided differences for an element that sits on the edge of the function's domain.

At ``x = 0`` of ``sqrt`` (or of a rule defined on ``x >= 0``) no central difference exists: one side is NaN at
every step. The side that stays finite gives the derivative from three points, ``x``, ``x + d1`` and
``x + d2`` (``d2`` about ``2 d1``): the second-order one-sided stencil, whose truncation is of the central
difference's order, so refinement and Richardson's tables treat it the same way. It is handed on as a central
pair: the real value at ``+d1`` and, at ``-d1``, the value a function with that one-sided slope and curvature
would take there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from backcheck.errors import BackcheckError, NonFiniteError
from backcheck.tree import Tree, flat_view

#: What a non-finite value at a step says: before smaller steps were tried, and after none helped.
EDGE_HINTS = (
    "the step crosses the edge of the function's domain (log, sqrt, division near 0?), or the function is not finite "
    "around this point; pass a smaller step= or move the point away from the edge.",
    "the function is not finite arbitrarily close to the point along this element (an entry masked with -inf and "
    "weighted 0, a value on the edge of the domain), so it has no derivative there: leave that input out of the "
    "check (wrt=, argnums=, constant=) or move the point.",
)

if TYPE_CHECKING:
    from backcheck.evaluate import Evaluator

#: Each retry at the edge of a function's domain divides the step by this factor ...
EDGE_SHRINK = 8.0
#: ... at most this many times (a step 8**12, about 7e10, times smaller), before NonFiniteError.
EDGE_RETRIES = 12
#: Step factors tried on the finite side, each a further shrink (see :data:`EDGE_SHRINK`).
ONE_SIDED_FACTORS = (1.0, 1.0 / 8, 1.0 / 64, 1.0 / 512)


def one_sided(ev: Evaluator, i: int, steps: Sequence[float]) -> tuple[np.ndarray, np.ndarray, float] | None:
    """For a symmetric pair of steps ``(h, -h)`` of element ``i`` whose one side is not finite: ``(phis,
    displacements, factor)`` as a central pair built from the finite side (see the module docstring), or None
    when neither side is finite at ``h`` and ``2 h`` (at any of :data:`ONE_SIDED_FACTORS`)."""
    if len(steps) != 2 or steps[1] != -steps[0] or steps[0] == 0:
        return None
    h = float(steps[0])
    for factor in ONE_SIDED_FACTORS:
        for side in (1.0, -1.0):
            s = side * h * factor
            try:
                phis, disp = ev.element(i, (s, 2 * s))
            except NonFiniteError:
                continue  # this side leaves the domain too
            d1, d2 = float(disp[0]), float(disp[1])
            if d1 == 0.0 or d2 == d1:
                continue
            f0, f1, f2 = ev.phi0, float(phis[0]), float(phis[1])
            slope = (f1 * d2 * d2 - f2 * d1 * d1 - f0 * (d2 * d2 - d1 * d1)) / (d1 * d2 * (d2 - d1))
            mirrored = f1 - 2 * d1 * slope
            ev.one_sided.add(i)
            pair = (np.array([f1, mirrored]), np.array([d1, -d1])) if d1 > 0 else (
                np.array([mirrored, f1]), np.array([-d1, d1]))  # fmt: skip
            return pair[0], pair[1], factor
    return None


def next_shrink(ev: Evaluator, i: int, steps: Sequence[float], factor: float, edge: bool) -> float:
    """The next shrink of element ``i``'s steps from ``factor``: by :data:`EDGE_SHRINK`, or where ``f`` left its
    domain (``edge``) and the element lies nearer 0 than the shrunk step, to an eighth of the element's own size at
    once: an edge at 0 (``log``, ``sqrt``, ``1 / x``) lies that near, and twelve shrinks of 8 do not reach a
    probability of 1e-20 from a step of 6e-6 (it was called a jump)."""
    nxt = factor / EDGE_SHRINK
    leaf, local = ev.tree.locate(i)
    x, h = abs(float(flat_view(leaf.work)[local])), max(abs(float(s)) for s in steps)
    if edge and 0.0 < x < h * nxt:
        nxt = x / (EDGE_SHRINK * h)
    return nxt


def raised_off_domain(ev: Evaluator, exc: Exception, where: Any) -> bool:
    """Whether ``exc``, raised at a moved point ``where`` after f ran at the point, says the step left f's domain,
    as a NaN would: an arithmetic error (``math.exp``'s OverflowError, ``1 / x`` in Python at 0, a
    FloatingPointError under ``np.errstate(all='raise')`` or jax's ``jax_debug_nans``) or the math module's domain
    error (``math.log`` of a negative). Read as NaN: the step shrinks from the edge, as for ``log`` or ``sqrt`` in
    numpy, once f raised it again at the same point (one evaluation; a function that raises once, there or
    anywhere, is the user's error). Where no smaller step (nor the other side) helps, it is the user's error,
    raised as it was (:attr:`Evaluator.raised`). Any other exception is the user's error at once."""
    edge = isinstance(exc, ArithmeticError) or (isinstance(exc, ValueError) and "math domain error" in str(exc))
    if not (edge and where is not None and ev.ready):
        return False
    ev.n_evals += 1  # asked again at the same point: the domain's edge raises again, a flaky function not
    try:
        ev.call(ev.tree.current())
    except (KeyboardInterrupt, SystemExit, BackcheckError):
        raise
    except Exception as again:  # noqa: BLE001 - the same error again is the domain's edge
        if type(again) is type(exc):
            ev.raised = exc, where[0]
            return True
    return False


def edge_notes(fname: str, tree: Tree, one_sided: set[int], shrunk: dict[int, float]) -> list[str]:
    """What a report says of elements at the edge of ``fname``'s domain: those differenced from one side
    (``one_sided``, flat indices) and those whose steps were shrunk (``shrunk``: flat index -> factor)."""
    out = []
    if one_sided:
        items = sorted(one_sided)
        shown = ", ".join(tree.element_name(i) for i in items[:3]) + (
            f" and {len(items) - 3} more" if len(items) > 3 else "")  # fmt: skip
        out.append(
            f"{len(items)} element(s) sit on the edge of {fname}'s domain ({shown}): {fname} is not "
            "finite on one side at any step, so they were differenced from the other side (a second-order "
            "one-sided stencil), the one-sided derivative a rule there should give."
        )
    if shrunk:
        factors = sorted(shrunk.items())
        shown = ", ".join(f"{tree.element_name(i)} ({1 / f:.3g}x smaller)" for i, f in factors[:3])
        more = f" and {len(factors) - 3} more" if len(factors) > 3 else ""
        out.append(
            f"{len(factors)} element(s) sit near the edge of {fname}'s domain (a step gave NaN or inf, or raised "
            f"an arithmetic error): their steps were shrunk until it stayed finite: {shown}{more}."
        )
    return out
