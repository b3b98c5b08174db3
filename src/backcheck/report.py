"""Structured results of a check. Nothing here computes a verdict; it only holds and summarizes them."""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backcheck.containers import flatten
from backcheck.errors import BadInputError
from backcheck.tree import Tree, format_index, unravel
from backcheck.verdict import DEAD, FAILING, JUMP, KINK, MISMATCH, NOISY, OK, rms

#: Version of the dictionary layout of :meth:`Report.to_dict`.
SCHEMA_VERSION = 1
#: How many elements a leaf lists (the worst first).
WORST = 5


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


class UnknownLeafError(BadInputError, KeyError):
    """:meth:`Report.leaf` was asked for a name the report has no leaf of (also a ``KeyError``, as a lookup)."""

    def __str__(self) -> str:
        return Exception.__str__(self)  # (a KeyError would show the message quoted, on one line)


@dataclass
class Element:
    """One element's verdict: where it is, both values, their difference and the bound it was held to."""

    name: str
    index: tuple[int, ...]
    analytic: float
    numeric: float
    bound: float
    status: str

    @property
    def abs_err(self) -> float:
        return abs(self.analytic - self.numeric)

    @property
    def rel_err(self) -> float:
        if self.analytic != self.analytic or self.numeric != self.numeric:  # a NaN side: no relative error (not 0)
            return float("nan")
        scale = max(abs(self.analytic), abs(self.numeric))
        return self.abs_err / scale if scale > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "index": list(self.index),
            "analytic": _num(self.analytic),
            "numeric": _num(self.numeric),
            "abs_err": _num(self.abs_err),
            "rel_err": _num(self.rel_err),
            "bound": _num(self.bound),
            "status": self.status,
        }


