"""backcheck: trustworthy gradient checking for hand-written backward passes.

>>> import numpy as np, backcheck
>>> backcheck.check(lambda x: np.sum(x ** 2), np.arange(3.0), lambda x: 2 * x).ok
True
"""

from backcheck import explore
from backcheck._version import __version__ as __version__
from backcheck.api import assert_grad, check
from backcheck.cases import case
from backcheck.errors import (
    ArgumentError,
    BackcheckError,
    BadInputError,
    CaseError,
    EvaluationError,
    GradientMismatch,
    GradientStructureError,
    NondeterministicError,
    NonFiniteError,
    NotScalarError,
    NumericWarning,
    ParamsError,
    UserFunctionError,
)
from backcheck.frontends.layers import assert_layer, check_layer
from backcheck.frontends.objects import check_object
from backcheck.numeric import numerical_grad
from backcheck.randomness import freeze_rng
from backcheck.report import Element, Finding, LeafReport, Report
from backcheck.second_order import check_grad_of_grad, check_hvp

__all__ = [
    "explore",
    "check",
    "assert_grad",
    "check_layer",
    "assert_layer",
    "check_object",
    "numerical_grad",
    "check_hvp",
    "check_grad_of_grad",
    "freeze_rng",
    "Report",
    "LeafReport",
    "Element",
    "Finding",
    "case",
    "BackcheckError",
    "BadInputError",
    "ArgumentError",
    "ParamsError",
    "GradientStructureError",
    "NotScalarError",
    "NonFiniteError",
    "NondeterministicError",
    "UserFunctionError",
    "EvaluationError",
    "CaseError",
    "GradientMismatch",
    "NumericWarning",
]
