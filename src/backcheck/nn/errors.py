"""Typed errors raised by :mod:`backcheck.nn`.

Every error subclasses :class:`NNError` (so callers can catch everything the engine raises), which is a
:class:`backcheck.errors.BackcheckError`: the message names the culprit and may end with a hint. Errors
about bad input are also :class:`backcheck.errors.BadInputError` (a ``ValueError``), and each keeps the
builtin it has always been (``TypeError`` for dtypes, ``IndexError`` for indices, ``RuntimeError`` for
graph misuse), so code written against the builtins keeps working.
"""

from __future__ import annotations

from typing import Any

from backcheck.errors import BackcheckError, BadInputError

__all__ = [
    "NNError",
    "ArgumentError",
    "ShapeError",
    "DTypeError",
    "GraphError",
    "LabelError",
    "IndexRangeError",
    "StateDictError",
    "NonFiniteLossError",
]


class NNError(BackcheckError):
    """Base class of every error raised by :mod:`backcheck.nn`."""


class ArgumentError(NNError, BadInputError, TypeError):
    """An argument of a constructor or function is of the wrong type or outside its allowed range.

    Attributes
    ----------
    argument : str or None
        The argument's name, e.g. ``'in_features'`` or ``'betas[0]'``.
    allowed : str or None
        The allowed values, e.g. ``'an integer >= 1'``.
    value : object
        The value given.

    Examples
    --------
    >>> from backcheck.nn import Linear
    >>> try:
    ...     Linear(0, 2)
    ... except ArgumentError as exc:
    ...     print(exc.argument, "|", exc.allowed)
    in_features | an integer >= 1
    """

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        argument: str | None = None,
        allowed: str | None = None,
        value: Any = None,
    ) -> None:
        super().__init__(message, hint)
        self.argument, self.allowed, self.value = argument, allowed, value


class ShapeError(NNError, BadInputError):
    """Operand shapes are incompatible; the message names the op and every shape involved."""


class DTypeError(NNError, BadInputError, TypeError):
    """A dtype is not allowed here, e.g. an integer tensor asked to require a gradient."""


class GraphError(NNError, RuntimeError):
    """The autograd graph cannot be used as asked (freed graph, implicit non-scalar gradient, ...)."""


class LabelError(NNError, BadInputError):
    """Class labels are invalid for a classification loss (out of range, wrong dtype or shape)."""


class IndexRangeError(NNError, BadInputError, IndexError):
    """An integer index (e.g. an embedding id) is outside the valid range."""


class StateDictError(NNError, BadInputError):
    """A state dict does not fit a module (missing or unexpected keys, wrong shapes)."""


class NonFiniteLossError(NNError, FloatingPointError):
    """A training loss is NaN or infinite: :func:`~backcheck.nn.train.fit` stops at that step, before its
    backward and optimizer step would spread the value into every parameter.

    Attributes
    ----------
    loss : float
        The non-finite loss.
    epoch, batch, step : int
        Where it appeared, counted from 0 (``step`` counts optimizer steps over the whole fit).
    """

    def __init__(self, message: str, hint: str | None = None, *, loss: float, epoch: int, batch: int, step: int):
        super().__init__(message, hint)
        self.loss, self.epoch, self.batch, self.step = loss, epoch, batch, step
