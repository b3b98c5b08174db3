"""JAX frontend: check ``jax.vjp`` (``custom_vjp`` rules) and ``jax.jvp`` (``custom_jvp`` rules) against
finite differences of the same function.

A function ``fn(*args, **kwargs) -> pytree of arrays`` is reduced to the core contract by a cotangent
``dout``: the checked scalar is ``phi = <dout, fn(*args, **kwargs)>``. Reverse mode claims its gradient is
``vjp(dout)``; forward mode claims ``<dout, jvp(e_i)>`` for every input element ``i`` (computed with
``jax.vmap`` over basis tangents), so both are judged element by element against the same numeric
derivatives.

Inputs are pytrees, passed positionally or by keyword; every floating array leaf is checked (``argnums``
narrows it) and named by its path, ``params['w'][2]``. Python floats are 0-d parameters when chosen (or
when nothing else is to check); strings, integer arrays and other values are passed through unchanged.
The numeric side calls ``jax.jit(fn)`` (compiled once per function, shapes and dtypes, and shared by later
checks of the same function) with numpy arrays, and evaluates the first differences in batches with
``jax.vmap``. It runs in float64: with jax's x64 mode off, x64 is turned on for the finite differences of one
check only, where the function computes the same function there (at the original point its value agrees with
the user's run up to that run's measured rounding; random draws from a key differ, and keep float32
differences, which the report's notes say). The rule under test always runs as the user runs it; a
low-precision rule is also run in float64 to tell its rounding from a wrong formula.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from backcheck.calls import function_name, require_callable, typed_arguments
from backcheck.errors import BadInputError
from backcheck.frontends.common import check_keywords
from backcheck.frontends.jax._check import Settings, run_check
from backcheck.frontends.jax._numeric import NUMERIC_DTYPES, x64_enabled
from backcheck.options import Options
from backcheck.randomness import FrozenRandom, find_generators, replay_note
from backcheck.report import Report

__all__ = ["check", "x64_enabled"]


@typed_arguments
def check(
    fn: Callable[..., Any],
    *args: Any,
    dout: Any = None,
    argnums: int | str | Sequence[int | str] | None = None,
    mode: str = "rev",
    strategy: str | None = None,
    samples: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    step: Any = None,
    seed: int = 0,
    numeric_dtype: str = "auto",
    vectorized: bool | str = True,
    curves: bool = False,
    floor: float | None = None,
    detect: float | None = None,
    confidence: float = 0.999,
    **kwargs: Any,
) -> Report:
    """Check jax's derivatives of ``fn`` (``custom_vjp`` / ``custom_jvp`` rules in it) by finite differences.

    Parameters
    ----------
    fn : callable
        ``fn(*args, **kwargs) -> array or pytree of arrays``; may be ``jax.jit``-ed. Integer outputs are
        ignored; output entries that are infinite at the point (log-domain outputs of masked inputs) are left
        out, and the report says so.
    *args, **kwargs
        The point, as ``fn`` takes it: arrays, Python floats or pytrees (dicts, lists, tuples) of arrays,
        positionally or by keyword (any keyword that is not an option below goes to ``fn``). Every floating
        array leaf is checked, named by its path (``params['w'][2]``, or the keyword's name); Python floats
        are checked as 0-d arrays when ``argnums`` names them or when no argument holds a float array. Empty
        arrays have nothing to check (a check of only empty arrays holds trivially, and says so);
        non-finite entries (``-inf`` masks) are not coordinates and are left out, named in the report. A
        parameter of ``fn`` named like an option below is passed positionally.
    dout : array or pytree like the output, optional
        The output cotangent. Default: 1 for a single scalar output (the gradient itself is checked), else a
        seeded standard normal array in each output's dtype.
    argnums : int, str or sequence of them, optional
        Check only these arguments: positions, or keyword names (the others are passed through).
    mode : {'rev', 'fwd', 'both'}
        What is checked: ``jax.vjp`` (reverse mode, ``custom_vjp``), ``jax.jvp`` (forward mode,
        ``custom_jvp``), or both (the forward-mode leaves are then named ``jvp:<name>``; a ``custom_vjp``
        function has no forward mode, so 'both' checks reverse mode and says why forward mode was skipped).
        The numeric side is shared.
    strategy, samples, atol, rtol, step, seed, curves, floor, detect, confidence
        As in :func:`backcheck.check`. An element next to an edge of ``fn``'s domain (``x +- h`` not
        finite) gets a smaller step that stays inside it, named in the report.
    numeric_dtype : {'auto', 'float64', 'float32', 'native'}
        'auto' evaluates the finite differences in float64 (turning x64 on for them only when it is off),
        falling back to the inputs' dtype if ``fn`` does not return float64, and to float32 with x64 off if
        ``fn`` computes another function in x64 mode; 'float64' insists; 'float32' keeps float32 differences.
        The analytic side always runs as you run it (x64 as you set it) and is judged at the inputs' own dtypes
        (bfloat16 at bfloat16's resolution).
    vectorized : bool or 'auto'
        Evaluate the first differences in batches with ``jax.jit(jax.vmap(fn))``; falls back to one point at a
        time if that fails. Verdicts and evaluation counts are the same either way.

    Returns
    -------
    Report

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import backcheck.jax as bj
    >>> @jax.custom_vjp
    ... def softplus(x):
    ...     return jnp.logaddexp(x, 0.0)
    >>> softplus.defvjp(lambda x: (softplus(x), x), lambda x, g: (g * jax.nn.sigmoid(x),))
    >>> bj.check(lambda x: softplus(x).sum(), jnp.linspace(-3.0, 3.0, 7)).ok
    True
    >>> bj.check(lambda x, w: jnp.tanh(x * w).sum(), jnp.ones(3), w=jnp.full(3, 0.5)).ok
    True
    """
    require_callable(fn, "fn", "pass the function to check first: check(fn, *args).")
    if mode not in ("rev", "fwd", "both"):
        raise BadInputError(f"mode={mode!r}.", "use 'rev', 'fwd' or 'both'." + _shadowed(fn, "mode"))
    if numeric_dtype not in NUMERIC_DTYPES:
        raise BadInputError(
            f"numeric_dtype={numeric_dtype!r}.",
            "use 'auto', 'float64', 'float32' or 'native'." + _shadowed(fn, "numeric_dtype"),
        )
    if vectorized not in (True, False, "auto"):
        raise BadInputError(f"vectorized={vectorized!r}.", "use True, False or 'auto'." + _shadowed(fn, "vectorized"))
    options = Options.make(
        strategy=strategy, samples=samples, atol=atol, rtol=rtol, step=step, seed=seed, curves=curves, floor=floor,
        detect=detect, confidence=confidence,
    )  # fmt: skip
    check_keywords(fn, kwargs, check, "backcheck.jax.check")
    settings = Settings(dout, argnums, mode, numeric_dtype, vectorized)
    # numpy's and Python's streams fn can reach (a Generator argument, numpy's global state), replayed at every
    # call (jax's own keys are explicit) and left as the user had them
    frozen = FrozenRandom(find_generators(fn, *args, *kwargs.values()), legacy=True, torch=False)
    try:
        report = run_check(frozen.wrap(fn), args, kwargs, settings, options)
        if frozen.moved():
            report.notes.append(replay_note(function_name(fn), frozen))
        return report
    finally:
        frozen.restore()


def _shadowed(fn: Callable[..., Any], option: str) -> str:
    """A sentence for an option's bad value when ``fn`` has a parameter of that name: the keyword went to the
    option, not to ``fn``."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return ""
    if option not in params:
        return ""
    return (
        f" {function_name(fn)} has a parameter {option} too: the keyword is the check's option; pass the function's "
        f"{option} positionally (check(f, x, 'value'))."
    )
