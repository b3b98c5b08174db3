"""Numerical differentiation: stencils, step sizes, Richardson error estimates and the complex step."""

from backcheck.numeric.grad import numerical_grad
from backcheck.numeric.stencils import STENCILS, Stencil
from backcheck.numeric.steps import default_steps, step_base

__all__ = ["numerical_grad", "default_steps", "step_base", "STENCILS", "Stencil"]
