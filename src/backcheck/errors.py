"""Typed errors. Every message names the culprit and ends with a hint."""

from __future__ import annotations

from typing import Any


class BackcheckError(Exception):
    """Base class of every error backcheck raises on purpose."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message + (f"\nHint: {hint}" if hint else ""))


class BadInputError(BackcheckError, ValueError):
    """An argument cannot be checked as given."""


class ParamsError(BadInputError):
    """The parameters to differentiate are empty, of a non-float dtype, or of an unsupported type."""


class ArgumentError(BadInputError, TypeError):
    """An entry point was called with an argument it does not take (a misspelt option), or without one it needs.

    Also a ``TypeError``, as Python's own error for such a call is."""


class GradientStructureError(BadInputError):
    """The analytic gradient does not have the structure, shape or dtype of the parameters."""


class NotScalarError(BadInputError):
    """A loss function returned something other than a single number."""


class NonFiniteError(BadInputError):
    """NaN or Inf in a function's output or in a gradient."""


class NondeterministicError(BadInputError):
    """A function returned different values for the same input (dropout, sampling, an unseeded generator)."""


class UserFunctionError(BackcheckError, RuntimeError):
    """A user function raised; the original exception is chained as ``__cause__``."""


class EvaluationError(BackcheckError, RuntimeError):
    """A worker failed (died, or could not run the function); the user's arrays are intact."""


class CaseError(BackcheckError, ValueError):
    """A case file or a ``@backcheck.case`` function is malformed (the CLI and the pytest plugin report it)."""


class NumericWarning(RuntimeWarning):
    """A numerical gradient came back, but with a caveat that names the culprit and gives a hint: the function
    never moved when an argument moved (it reads a copy), returns a coarser dtype than its parameters, or wrote
    into its input (restored after every call)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message + (f"\nHint: {hint}" if hint else ""))


class GradientMismatch(AssertionError):
    """Raised by the ``assert_*`` functions; the message is the report's table.

    Attributes
    ----------
    report : Report
        The full structured result.
    """

    def __init__(self, report: Any) -> None:
        self.report = report
        super().__init__(str(report))
