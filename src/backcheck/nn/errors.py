"""Typed errors raised by :mod:`backcheck.nn`.

Every error subclasses both :class:`NNError` (so callers can catch everything the engine raises)
and the matching builtin (``ValueError``, ``TypeError`` or ``RuntimeError``), so code written
against the builtins keeps working.
"""

from __future__ import annotations

__all__ = [
    "NNError",
    "ShapeError",
    "DTypeError",
    "GraphError",
    "LabelError",
    "IndexRangeError",
    "StateDictError",
]


class NNError(Exception):
    """Base class of every error raised by :mod:`backcheck.nn`."""


class ShapeError(NNError, ValueError):
    """Operand shapes are incompatible; the message names the op and every shape involved."""


class DTypeError(NNError, TypeError):
    """A dtype is not allowed here, e.g. an integer tensor asked to require a gradient."""


class GraphError(NNError, RuntimeError):
    """The autograd graph cannot be used as asked (freed graph, implicit non-scalar gradient, ...)."""


class LabelError(NNError, ValueError):
    """Class labels are invalid for a classification loss (out of range, wrong dtype or shape)."""


class IndexRangeError(NNError, IndexError):
    """An integer index (e.g. an embedding id) is outside the valid range."""


class StateDictError(NNError, ValueError):
    """A state dict does not fit a module (missing or unexpected keys, wrong shapes)."""
