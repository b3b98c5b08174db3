"""Descriptions of a layer's input space: arrays with free dimensions, labels, masks, hyper-parameters.

Nothing here draws anything; :mod:`backcheck.explore.draw` turns a description into Hypothesis draws.
A dimension in a shape is an ``int`` (fixed), a ``str`` (a named free dimension, shared by every array
that names it) or a callable ``env -> int`` of the already drawn dimensions and hyper-parameters
(``lambda e: 4 * e["H"]``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from backcheck.errors import BadInputError

#: A dimension of a shape: fixed, named (free) or computed from the environment.
Dim = int | str | Callable[[Mapping[str, Any]], int]

#: Range of a named dimension that ``dims=`` does not mention (inclusive).
DEFAULT_DIM = (1, 4)
#: Value domains of float arrays (see :class:`Array`).
DOMAINS = ("real", "positive", "nonzero", "unit", "spd", "invertible")
#: Offsets (relative to max(1, |kink|)) of values placed at or near a kink: exactly at it, inside the
#: reach of a finite-difference step, and a little outside it.
KINK_OFFSETS = (0.0, 1e-7, -1e-7, 1e-3, -1e-3)


@dataclass(frozen=True)
class Ints:
    """An integer hyper-parameter (or dimension) in ``[low, high]``, both inclusive."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if not (isinstance(self.low, int) and isinstance(self.high, int)) or self.low > self.high:
            raise BadInputError(f"Ints({self.low!r}, {self.high!r}) is not an integer range.",
                                "give two integers with low <= high, e.g. Ints(0, 2).")


@dataclass(frozen=True)
class Choice:
    """A hyper-parameter (or dimension) taking one of ``values``; shrinking prefers the first."""

    values: tuple[Any, ...]

    def __init__(self, *values: Any) -> None:
        if len(values) == 1 and isinstance(values[0], (list, tuple)):
            values = tuple(values[0])
        if not values:
            raise BadInputError("Choice() has no values.", "give at least one, e.g. Choice('same', 'valid').")
        object.__setattr__(self, "values", tuple(values))


@dataclass(frozen=True)
class Floats:
    """A float hyper-parameter in ``[low, high]``; ``edges`` are tried first (shrinking prefers them)."""

    low: float
    high: float
    edges: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low <= self.high):
            raise BadInputError(f"Floats({self.low!r}, {self.high!r}) is not a finite range.",
                                "give finite bounds with low <= high.")


Hyper = Ints | Choice | Floats


@dataclass(frozen=True)
class Array:
    """A float array input.

    Parameters
    ----------
    *shape : int, str or callable
        The dimensions (see the module docstring).
    domain : {'real', 'positive', 'nonzero', 'unit', 'spd', 'invertible'}
        Where the values live: any real; > 0 (log, sqrt); away from 0 (a divisor); inside (0, 1)
        (probabilities, targets); symmetric positive definite or well-conditioned square matrices in
        the last two axes (cholesky, inverse, det).
    kinks : sequence of float, or callable ``env -> sequence``
        Values where the layer is not differentiable (0 for ReLU, ``±c`` for a clip at ``c``): elements
        are placed exactly at and near them. Default: ``(0.0,)`` for the 'real' domain, none otherwise.
    ties : bool
        Also draw groups of 2..``max_tie`` equal elements (at the array's maximum, or equal to the group's
        largest element): the ties of max, sort and pooling.
    scales : sequence of float
        Scales of the values (1 first: shrinking prefers it); tiny and large ones by default.
    """

    shape: tuple[Dim, ...]
    domain: str = "real"
    kinks: Sequence[float] | Callable[[Mapping[str, Any]], Sequence[float]] | None = None
    ties: bool = True
    max_tie: int = 4
    scales: tuple[float, ...] = (1.0, 1e-3, 1e3)
    edits: int = 3

    def __init__(self, *shape: Dim, domain: str = "real", kinks: Any = None, ties: bool = True, max_tie: int = 4,
                 scales: Sequence[float] | None = None, edits: int = 3) -> None:
        if domain not in DOMAINS:
            raise BadInputError(f"Array domain {domain!r} is unknown.", f"choose from {', '.join(DOMAINS)}.")
        if domain in ("spd", "invertible") and len(shape) < 2:
            raise BadInputError(f"Array(domain={domain!r}) needs at least two axes; the shape is {shape}.",
                                "give a shape ending in two equal dimensions, e.g. Array('B', 'n', 'n').")
        if scales is None:
            scales = (1.0,) if domain in ("spd", "invertible", "unit") else (1.0, 1e-3, 1e3)
        if kinks is None:
            kinks = (0.0,) if domain == "real" else ()
        for name, value in (("shape", shape), ("scales", scales)):
            if not isinstance(value, (tuple, list)):
                raise BadInputError(f"Array {name} {value!r} is not a sequence.", "see help(backcheck.explore.Array).")
        set_ = object.__setattr__
        set_(self, "shape", tuple(shape))
        set_(self, "domain", domain)
        set_(self, "kinks", kinks if callable(kinks) else tuple(float(k) for k in kinks))
        set_(self, "ties", bool(ties))
        set_(self, "max_tie", int(max_tie))
        set_(self, "scales", tuple(float(s) for s in scales))
        set_(self, "edits", int(edits))


