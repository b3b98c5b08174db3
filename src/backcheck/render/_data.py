"""The per-element arrays behind the plots, taken from a report as they are (no verdict is recomputed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from backcheck.report import Curve, LeafReport, Report


def as_list(reports: Report | Sequence[Report]) -> list[Report]:
    """A single report or a sequence of them, as a list."""
    from backcheck.report import Report

    if isinstance(reports, Report):
        return [reports]
    out = list(reports)
    for r in out:
        if not isinstance(r, Report):
            raise TypeError(f"expected backcheck Report objects, got a {type(r).__name__}")
    return out


def overall_status(reports: Sequence[Report]) -> str:
    """'fail' if any report failed, else 'inconclusive' if any is, else 'pass' ('empty' for none)."""
    statuses = [r.status for r in reports]
    if not statuses:
        return "empty"
    for s in ("fail", "inconclusive"):
        if s in statuses:
            return s
    return "pass"


def flatten(tree: Any) -> list[np.ndarray]:
    """The arrays of a tree in the checker's leaf order (dict order, namedtuple fields, list index)."""
    if tree is None:
        return []
    if isinstance(tree, Mapping):
        return [a for v in tree.values() for a in flatten(v)]
    if isinstance(tree, (list, tuple)):
        return [a for v in tree for a in flatten(v)]
    return [np.asarray(tree, dtype=np.float64)]


@dataclass
class LeafData:
    """One leaf's report with its full analytic and numeric arrays (and per-element bounds when known)."""

    leaf: LeafReport
    analytic: np.ndarray | None
    numeric: np.ndarray | None
    bound: np.ndarray | None  # per element, when the report stores it
    curve: Curve | None

    @property
    def has_arrays(self) -> bool:
        return self.analytic is not None and self.numeric is not None

    def abs_diff(self) -> np.ndarray:
        """|analytic - numeric| in the leaf's shape; NaN where the element was not checked."""
        assert self.analytic is not None and self.numeric is not None
        return np.abs(self.analytic - self.numeric)

    def kink_mask(self) -> np.ndarray:
        """True at the elements listed as kinks (a report lists at most a few of them)."""
        mask = np.zeros(self.leaf.shape, dtype=bool)
        for e in self.leaf.kinks:
            if len(e.index) == len(self.leaf.shape):
                mask[tuple(e.index)] = True
        return mask

    def reference_bound(self) -> float | None:
        """The largest bound among the listed worst elements: the scale when per-element bounds are absent."""
        bounds = [e.bound for e in self.leaf.worst if np.isfinite(e.bound) and e.bound > 0]
        return max(bounds) if bounds else None

    def ratios(self) -> tuple[np.ndarray, bool]:
        """|a - n| / bound over the checked, non-kink elements, and whether the bound is per element.

        Without per-element bounds in the report, every element is divided by :meth:`reference_bound`.
        """
        diff = self.abs_diff()
        keep = np.isfinite(diff) & ~self.kink_mask()
        if self.bound is not None and self.bound.shape == diff.shape:
            b = self.bound
            keep &= np.isfinite(b) & (b > 0)
            return (diff[keep] / b[keep]).ravel(), True
        ref = self.reference_bound()
        if ref is None:
            return np.empty(0), False
        return (diff[keep] / ref).ravel(), False


def leaf_data(report: Report) -> list[LeafData]:
    """Each leaf of ``report`` with its arrays, matched by position (the trees follow the leaf order)."""
    analytic, numeric = flatten(report.analytic), flatten(report.numeric)
    bound = flatten(getattr(report, "bound", None))
    curves = {c.name: c for c in report.curves}
    n = len(report.leaves)
    usable = len(analytic) == n and len(numeric) == n and all(
        a.shape == tuple(lf.shape) and m.shape == tuple(lf.shape)
        for a, m, lf in zip(analytic, numeric, report.leaves, strict=True))
    out = []
    for k, lf in enumerate(report.leaves):
        curve = curves.get(lf.worst[0].name) if lf.worst else None
        if usable:
            b = bound[k] if len(bound) == n else None
            out.append(LeafData(lf, analytic[k], numeric[k], b, curve))
        else:
            out.append(LeafData(lf, None, None, None, curve))
    return out
