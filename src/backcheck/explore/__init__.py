"""Checking across inputs: search a layer's input space for a point where its backward pass is wrong.

A backward pass is often right at the convenient point a test picks and wrong at another: zero padding,
a size-1 dimension, three tied maxima, more than one time step. :func:`explore` draws points from a
description of the inputs with Hypothesis (dimensions, hyper-parameters, values at kinks, ties, tiny
and large scales, masks), judges every point with :func:`backcheck.check_layer`, and shrinks the first
failing point to the smallest one it can find, reported as a pytest test to paste.

``backcheck.explore`` is this module and is callable: ``backcheck.explore(forward, backward, inputs=...)``
is :func:`explore`. Hypothesis is needed (``pip install backcheck[explore]``); it is imported on first use.

>>> import numpy as np, backcheck
>>> from backcheck.explore import Array
>>> def relu(x):
...     return np.maximum(x, 0)
>>> def relu_backward(dout, x):
...     return dout * (x >= 0)          # at x == 0 the slope 1 is still a valid subgradient
>>> backcheck.explore(relu, relu_backward, inputs={"x": Array("N", "D")}, max_points=20).status
'pass'
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

from backcheck.calls import called_as, require_callable, typed_arguments
from backcheck.explore.draw import Case, Space
from backcheck.explore.result import ExploreResult
from backcheck.explore.search import Budget, Plan, run_explore
from backcheck.explore.space import Array, Choice, Floats, Integers, Ints, Labels, Mask, Params, validate
from backcheck.explore.target import Target

__all__ = [
    "explore",
    "assert_explore",
    "target",
    "Target",
    "ExploreFailure",
    "ExploreResult",
    "Case",
    "Array",
    "Labels",
    "Integers",
    "Mask",
    "Params",
    "Ints",
    "Choice",
    "Floats",
]


@typed_arguments
def explore(
    forward: Callable[..., Any],
    backward: Callable[..., Any],
    inputs: Mapping[str, Any],
    *,
    hyper: Mapping[str, Any] | None = None,
    dims: Mapping[str, Any] | None = None,
    where: Callable[[Mapping[str, Any]], bool] | None = None,
    cache: bool = False,
    dtype: Any = "float64",
    max_points: int = 100,
    max_evals: int | None = None,
    seconds: float | None = None,
    shrink: bool = True,
    shrink_points: int = 100,
    shrink_seconds: float | None = None,
    seed: int = 0,
    progress: bool | None = None,
    strategy: str | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    upcast: bool | None = None,
    title: str | None = None,
    source: tuple[tuple[list[str], str], tuple[list[str], str]] | None = None,
) -> ExploreResult:
    """Search the inputs of a layer for a point where its backward pass fails the check.

    Parameters
    ----------
    forward, backward : callable
        As in :func:`backcheck.check_layer`: ``forward(*inputs, **hyper)`` and
        ``backward(dout, *inputs, **hyper)``; with ``cache=True``, ``forward(*inputs, **hyper) ->
        (out, cache)`` and ``backward(dout, cache)``.
    inputs : dict
        One description per positional input of ``forward``, in order: :class:`Array` (float; shape with
        free dimensions, value domain, kinks, ties), :class:`Labels`, :class:`Integers`, :class:`Mask`,
        or :class:`Params` (a dict of hyper-parameters passed positionally, CS231n's ``conv_param``).
    hyper : dict, optional
        Keyword hyper-parameters: :class:`Ints` (inclusive range), :class:`Choice`, :class:`Floats`, or a
        constant.
    dims : dict, optional
        Range of each named dimension: an int, ``(low, high)`` inclusive, a list of choices, ``Ints`` or
        ``Choice``. Unnamed ones range over ``(1, 4)``.
    where : callable, optional
        ``where(env) -> bool`` over the drawn dimensions and hyper-parameters (one dict): points it
        refuses are not drawn (e.g. ``lambda e: e["H"] + 2 * e["pad"] >= e["K"]``).
    dtype : float dtype
        Of the float arrays (float64 or float32).
    max_points, max_evals, seconds : budget
        The search stops after this many points, evaluations of the forward pass, or seconds, whichever
        comes first. Points and evaluations make the run reproducible for a given ``seed``.
    shrink, shrink_points, shrink_seconds
        Shrink the first failing point (at most ``shrink_points`` more points, ``shrink_seconds``).
    seed : int
        Seeds Hypothesis: the same seed and budget in points give the same run.
    progress : bool, optional
        A progress bar (rich), by default on a terminal.
    strategy, atol, rtol, upcast
        Passed to :func:`backcheck.check_layer` at every point.
    title : str, optional
        Name in the result (default: the functions' names).
    source : optional
        ``((imports, expr), (imports, expr))`` naming forward and backward in the printed test, when they
        cannot be imported by their own names.

    Returns
    -------
    ExploreResult
        ``status`` ('fail', 'pass', 'inconclusive'), the shrunk failing ``case`` with the check's
        ``report`` there, ``passed_before``, counts, and ``test``: the case as a pytest test.
        A kink is not a failure; inconclusive points are counted apart.
    """
    call = "explore(forward, backward, inputs=...)"
    require_callable(forward, "forward", f"pass the layer's forward function first: {call}.")
    require_callable(backward, "backward", f"pass its backward pass second: {call}.")
    options = {k: v for k, v in (("strategy", strategy), ("atol", atol), ("rtol", rtol), ("upcast", upcast))
               if v is not None}
    validate(inputs, hyper or {})
    plan = Plan(forward, backward, Space.build(inputs, hyper, dims, where, dtype), cache,
                Budget(max_points, max_evals, seconds, shrink_points, shrink_seconds), seed, shrink, progress,
                options, title, source)
    return run_explore(plan)


class ExploreFailure(AssertionError):
    """Raised by :func:`assert_explore`; the message is the result with the test to paste."""

    def __init__(self, result: ExploreResult) -> None:
        super().__init__(str(result))
        self.result = result


@typed_arguments
def assert_explore(forward: Callable[..., Any], backward: Callable[..., Any], inputs: Mapping[str, Any],
                   *, allow_inconclusive: bool = True, **kwargs: Any) -> ExploreResult:
    """:func:`explore`, raising :class:`ExploreFailure` (an AssertionError) unless no point fails.

    For tests: ``assert_explore(forward, backward, inputs={...}, max_points=50)``. Inconclusive points are
    allowed unless ``allow_inconclusive=False``.
    """
    with called_as("explore", "assert_explore"):
        result = explore(forward, backward, inputs, **kwargs)
    if result.status == "fail" or (result.status == "inconclusive" and not allow_inconclusive):
        raise ExploreFailure(result)
    return result


def target(forward: Callable[..., Any], backward: Callable[..., Any], inputs: Mapping[str, Any], *,
           name: str = "", **options: Any) -> Target:
    """A layer and its input description for later: ``backcheck explore FILE.py`` explores every module-level
    target of the file; ``target.run()`` is :func:`explore`, ``target.check()`` :func:`assert_explore`.

    ``options`` are :func:`explore`'s keyword arguments (``hyper``, ``dims``, ``where``, budgets, ...).
    """
    return Target(forward, backward, dict(inputs), dict(options), name)


class _CallableModule(types.ModuleType):
    """Makes ``backcheck.explore(...)`` call :func:`explore` while ``backcheck.explore.Array`` stays a name."""

    def __call__(self, *args: Any, **kwargs: Any) -> ExploreResult:
        return explore(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