@dataclass
class LeafReport:
    """The verdict on one input or parameter array."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    status: str  # 'pass' | 'fail' | 'inconclusive' | 'skipped'
    n_elements: int
    n_checked: int
    counts: dict[str, int]
    max_abs_err: float
    max_rel_err: float
    rel_diff: float
    worst: list[Element] = field(default_factory=list)
    kinks: list[Element] = field(default_factory=list)
    note: str = ""
    #: the detection floor: the smallest error in one element that would certainly have failed, anywhere in the
    #: array (absolute; at least the bound an element that passed was held to, see run._reach); NaN when no
    #: element passed
    floor: float = math.nan
    #: the same relative to the array's typical (RMS) gradient
    floor_rel: float = math.nan
    #: 'element': the floor bounds the error of any one element; 'rms': the array was checked along random
    #: directions, and the floor is the RMS error over the array caught with the confidence the notes state
    floor_kind: str = "element"
    #: the largest typical (RMS) gradient of the check's arrays: what an array whose own gradient is about 0 (a bias
    #: before a batch norm) is weighed against (see verdict.VOUCH_FLOOR)
    check_scale: float = math.nan

    @classmethod
    def deferred(cls, details: Callable[[], dict[str, Any]], **fields: Any) -> LeafReport:
        """A leaf report whose :data:`DETAILS` are ``details()``, computed on first access to any of them: a check
        whose report is only asked whether it passed never computes its worst elements."""
        lf = cls.__new__(cls)  # (every other field is given, or has its class default)
        lf.__dict__.update(fields, _details=details)
        return lf

    def __getattr__(self, name: str) -> Any:
        # reached only for an attribute that is not set: one of the details of a deferred report, not yet computed
        details = self.__dict__.get("_details") if name in DETAILS else None
        if details is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        # values near float64's edges (1e308) overflow into inf on purpose, shown as such: numpy's warnings would
        # only alarm, or raise under -W error. The details are dropped only once computed: whatever interrupts
        # them (KeyboardInterrupt), the next access computes them again
        with np.errstate(all="ignore"):
            computed = details()
        self.__dict__.pop("_details", None)
        for key, value in computed.items():
            self.__dict__.setdefault(key, value)  # (a detail assigned meanwhile stays)
        return self.__dict__[name]

    def __getstate__(self) -> dict[str, Any]:
        for key in DETAILS:  # (copies and pickles carry the details, not the function computing them)
            getattr(self, key)
        return self.__dict__

    @property
    def n_mismatch(self) -> int:
        return self.counts.get(MISMATCH, 0) + self.counts.get(DEAD, 0)

    @property
    def n_kinks(self) -> int:
        return self.counts.get(KINK, 0)

    @property
    def n_judged(self) -> int:
        """The elements compared one by one away from kinks and jumps: those :attr:`max_abs_err`,
        :attr:`max_rel_err` and :attr:`rel_diff` are over. With none (a check along random directions, a sample
        that missed the array) they are undefined: NaN here, null in :meth:`to_dict`, never 0, which would read as
        exact agreement."""
        return self.n_checked - self.counts.get(KINK, 0) - self.counts.get(JUMP, 0)

    def to_dict(self) -> dict[str, Any]:
        compared = self.n_judged > 0
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "status": self.status,
            "n_elements": self.n_elements,
            "n_checked": self.n_checked,
            "counts": dict(self.counts),
            "max_abs_err": _num(self.max_abs_err) if compared else None,
            "max_rel_err": _num(self.max_rel_err) if compared else None,
            "rel_diff": _num(self.rel_diff) if compared else None,
            "worst": [e.to_dict() for e in self.worst],
            "kinks": [e.to_dict() for e in self.kinks],
            "note": self.note,
            "floor": _num(self.floor),
            "floor_rel": _num(self.floor_rel),
            "floor_kind": self.floor_kind,
        }


#: The fields of a :class:`LeafReport` made by :meth:`LeafReport.deferred` that are computed on first access.
DETAILS = ("max_abs_err", "max_rel_err", "rel_diff", "worst", "kinks")

#: Findings that fail a check whatever its elements say.
FAILING_FINDINGS = (
    "mutation",
    "missing gradient",
    "saved state",
    "nonlinear backward",
    "nonlinear jvp",
    "undefined gradient",  # a backward that raises when an output does not reach the loss
    "locally constant",  # f piecewise constant where the rule claims a visible change: its derivative is 0
    "learning rate",  # a stepping backward whose gradients or steps depend on its learning rate otherwise than so
    "optimizer step",  # a backward whose returned gradients change when its own optimizer objects step
    "non-finite gradient",  # NaN or inf in a gradient at an input entry of +-inf (a mask), where the derivative is 0
    "primal output",  # a custom rule's forward value that is not the function's
)
#: Findings that leave a check inconclusive where nothing fails: a gradient returned and never compared.
INCONCLUSIVE_FINDINGS = ("unchecked gradient",)


@dataclass
class Finding:
    """Something wrong that is not a per-element mismatch, e.g. a function that writes into its inputs."""

    kind: str  # 'mutation' | ...
    message: str
    where: str = ""
    elements: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "where": self.where, "elements": self.elements}


@dataclass
class Curve:
    """Central-difference estimates of one element over a range of steps: the V-shaped error curve.

    Truncation error grows with the step on the right, round-off grows as the step shrinks on the left;
    ``chosen`` is the step the check used.
    """

    name: str
    steps: list[float]
    estimates: list[float]
    analytic: float
    chosen: float

    @property
    def errors(self) -> list[float]:
        return [abs(e - self.analytic) for e in self.estimates]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "steps": self.steps,
            "estimates": [_num(e) for e in self.estimates],
            "errors": [_num(e) for e in self.errors],
            "analytic": _num(self.analytic),
            "chosen": self.chosen,
        }


@dataclass
class Report:
    """The result of a check.

    Attributes
    ----------
    ok : bool
        True when the status is 'pass'.
    status : str
        'pass', 'fail' (some element is wrong, or a function mutated its input) or 'inconclusive'.
    leaves : list of LeafReport
        One per input or parameter array, in the user's names.
    findings : list of Finding
        Problems that are not elementwise mismatches (mutation of inputs).
    n_evals : int
        Evaluations of the user's function.
    seconds : float
        Wall-clock time of the check.
    """

    title: str
    kind: str
    strategy: str
    method: str
    leaves: list[LeafReport]
    n_evals: int
    seconds: float
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)
    _numeric: Any = field(default=None, repr=False)
    _analytic: Any = field(default=None, repr=False)
    _bound: Any = field(default=None, repr=False)
    _status: Any = field(default=None, repr=False)

    @property
    def status(self) -> str:
        if any(f.kind in FAILING_FINDINGS for f in self.findings) or any(lf.status == "fail" for lf in self.leaves):
            return "fail"
        if any(lf.status == "inconclusive" for lf in self.leaves):
            return "inconclusive"
        if any(f.kind in INCONCLUSIVE_FINDINGS for f in self.findings):
            return "inconclusive"  # a gradient the backward returned that was never compared: not vouched for
        if not self.leaves or all(lf.status == "skipped" for lf in self.leaves):
            return "inconclusive"  # nothing was compared: nothing is vouched for
        return "pass"

    @property
    def ok(self) -> bool:
        return self.status == "pass"

    def __bool__(self) -> bool:
        return self.ok

    def _built(self, name: str) -> Any:
        """A per-element tree, built on first access (a million NaN or '' entries cost more than the check)."""
        value = getattr(self, name)
        if callable(value):
            with np.errstate(all="ignore"):  # (as LeafReport's details: inf where values overflow)
                value = value()
            object.__setattr__(self, name, value)
        return value

    @property
    def numeric(self) -> Any:
        """The numeric gradient as a tree like the inputs (NaN where an element was not evaluated)."""
        return self._built("_numeric")

    @property
    def bound(self) -> Any:
        """The bound each element was held to, as a tree like the inputs (NaN where not checked)."""
        return self._built("_bound")

    @property
    def element_status(self) -> Any:
        """Each element's verdict ('ok', 'mismatch', 'dead', 'kink'; '' where not checked), like the inputs."""
        return self._built("_status")

    def __repr__(self) -> str:
        wrong = sum(lf.n_mismatch for lf in self.leaves)
        checked = sum(lf.n_checked for lf in self.leaves)
        return f"<Report {self.status.upper()} {self.title}: {wrong} wrong of {checked} checked>"

    @property
    def analytic(self) -> Any:
        """The analytic gradient under test, as a tree like the inputs."""
        return self._built("_analytic")

    def undecide(self, name: str, note: str) -> None:
        """Make array ``name`` inconclusive, saying ``note``: its failing elements (mismatch, dead) become
        inconclusive ones ('noisy') in its counts, its worst elements and :attr:`element_status`. For what a
        frontend learns after the elements were judged: that what it compared was no gradient, right or wrong."""
        k = next(j for j, lf in enumerate(self.leaves) if lf.name == name)
        lf = self.leaves[k]
        lf.status, lf.note = "inconclusive", note
        failing = sum(lf.counts.pop(s, 0) for s in FAILING)
        if failing:
            lf.counts[NOISY] = lf.counts.get(NOISY, 0) + failing
        for e in lf.worst:
            e.status = NOISY if e.status in FAILING else e.status
        status = [np.asarray(a) for _, a in flatten(self.element_status)]
        if len(status) == len(self.leaves) and status[k].shape == lf.shape:  # (the same arrays: the tree is kept)
            np.putmask(status[k], np.isin(status[k], FAILING), NOISY)

    def leaf(self, name: str) -> LeafReport:
        for lf in self.leaves:
            if lf.name == name:
                return lf
        names = [lf.name for lf in self.leaves]
        raise UnknownLeafError(f"no leaf named {name!r} in the report of {self.title}.", f"the leaves are {names}.")

    @property
    def mismatches(self) -> list[Element]:
        return [e for lf in self.leaves for e in lf.worst if e.status in FAILING]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "backcheck.report",
            "schema_version": SCHEMA_VERSION,
            "title": self.title,
            "kind": self.kind,
            "status": self.status,
            "ok": self.ok,
            "strategy": self.strategy,
            "method": self.method,
            "n_evals": self.n_evals,
            "seconds": round(self.seconds, 6),
            "leaves": [lf.to_dict() for lf in self.leaves],
            "findings": [f.to_dict() for f in self.findings],
            "notes": list(self.notes),
            "curves": [c.to_dict() for c in self.curves],
        }

    def __str__(self) -> str:
        from backcheck.render.text import render_report

        return render_report(self)


