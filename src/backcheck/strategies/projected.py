"""Checks whose cost does not grow with the number of elements, and group testing to find the wrong ones.

``projected``: for each array, ``k`` random directions ``v`` supported on it (half Rademacher, half
Gaussian), each scaled so that the whole move is about one finite-difference step. The numeric directional
derivative is compared with ``<g, v>``; 2 evaluations per direction, whatever the size of the array.

``localize``: when a direction fails, the array's elements are split in halves and the mismatch measured
along the restriction of one Gaussian direction to each half. A half without wrong elements shows no
mismatch; a half with them does (a Gaussian weighting cannot cancel errors except with probability zero).
By linearity, the mismatch of the second half follows from its parent's and its sibling's, so one
measurement (2 evaluations) per level suffices for a single wrong element: about ``2 log2(N)``
evaluations, then the element is judged exactly as the full check would (kinks included).

``auto``: projected first; localize what fails.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from backcheck.evaluate import Evaluator
from backcheck.numeric.grad import noise_level
from backcheck.strategies.elementwise import run
from backcheck.tree import Leaf
from backcheck.verdict import FAILING, KINK, OK, RES_FACTOR, Claim, Tolerance, bound, is_kink, rms

#: Directions per array for the projected check (half Rademacher, half Gaussian).
DIRECTIONS = 8
#: The most wrong elements localization reports before it samples instead.
MAX_LOCALIZED = 32
#: A mismatch this many screening bounds large fails without refinement at a smaller step.
CLEAR = 64.0
#: Probability with which the reported detectable error would pass unnoticed.
MISS_PROBABILITY = 1e-3


@dataclass
class Measurement:
    """The mismatch ``numeric - analytic`` of a directional derivative, per unit step, and its bound."""

    mismatch: float
    bound: float
    numeric: float
    analytic: float
    kinky: bool = False  # the direction crosses a kink at the point: its central difference proves nothing

    @property
    def failed(self) -> bool:
        return abs(self.mismatch) > self.bound and not self.kinky


def measure(
    ev: Evaluator,
    g: np.ndarray,
    idx: np.ndarray,
    coef: np.ndarray,
    grad_eps: float,
    tol: Tolerance,
    typical: float = 0.0,
) -> Measurement:
    """Difference along ``x + t * coef`` (on elements ``idx``) at ``t = 1`` and, if doubtful, ``t = 1/2``."""

    gs = g[idx]  # idx is ascending here: a range, or a slice of one

    def at(t: float) -> tuple[float, float, float]:
        phis, disps = ev.direction(idx, coef, (t, -t))
        numeric = (phis[0] - phis[1]) / (2 * t)
        analytic = float(np.dot(gs, disps[0] - disps[1])) / (2 * t)
        gap = abs((phis[0] - ev.phi0) - (ev.phi0 - phis[1])) / t  # forward minus backward slope
        return numeric, analytic, gap

    gc = gs * coef
    # the analytic side's rounding: of the product itself, and of gradients of the typical size (an array
    # whose true gradient is zero still carries rounding of its neighbours' size)
    res = (
        RES_FACTOR
        * grad_eps
        * (abs(float(np.sum(gc))) + float(np.sqrt(np.dot(gc, gc))) + typical * float(np.sqrt(np.dot(coef, coef))))
    )
    n1, a1, gap1 = at(1.0)
    noise = noise_level(ev)
    if tol.custom:
        return Measurement(n1 - a1, float(tol.allowed(n1)), n1, a1)
    eps_out = float(np.finfo(ev.out_dtype).eps)
    # as in verdict.screen: a balanced step's truncation is about its round-off, eps^(2/3) of the derivative
    screen = bound(eps_out ** (2 / 3) * (abs(n1) + float(np.sum(np.abs(gc)))), noise / 2, res)
    smooth = gap1 < abs(n1 - a1) / 4  # a kink along the direction would show as a large gap
    if abs(n1 - a1) <= screen or (smooth and abs(n1 - a1) > CLEAR * screen):
        return Measurement(n1 - a1, screen, n1, a1)  # clearly right, or clearly wrong: no need to refine
    n2, a2, gap2 = at(0.5)
    limit = bound(abs((n1 - a1) - (n2 - a2)), noise, res)
    kinky = is_kink(gap2, gap1, 4 * noise)  # the gap at t = 1/2 carries 2 x 2 noise / t
    return Measurement(n2 - a2, limit, n2, a2, kinky)


def directions(rng: np.random.Generator, size: int, k: int) -> list[tuple[str, np.ndarray]]:
    out = []
    for j in range(k):
        kind = "gaussian" if j % 2 == 0 else "rademacher"
        v = np.where(rng.random(size) < 0.5, -1.0, 1.0) if kind == "rademacher" else rng.standard_normal(size)
        out.append((kind, v / np.linalg.norm(v)))
    return out


@dataclass
class LeafProjection:
    """What the projected check learned about one array."""

    failed: bool
    kinky: int  # directions that cross a kink at the point
    measurements: list[tuple[str, Measurement]]
    detectable: float  # relative RMS error caught with probability >= 1 - MISS_PROBABILITY
    first_gaussian_failure: np.ndarray | None  # its unit weights, to localize with


def project_leaf(
    ev: Evaluator,
    claim: Claim,
    leaf: Leaf,
    rng: np.random.Generator,
    k: int,
    stop_on_failure: bool = False,
) -> LeafProjection:
    """Compare ``k`` random directional derivatives over ``leaf`` with the claimed gradient."""
    g, steps, tol = claim.g, claim.steps, claim.tol
    offset, size = leaf.offset, leaf.size
    grad_eps, typical = float(claim.grad_eps[offset]), float(claim.rms[offset])
    idx = np.arange(offset, offset + size)
    h = steps[idx]
    results = []
    gaussian_failure = None
    for kind, v in directions(rng, size, k):
        m = measure(ev, g, idx, h * v, grad_eps, tol, typical)
        results.append((kind, m))
        if m.failed and kind == "gaussian" and gaussian_failure is None:
            gaussian_failure = v
        if m.failed and stop_on_failure:
            break  # the array is wrong; localization takes over
    failed = any(m.failed for _, m in results)
    kinky = sum(m.kinky for _, m in results)
    # a Gaussian direction sees an error e as N(0, |e*h|^2 / size) in these units; the chance it stays
    # within the bound B is at most 2B / (sigma sqrt(2 pi)); solve prod_j (...) = MISS_PROBABILITY for sigma
    bounds = [m.bound for kind, m in results if kind == "gaussian"]
    scale = rms(g[idx] * h)
    detectable = math.inf
    if bounds and scale > 0:
        geo = math.exp(sum(math.log(2 * b / math.sqrt(2 * math.pi)) for b in bounds) / len(bounds))
        sigma = geo * MISS_PROBABILITY ** (-1.0 / len(bounds))
        detectable = sigma / scale
    return LeafProjection(failed, kinky, results, detectable, gaussian_failure)


@dataclass
class Localized:
    found: list[int]  # flat indices judged wrong (or at kinks) elementwise
    numeric: dict[int, float]
    bound: dict[int, float]
    status: dict[int, str]
    complete: bool  # False when it stopped at MAX_LOCALIZED wrong elements


def localize(
    ev: Evaluator, claim: Claim, leaf: Leaf, weights: np.ndarray, root: Measurement | None
) -> Localized:
    """Bisect the array's elements down to the wrong ones (see the module docstring)."""
    g, steps, offset, size = claim.g, claim.steps, leaf.offset, leaf.size
    idx_all = np.arange(offset, offset + size)
    w = weights

    def test(lo: int, hi: int) -> Measurement:
        sub = idx_all[lo:hi]
        ws = w[lo:hi]
        norm = float(np.linalg.norm(ws))
        return measure(
            ev, g, sub, steps[sub] * ws / norm, float(claim.grad_eps[offset]), claim.tol, float(claim.rms[offset])
        )

    out = Localized([], {}, {}, {}, True)
    tests, budget = 0, 8 * MAX_LOCALIZED * max(1, math.ceil(math.log2(max(size, 2))))
    if root is None:
        root = test(0, size)
    stack: list[tuple[int, int, Measurement]] = [(0, size, root)] if root.failed else []
    while stack:
        lo, hi, m = stack.pop()
        if hi - lo == 1:
            _judge_one(ev, claim, int(idx_all[lo]), out)
            if sum(s in FAILING for s in out.status.values()) >= MAX_LOCALIZED:
                out.complete = False
                break
            continue
        mid = (lo + hi) // 2
        left = test(lo, mid)
        # the mismatch is linear in the direction: infer the right half from its parent and sibling
        n_p, n_l, n_r = (float(np.linalg.norm(w[a:b])) for a, b in ((lo, hi), (lo, mid), (mid, hi)))
        inferred = (n_p * m.mismatch - n_l * left.mismatch) / n_r
        inferred_bound = (n_p * m.bound + n_l * left.bound) / n_r
        if abs(inferred) > 4 * inferred_bound:
            right = Measurement(inferred, inferred_bound, math.nan, math.nan)
        else:
            right = test(mid, hi)  # not clear from the inference: measure, do not guess
        tests += 1
        if tests > budget:
            out.complete = False
            break
        for part in ((mid, hi, right), (lo, mid, left)):
            if part[2].failed:
                stack.append(part)
    return out


def _judge_one(ev: Evaluator, claim: Claim, i: int, out: Localized) -> None:
    """Judge one localized element exactly as the full check would; keep it if wrong or at a kink."""
    sub = run(ev, claim.bare(), np.array([i]))
    st = str(sub.status[0])
    if st in FAILING or st == KINK:
        out.found.append(int(i))
        out.numeric[int(i)] = float(sub.numeric[0])
        out.bound[int(i)] = float(sub.bound[0])
        out.status[int(i)] = st


__all__ = ["DIRECTIONS", "MAX_LOCALIZED", "OK", "localize", "project_leaf"]
