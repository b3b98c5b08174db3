"""Numerical differentiation: stencils, step sizes, Richardson tables with error estimates, the complex step."""

from backcheck.numeric.grad import numerical_grad
from backcheck.numeric.richardson import SharpDerivative, refine, sharp_derivative
from backcheck.numeric.stencils import STENCILS, Stencil
from backcheck.numeric.steps import default_steps, step_base

__all__ = [
    "numerical_grad",
    "sharp_derivative",
    "SharpDerivative",
    "refine",
    "default_steps",
    "step_base",
    "STENCILS",
    "Stencil",
]