def summarize(
    tree: Tree, analytic: np.ndarray, outcome: Any, skipped: dict[str, str] | None = None
) -> list[LeafReport]:
    """Per-leaf verdicts from a strategy's per-element results.

    ``outcome`` carries ``checked`` (the flat indices judged) with ``numeric``, ``bound`` and ``status``
    aligned with it, and per-array verdicts ``failed_leaves`` / ``inconclusive_leaves`` (name -> why).
    """
    skipped = skipped or {}
    failed, unsure = outcome.failed_leaves, getattr(outcome, "inconclusive_leaves", {})
    if len(tree.leaves) == 1:
        sels: list[Any] = [slice(None)]  # every element checked is the one leaf's: no masks to build
    else:
        which = np.searchsorted(tree.offsets, outcome.checked, side="right") - 1
        sels = [which == k for k in range(len(tree.leaves))]
    reports = [
        _leaf_report(tree, leaf, analytic, outcome, sel, skipped, failed, unsure)
        for leaf, sel in zip(tree.leaves, sels, strict=True)
    ]
    largest = max((rms(analytic[lf.offset : lf.offset + lf.size]) for lf in tree.leaves if lf.size), default=0.0)
    for lf in reports:
        lf.check_scale = largest
    return reports


def _leaf_report(
    tree: Tree,
    leaf: Any,
    analytic: np.ndarray,
    outcome: Any,
    sel: Any,
    skipped: dict[str, str],
    failed: dict[str, str],
    unsure: dict[str, str],
) -> LeafReport:
    idx = outcome.checked[sel]
    n, b, st = outcome.numeric[sel], outcome.bound[sel], outcome.status[sel]
    tally = Counter(st.tolist())
    counts = {s: tally[s] for s in (OK, KINK, JUMP, NOISY, MISMATCH, DEAD) if tally[s]}
    # (a mask is built only when some element needs it: most reports are all 'ok', every element judged)
    judged = (st != KINK) & (st != JUMP) if tally[KINK] or tally[JUMP] else None
    floor = math.nan
    if tally[OK]:
        reach = outcome.reach[sel] if getattr(outcome, "reach", None) is not None else None  # see run._reach
        if reach is None:
            reach = b + np.abs(analytic[idx] - n)
        floor = float((reach if tally[OK] == st.size else reach[st == OK]).max())
    typical = rms(n if judged is None else n[judged])
    floor_rel = floor / typical if typical > 0 and not math.isnan(floor) else math.nan
    kind = "element"
    projected = getattr(outcome, "floors", {}).get(leaf.name)
    if projected is not None and idx.size < leaf.size:
        # checked along random directions (all but the elements judged one by one, at kinks): the RMS error they
        # would have caught, the weaker of the two statements
        kind, floor_rel = "rms", projected if not idx.size else max(projected, np.nan_to_num(floor_rel))
        floor = projected * rms(analytic[leaf.offset : leaf.offset + leaf.size])
    failing = tally[MISMATCH] + tally[DEAD]
    if kind == "element" and not failing and 0 < idx.size < leaf.size - _masked(tree, leaf):
        kind = "sample"  # elements judged one by one, a sample of them: the others are vouched for as a fraction
    if leaf.name in skipped:
        lstatus, note = "skipped", skipped[leaf.name]
    elif failing:
        said = _nonfinite_note(tree, leaf, idx, analytic[idx])
        lstatus, note = "fail", f"{said} {failed.get(leaf.name, '')}".strip()
        if tally[DEAD] == st.size and idx.size == leaf.size:
            note = (
                f"{leaf.name} receives a zero gradient everywhere while the output depends on it: the "
                "gradient does not flow here (a detached branch, a missing backward term). " + note
            ).strip()
    elif leaf.name in failed:
        lstatus, note = "fail", failed[leaf.name]
    elif leaf.name in unsure:
        lstatus, note = "inconclusive", unsure[leaf.name]
    elif tally[NOISY] or tally[JUMP]:
        lstatus, note = "inconclusive", ""
    elif leaf.size and not idx.size and projected is None:
        # nothing of this array was compared: nothing is vouched for
        why = (
            "every entry is non-finite (a mask, not a coordinate to differentiate)."
            if _all_masks(tree, leaf)
            else "none was in the sample (pass samples= at least the number of arrays, or strategy='full')."
        )
        lstatus, note = "inconclusive", f"no element of {leaf.name} was compared: {why}"
    else:
        lstatus, note = "pass", ""
    return LeafReport.deferred(
        functools.partial(_details, leaf, (idx, analytic[idx], n, b, st), judged, bool(failing), bool(tally[KINK])),
        name=leaf.name,
        shape=leaf.shape,
        dtype=_dtype_name(leaf.dtype),
        status=lstatus,
        n_elements=leaf.size,
        n_checked=int(idx.size),
        counts=counts,
        note=note,
        floor=floor,
        floor_rel=floor_rel,
        floor_kind=kind,
    )


