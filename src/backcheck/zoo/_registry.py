"""Data model of the zoo (``Layer`` and ``Bug``), bug factories and the registry of all layers."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

__all__ = ["Bug", "Grads", "Layer", "get", "layers", "names", "one_wrong_element", "register", "scale_bug"]

Grads = tuple[np.ndarray | None, ...]

FAMILIES = (
    "activation",
    "loss",
    "linear",
    "conv",
    "pooling",
    "normalization",
    "recurrent",
    "attention",
    "linalg",
    "elementwise",
    "regularization",
    "reduction",
)


@dataclass(frozen=True)
class Bug:
    """A realistic wrong backward pass for a layer.

    ``backward`` has the same signature as the layer's correct backward. ``severity`` is ``"gross"``
    (relative error of at least about 1e-2) or ``"subtle"``. ``mutates`` marks bugs that (also)
    modify one of their inputs in place.
    """

    name: str
    backward: Callable[..., Any]  # a layer's backward (Grads); a model's, its gradient function (a dict)
    severity: str
    description: str
    mutates: bool = False
    #: how wrong it is where it is meant to show: max over inputs of max|g_bug - g| / max|g| at
    #: ``make_inputs(default_rng(0), float64)`` (None where not recorded)
    size: float | None = None


@dataclass(frozen=True)
class Layer:
    """A numpy layer: pure ``forward``, correct ``backward``, input factory and a list of bugs.

    ``forward(*inputs)`` returns an array; ``backward(dout, *inputs)`` returns one gradient per
    input (``None`` for integer labels and masks). ``make_inputs(rng, dtype)`` returns a dict ordered
    like ``forward``'s parameters, with inputs away from any kink. ``kinks(rng, dtype)``, when not
    ``None``, returns inputs sitting exactly on a non-differentiable point. ``loss`` layers return a
    scalar and receive a scalar ``dout``. ``jumps(rng, dtype)``, when not ``None``, returns inputs at which
    the forward itself jumps (a step, a sign, a branch cut): no derivative exists there, and a check must
    not pass whatever the backward claims.
    """

    name: str
    family: str
    forward: Callable[..., np.ndarray | np.floating]
    backward: Callable[..., Grads]
    make_inputs: Callable[[np.random.Generator, DTypeLike], dict[str, np.ndarray]]
    bugs: tuple[Bug, ...]
    kinks: Callable[[np.random.Generator, DTypeLike], dict[str, np.ndarray]] | None = None
    loss: bool = False
    jumps: Callable[[np.random.Generator, DTypeLike], dict[str, np.ndarray]] | None = None


# ---------------------------------------------------------------------------------------------
# Bug factories for the subtle, layer-independent bugs.
# ---------------------------------------------------------------------------------------------


def _same_signature(wrapper: Callable, backward: Callable, tag: str) -> None:
    """Give a generic ``(dout, *inputs)`` wrapper the signature and a readable name of ``backward``."""
    wrapper.__signature__ = inspect.signature(backward)  # type: ignore[attr-defined]
    wrapper.__name__ = wrapper.__qualname__ = f"{backward.__name__}_{tag}"


def scale_bug(backward: Callable[..., Grads], exponent: int) -> Bug:
    """A bug that multiplies every gradient by ``1 + 10**-exponent`` (e.g. a stray constant)."""
    factor = 1.0 + 10.0**-exponent

    def scaled_backward(dout, *inputs):
        return tuple(None if g is None else g * factor for g in backward(dout, *inputs))

    _same_signature(scaled_backward, backward, f"scaled_1e-{exponent}")
    return Bug(
        name=f"scale_1e-{exponent}",
        backward=scaled_backward,
        severity="subtle" if exponent >= 2 else "gross",
        description=f"Every gradient is too large by a factor 1 + 1e-{exponent}, "
        "e.g. from a slightly wrong constant.",
    )


def one_wrong_element(
    backward: Callable[..., Grads], which: int = 0, index: int = 1, amount: float = 1e-3
) -> Bug:
    """A bug that adds ``amount * max|g|`` to a single element (flat ``index``) of gradient ``which``."""

    def wrong_element_backward(dout, *inputs):
        grads = list(backward(dout, *inputs))
        g = grads[which].copy()
        scale = float(np.max(np.abs(g))) or 1.0
        g.reshape(-1)[index] += amount * scale
        grads[which] = g
        return tuple(grads)

    _same_signature(wrong_element_backward, backward, "one_wrong_element")
    return Bug(
        name="one_wrong_element",
        backward=wrong_element_backward,
        severity="subtle" if amount < 1e-2 else "gross",
        description=f"A single gradient element is off by {amount:g} times the largest gradient, "
        "like an off-by-one in a loop boundary.",
    )


# ---------------------------------------------------------------------------------------------
# The registry. It imports nothing from the zoo: the package imports the family modules, which use
# Bug and Layer from here, and registers their layers (see backcheck/zoo/__init__.py).
# ---------------------------------------------------------------------------------------------

_BY_NAME: dict[str, Layer] = {}


def register(layers: tuple[Layer, ...]) -> None:
    """Add layers to the registry; a name already taken by another layer is an error."""
    for layer in layers:
        other = _BY_NAME.get(layer.name)
        if other is not None and other is not layer:
            raise ValueError(f"two zoo layers are called {layer.name!r}; rename one of them")
        if layer.family not in FAMILIES:
            raise ValueError(f"zoo layer {layer.name!r} has unknown family {layer.family!r}; use one of {FAMILIES}")
        _BY_NAME[layer.name] = layer


def layers() -> tuple[Layer, ...]:
    """Every registered layer, in registry order."""
    return tuple(_BY_NAME.values())


def names() -> list[str]:
    """Names of all layers, in registry order."""
    return list(_BY_NAME)


def get(name: str) -> Layer:
    """The layer called ``name``; raises ``KeyError`` naming close matches if there is none."""
    try:
        return _BY_NAME[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_BY_NAME), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"no zoo layer named {name!r}{hint}") from None
