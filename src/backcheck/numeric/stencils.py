"""Finite-difference stencils: ``f'(x) ~ sum_k w_k f(x + o_k h) / h``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Stencil:
    """Offsets ``o_k`` (in units of the step) and weights ``w_k``.

    ``order`` is the truncation order ``p`` (error ``O(h**p)``); ``increment`` is the gap between the powers of
    ``h`` in the error series (``h**p, h**(p + increment), ...``): 2 for a symmetric stencil, whose odd terms
    cancel, 1 for a one-sided one. Richardson extrapolation removes those terms one at a time.
    """

    name: str
    offsets: tuple[float, ...]
    weights: tuple[float, ...]
    order: int
    increment: int = 2


STENCILS: dict[str, Stencil] = {
    "central": Stencil("central", (-1.0, 1.0), (-0.5, 0.5), 2),
    "forward": Stencil("forward", (0.0, 1.0), (-1.0, 1.0), 1, 1),
    "backward": Stencil("backward", (-1.0, 0.0), (-1.0, 1.0), 1, 1),
    "central4": Stencil("central4", (-2.0, -1.0, 1.0, 2.0), (1 / 12, -8 / 12, 8 / 12, -1 / 12), 4),
    "central6": Stencil(
        "central6",
        (-3.0, -2.0, -1.0, 1.0, 2.0, 3.0),
        (-1 / 60, 9 / 60, -45 / 60, 45 / 60, -9 / 60, 1 / 60),
        6,
    ),
}


def node_weights(nodes: np.ndarray) -> np.ndarray:
    """First-derivative weights for the actual nodes of a stencil, many stencils at once.

    ``nodes`` has shape ``(m, n)``: the displacements actually taken (a float32 array rounds ``x + o h``), in
    units of the nominal step. Returns ``w`` of shape ``(m, n)`` with ``sum_k w_k d_k**q = [q == 1]`` for
    ``q < n``: exact for polynomials of degree ``n - 1``, so the stencil keeps its order on rounded nodes.
    Rows whose nodes coincide (a step lost to rounding) come back as NaN.
    """
    nodes = np.asarray(nodes, dtype=np.float64)
    m, n = nodes.shape
    powers = nodes[:, None, :] ** np.arange(n)[None, :, None]  # (m, q, k)
    rhs = np.zeros((m, n, 1))
    rhs[:, 1 if n > 1 else 0, 0] = 1.0
    out = np.full((m, n), np.nan)
    distinct = np.ones(m, dtype=bool)
    for a in range(n):
        for b in range(a + 1, n):
            distinct &= nodes[:, a] != nodes[:, b]
    if distinct.any():
        out[distinct] = np.linalg.solve(powers[distinct], rhs[distinct])[:, :, 0]
    return out


def apply_nodes(phis: np.ndarray, nodes: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, ...]:
    """The stencil on its actual nodes: estimate, ``sum |w| / h``, ``sum |w phi| / h``, and, over the nodes off
    the base point, ``sqrt(sum (w phi)**2) / h`` and ``sqrt(sum w**2) / h``; the base point's ``w / h``."""
    finite = np.isfinite(phis).all(axis=1)
    w = node_weights(np.where(finite[:, None], nodes / h[:, None], 0.0))
    vals = np.where(finite[:, None], phis, 0.0)
    off = nodes != 0.0
    bad = np.where(finite, 1.0, np.nan)
    return (
        bad * np.sum(w * vals, axis=1) / h,
        bad * np.sum(np.abs(w), axis=1) / h,
        bad * np.sum(np.abs(w * vals), axis=1) / h,
        bad * np.sqrt(np.sum(np.where(off, w * vals, 0.0) ** 2, axis=1)) / h,
        bad * np.sqrt(np.sum(np.where(off, w, 0.0) ** 2, axis=1)) / h,
        np.where(finite, np.sum(np.where(off, 0.0, w), axis=1) / h, 0.0),
    )
