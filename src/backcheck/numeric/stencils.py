"""Finite-difference stencils: ``f'(x) ~ sum_k w_k f(x + o_k h) / h``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Stencil:
    """Offsets ``o_k`` (in units of the step) and weights ``w_k``; ``order`` is the truncation order."""

    name: str
    offsets: tuple[float, ...]
    weights: tuple[float, ...]
    order: int

    def apply(self, phis: np.ndarray, h: float) -> float:
        return float(np.dot(self.weights, phis) / h)


STENCILS: dict[str, Stencil] = {
    "central": Stencil("central", (-1.0, 1.0), (-0.5, 0.5), 2),
    "forward": Stencil("forward", (0.0, 1.0), (-1.0, 1.0), 1),
    "backward": Stencil("backward", (-1.0, 0.0), (-1.0, 1.0), 1),
    "central4": Stencil("central4", (-2.0, -1.0, 1.0, 2.0), (1 / 12, -8 / 12, 8 / 12, -1 / 12), 4),
    "central6": Stencil(
        "central6",
        (-3.0, -2.0, -1.0, 1.0, 2.0, 3.0),
        (-1 / 60, 9 / 60, -45 / 60, 45 / 60, -9 / 60, 1 / 60),
        6,
    ),
}


def richardson(d_h: float, d_h2: float, order: int) -> tuple[float, float]:
    """Combine estimates at steps ``h`` and ``h/2`` of a method of truncation ``order``.

    Returns the extrapolated value and an error estimate: the change between the two steps, which bounds
    the error of the finer one when truncation dominates.
    """
    factor = 2.0**order
    value = d_h2 + (d_h2 - d_h) / (factor - 1.0)
    return value, abs(d_h2 - d_h)