@dataclass(frozen=True)
class Labels:
    """Integer class labels in ``[0, classes)`` (``classes`` a dimension: int, name or callable)."""

    shape: tuple[Dim, ...]
    classes: Dim

    def __init__(self, *shape: Dim, classes: Dim) -> None:
        object.__setattr__(self, "shape", tuple(shape))
        object.__setattr__(self, "classes", classes)


@dataclass(frozen=True)
class Integers:
    """An integer array (indices, signs): values in ``[low, high)``, or drawn from ``values``."""

    shape: tuple[Dim, ...]
    low: Dim = 0
    high: Dim = 2
    values: tuple[int, ...] = ()

    def __init__(self, *shape: Dim, low: Dim = 0, high: Dim = 2, values: Sequence[int] = ()) -> None:
        object.__setattr__(self, "shape", tuple(shape))
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "values", tuple(int(v) for v in values))


@dataclass(frozen=True)
class Mask:
    """A boolean mask: random, all True, all False, or a single True entry (``dtype`` may be a float type).

    ``each_row=True`` keeps at least one True in every row (last axis), as an attention mask needs.
    """

    shape: tuple[Dim, ...]
    dtype: str = "bool"
    each_row: bool = False

    def __init__(self, *shape: Dim, dtype: str = "bool", each_row: bool = False) -> None:
        object.__setattr__(self, "shape", tuple(shape))
        object.__setattr__(self, "dtype", str(dtype))
        object.__setattr__(self, "each_row", bool(each_row))


@dataclass(frozen=True)
class Params:
    """A dict of hyper-parameters passed as one positional input (CS231n's ``conv_param``)."""

    items: Mapping[str, Any] = field(default_factory=dict)

    def __init__(self, items: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        object.__setattr__(self, "items", dict(items or {}, **kwargs))


Input = Array | Labels | Integers | Mask | Params
INPUT_TYPES = (Array, Labels, Integers, Mask, Params)


def as_dim_spec(name: str, value: Any) -> Ints | Choice:
    """``dims=`` entries: an int (fixed), ``(low, high)`` (inclusive), :class:`Ints` or :class:`Choice`."""
    if isinstance(value, (Ints, Choice)):
        return value
    if isinstance(value, int):
        return Ints(value, value)
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return Ints(*value)
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return Choice(*value)
    raise BadInputError(f"dims[{name!r}] = {value!r} is not a dimension range.",
                        "give an int, a (low, high) tuple, a list of choices, Ints(...) or Choice(...).")


def dim_names(inputs: Mapping[str, Input]) -> list[str]:
    """Named dimensions of every array, in order of first appearance."""
    seen: list[str] = []
    for spec in inputs.values():
        dims: tuple[Any, ...] = getattr(spec, "shape", ())
        extra = [getattr(spec, a, None) for a in ("classes", "low", "high")]
        for d in (*dims, *extra):
            if isinstance(d, str) and d not in seen:
                seen.append(d)
    return seen


def resolve(d: Dim, env: Mapping[str, Any], where: str) -> int:
    """The value of a dimension in an environment of drawn dimensions and hyper-parameters."""
    try:
        value = env[d] if isinstance(d, str) else d(env) if callable(d) else d
    except KeyError as exc:
        raise BadInputError(f"dimension {d!r} of {where} uses {exc}, which is neither a drawn dimension nor a "
                            "hyper-parameter.", f"give its range in dims=, e.g. dims={{{exc}: (1, 3)}}.") from None
    if isinstance(value, bool) or not isinstance(value, (int,)) and not hasattr(value, "__index__"):
        raise BadInputError(f"dimension {d!r} of {where} is {value!r}, not an integer.",
                            "a dimension is an int, a named dimension, or a callable returning an int.")
    return int(value)


def validate(inputs: Mapping[str, Any], hyper: Mapping[str, Any]) -> None:
    """Typed errors for a malformed description, naming the entry."""
    if not isinstance(inputs, Mapping) or not inputs:
        raise BadInputError("inputs is not a non-empty dict of input descriptions.",
                            "e.g. inputs={'x': Array('N', 'D'), 'y': Labels('N', classes='D')}, in forward's "
                            "parameter order.")
    for name, spec in inputs.items():
        if not (isinstance(name, str) and name.isidentifier()):
            raise BadInputError(f"input name {name!r} is not a Python identifier.",
                                "name the inputs like forward's parameters.")
        if not isinstance(spec, INPUT_TYPES):
            raise BadInputError(f"inputs[{name!r}] is {type(spec).__name__}, not an input description.",
                                "use Array, Labels, Integers, Mask or Params from backcheck.explore.")
    if not any(isinstance(s, Array) for s in inputs.values()):
        raise BadInputError("no input is a float Array, so there is nothing to differentiate.",
                            "describe at least one input with backcheck.explore.Array(...).")
    clash = set(hyper) & set(inputs)
    if clash:
        raise BadInputError(f"{sorted(clash)} are both inputs and hyper-parameters.", "give each name once.")
