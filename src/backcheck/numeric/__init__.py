"""Numerical differentiation: stencils, step sizes, Richardson tables with error estimates, the complex step."""

from backcheck.numeric.grad import numerical_grad, refine_elements
from backcheck.numeric.richardson import Refined, SharpDerivative, refine, sharp_derivative
from backcheck.numeric.stencils import STENCILS, Stencil
from backcheck.numeric.steps import default_steps, step_base

__all__ = [
    "numerical_grad",
    "refine_elements",
    "sharp_derivative",
    "SharpDerivative",
    "refine",
    "Refined",
    "default_steps",
    "step_base",
    "STENCILS",
    "Stencil",
]