def _masked(tree: Tree, leaf: Any) -> int:
    """How many of ``leaf``'s entries are non-finite (masks), left out of every check."""
    ex = tree.excluded
    return int(np.count_nonzero((ex >= leaf.offset) & (ex < leaf.offset + leaf.size))) if ex.size else 0


def _nonfinite_note(tree: Tree, leaf: Any, idx: np.ndarray, a: np.ndarray) -> str:
    """A sentence for the checked elements where the gradient itself is NaN or infinite ('' where none is): the
    table's error columns read NaN or 0 there, which says nothing."""
    bad = np.flatnonzero(~np.isfinite(a))
    if not bad.size:
        return ""
    names = ", ".join(tree.element_name(int(i)) for i in idx[bad[:3]]) + (", ..." if bad.size > 3 else "")
    what = "NaN" if np.isnan(a[bad]).all() else "not finite"
    return f"{leaf.name}'s gradient is {what} at {bad.size} element(s) ({names})."


def _details(leaf: Any, arrays: tuple[np.ndarray, ...], judged: Any, failing: bool, kinked: bool) -> dict[str, Any]:
    """A leaf report's :data:`DETAILS`: the error maxima over the judged elements (not those at kinks or jumps),
    the classic relative difference, the worst elements (failing ones first, then inconclusive ones) and those at
    kinks."""
    idx, a, n, b, st = arrays
    diff = np.abs(a - n)
    with np.errstate(invalid="ignore"):  # inf / inf (an infinite analytic value): NaN, shown as such
        ratio = np.divide(diff, b, out=np.full_like(diff, np.inf), where=b > 0)
    if judged is not None:
        ratio[~judged] = -1.0
    # failing elements first, then inconclusive ones (whose bound may be infinite: a ratio of 0 would hide them)
    noisy = st == NOISY
    if failing or noisy.any():
        order = np.lexsort((-ratio, np.where(np.isin(st, FAILING), 0, np.where(noisy, 1, 2))))
    else:
        order = np.argsort(-ratio, kind="stable")
    top = order[:WORST].tolist()
    at_kinks = np.flatnonzero(st == KINK)[:WORST].tolist() if kinked else ()
    stats = _error_stats(a, n, diff) if judged is None else _error_stats(a[judged], n[judged], diff[judged])
    return {
        **stats,
        "worst": [_element(leaf, int(idx[j]), a[j], n[j], b[j], st[j]) for j in top if judged is None or judged[j]],
        "kinks": [_element(leaf, int(idx[j]), a[j], n[j], b[j], st[j]) for j in at_kinks],
    }


def _error_stats(a: np.ndarray, n: np.ndarray, diff: np.ndarray) -> dict[str, float]:
    """The largest absolute and relative errors and the classic relative difference between the judged analytic
    values ``a`` and numeric ones ``n`` (``diff`` is ``|a - n|``).

    All three are NaN where nothing was judged. Where a value is NaN or infinite the relative ones are NaN too (an
    error against a non-finite value has no size), and the absolute one is NaN or inf: dropping that element, or
    reading it as 0, would show a failing array as agreeing.
    """
    if not a.size:
        return dict.fromkeys(("max_abs_err", "max_rel_err", "rel_diff"), math.nan)
    if not np.isfinite(diff).all():
        return {"max_abs_err": float(diff.max()), "max_rel_err": math.nan, "rel_diff": math.nan}
    scale = np.maximum(np.abs(a), np.abs(n))
    rel = np.divide(diff, scale, out=np.zeros_like(diff), where=scale > 0)
    if a.size <= 32:
        denom = math.hypot(*a.tolist()) + math.hypot(*n.tolist())
    else:
        denom = np.linalg.norm(a) + np.linalg.norm(n)
    rel_diff = float(rms(a - n) * math.sqrt(a.size) / denom) if denom > 0 else 0.0
    return {"max_abs_err": float(diff.max()), "max_rel_err": float(rel.max()), "rel_diff": rel_diff}


_DTYPE_NAMES: dict[Any, str] = {}


def _dtype_name(dtype: Any) -> str:
    """``str(dtype)``, remembered (numpy builds the string anew each time)."""
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = str(dtype)
    return name


def _all_masks(tree: Tree, leaf: Any) -> bool:
    excluded = tree.excluded
    return bool(np.count_nonzero((excluded >= leaf.offset) & (excluded < leaf.offset + leaf.size)) == leaf.size)


def _element(leaf: Any, i: int, a: float, n: float, b: float, st: str) -> Element:
    """Element ``i`` (a flat position of the check, inside ``leaf``)."""
    index = unravel(i - leaf.offset, leaf.shape)
    return Element(leaf.name + format_index(index), index, float(a), float(n), float(b), str(st))  # (element_name)
